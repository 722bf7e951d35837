"""``--html FILE`` on the four report commands: the page is written from the same data the JSON
output prints, and bad inputs or an unwritable file are one-line errors with documented codes."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sre_tools.examples import slo_files
from tests.htmlreport.conftest import AT, ReportEnv

CliResult = tuple[int, str, str]
Sre = Callable[..., CliResult]


def sections(page: str) -> list[str]:
    return re.findall(r'<section id="([a-z]+)"', page)


def test_report_html_and_json_agree(report_env: ReportEnv, sre: Sre, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    health = [f"--health={f}" for f in report_env.health]
    args = ["report", "--examples", "--store", str(report_env.store), "--at", AT, "--no-gpu"]
    code, stdout, err = sre(*args, *health, "--html", str(out), "--json")
    assert code == 0, err
    data = json.loads(stdout)
    page = out.read_text(encoding="utf-8")
    assert sections(page) == ["summary", "slos", "reliability", "health", "drills"]
    # Each SLO's burn-down: the JSON's history, whose last point is the report's budget left.
    for slo in data["slos"]:
        history = slo["budget_history"]
        assert len(history) == 31 and history[0]["budget_remaining"] == 1.0
        assert history[-1] == {"at": slo["at"], "budget_remaining": slo["budget_remaining"]}
        assert f'data-slo="{slo["id"]}" data-status="{slo["status"]}"' in page
        assert f'data-points="{len(history)}"' in page
    assert page.count('class="chart burn-down"') == len(data["slos"]) == 4
    # Reliability over time: ten parts of the window, whose failures add up to the window's.
    series = data["reliability"]["series"]
    assert len(series) == 10
    assert sum(b["fleet"]["failures"] for b in series) == data["reliability"]["fleet"]["failures"]
    components = [*data["reliability"]["components"], "fleet"]
    assert page.count('class="chart reliability"') == len(components)
    assert [h["host"] for h in data["health"]] == [r["host"] for r in report_env.reports]
    assert [d["drill"] for d in data["drills"]] == ["node-drain", "xid-inject"]
    assert 'data-severity="crit" data-check="ecc.uncorrected_volatile"' in page


def test_report_html_alone_prints_one_line(report_env: ReportEnv, sre: Sre, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, stdout, err = sre(
        "report", "--examples", "--store", str(report_env.store), "--at", AT, "--html", str(out)
    )
    assert (code, stdout, err) == (0, f"wrote {out}\n", "")
    assert out.stat().st_size > 10_000
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes it, not 0600
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left


def test_text_report_shows_health_and_drills(report_env: ReportEnv, sre: Sre) -> None:
    code, stdout, err = sre(
        "report",
        "--examples",
        "--store",
        str(report_env.store),
        "--at",
        AT,
        "--no-gpu",
        "--health",
        str(report_env.health[0]),
    )
    assert code == 0, err
    assert "GPU health of 1 node(s)" in stdout
    assert re.search(r"gpu-node-07 .*CRIT.*power_cycle", stdout)
    assert "Drills: 3 run(s) of 2 drill(s)" in stdout


def test_json_without_html_has_no_history(report_env: ReportEnv, sre: Sre) -> None:
    code, stdout, err = sre(
        "slo", "report", *slo_files(), "--store", str(report_env.store), "--at", AT, "--json"
    )
    assert code == 0, err
    rows = json.loads(stdout)
    assert rows and all("budget_history" not in r for r in rows)


def test_slo_report_html(report_env: ReportEnv, sre: Sre, tmp_path: Path) -> None:
    out = tmp_path / "slo.html"
    code, stdout, err = sre(
        "slo",
        "report",
        *slo_files(),
        "--store",
        str(report_env.store),
        "--at",
        AT,
        "--slo",
        "training-api-availability",
        "--html",
        str(out),
    )
    assert (code, err) == (0, "")
    assert stdout == f"wrote {out}\n"
    page = out.read_text(encoding="utf-8")
    assert sections(page) == ["summary", "slos"]
    assert page.count('class="chart burn-down"') == 1
    assert 'data-slo="training-api-availability" data-status="ticket"' in page
    assert f"SLIs from the store {report_env.store}" in page


def test_reliability_report_html(report_env: ReportEnv, sre: Sre, tmp_path: Path) -> None:
    out = tmp_path / "rel.html"
    code, stdout, err = sre(
        "reliability",
        "report",
        "--store",
        str(report_env.store),
        "--until",
        AT,
        "--html",
        str(out),
        "--json",
    )
    assert code == 0, err
    data = json.loads(stdout)
    page = out.read_text(encoding="utf-8")
    assert sections(page) == ["reliability"]
    assert len(data["series"]) == 10
    assert page.count('class="chart reliability"') == len(data["components"]) + 1
    assert f"Measured by {data['drills']['runs']} drill run(s)" in page


def test_drill_report_html(report_env: ReportEnv, sre: Sre, tmp_path: Path) -> None:
    out = tmp_path / "drills.html"
    code, stdout, err = sre("drill", "report", "--store", str(report_env.store), "--html", str(out))
    assert (code, stdout, err) == (0, f"wrote {out}\n", "")
    page = out.read_text(encoding="utf-8")
    assert sections(page) == ["drills"]
    assert '<span class="label l-failed">failed 1</span>' in page
    assert '<span class="label l-ok">passed 2</span>' in page


def test_drill_report_html_no_runs(sre: Sre, tmp_path: Path) -> None:
    store = tmp_path / "empty.db"
    assert sre("report", "--store", str(store), "--no-gpu", "--json")[0] == 0  # creates it
    out = tmp_path / "d.html"
    code, _, err = sre("drill", "report", "--store", str(store), "--html", str(out))
    assert (code, err) == (0, "")
    assert "No drill runs recorded" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        pytest.param("missing/r.html", "No such file or directory", id="no-such-folder"),
        pytest.param("file/r.html", "Not a directory", id="under-a-file"),
    ],
)
def test_unwritable_html_path(
    report_env: ReportEnv, sre: Sre, tmp_path: Path, where: str, message: str
) -> None:
    (tmp_path / "file").write_text("x")
    out = tmp_path / where
    code, stdout, err = sre("drill", "report", "--store", str(report_env.store), "--html", str(out))
    assert (code, stdout) == (1, "")
    assert err == f"sre: error: {out}: cannot write: {message}\n"
    assert not out.parent.is_dir() or list(out.parent.iterdir()) == []


def test_html_path_is_a_folder(report_env: ReportEnv, sre: Sre, tmp_path: Path) -> None:
    code, _, err = sre("drill", "report", "--store", str(report_env.store), "--html", str(tmp_path))
    assert code == 2
    assert err.startswith("sre: usage error: Invalid value for '--html'") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("{not json", "not valid JSON", id="not-json"),
        pytest.param(
            '{"schema_version": 1, "at": "2026-11-20T12:00:00Z", "findings": []}',
            "host: missing",
            id="no-host",
        ),
        pytest.param(
            json.dumps(
                {
                    "schema_version": 1,
                    "host": "n1",
                    "at": "2026-11-20T12:00:00Z",
                    "findings": [
                        {"check": "x", "severity": "bad", "action": "none", "summary": ""}
                    ],
                }
            ),
            "findings[0].severity: unknown severity",
            id="bad-severity",
        ),
    ],
)
def test_bad_health_file(sre: Sre, tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    out = tmp_path / "r.html"
    code, stdout, err = sre(
        "report", "--store", str(tmp_path / "s.db"), "--no-gpu", "--health", str(bad),
        "--html", str(out),
    )  # fmt: skip
    assert (code, stdout) == (2, "")
    assert err.startswith(f"sre: error: {bad}") and message in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "s.db").exists()


def test_empty_store_says_what_is_missing(sre: Sre, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, stdout, err = sre(
        "report", "--store", str(tmp_path / "s.db"), "--no-gpu", "--html", str(out)
    )
    assert (code, stdout, err) == (0, f"wrote {out}\n", "")
    page = out.read_text(encoding="utf-8")
    assert sections(page) == ["summary", "slos", "reliability", "health", "drills"]
    for message in (
        "No SLO given",
        "No incidents in the window",
        "No GPU health reports given",
        "No drill runs recorded",
    ):
        assert message in page
    assert re.findall(r'<span class="n">(\d+)</span>', page) == ["0", "0", "0", "0"]


def test_prometheus_credentials_are_not_in_the_page() -> None:
    from sre_tools.cli.common import sli_source_line

    line = sli_source_line("http://admin:s3cret@prom.example:9090/", None)
    assert line == "SLIs from Prometheus http://prom.example:9090"
