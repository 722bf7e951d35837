"""``sre health`` front end: formats and Nagios exit codes, on recordings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sre_tools.cli.main import main

FIX = Path(__file__).parents[1] / "fixtures" / "gpu"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("fixture", "code", "action"),
    [
        pytest.param("h100-capture.json", 0, "none", id="healthy-ok"),
        pytest.param("faults/dbe-volatile.json", 2, "reset_gpu", id="dbe-critical"),
        pytest.param("faults/gpu-lost.json", 2, "power_cycle", id="lost-critical"),
        pytest.param("faults/driver-library-mismatch.json", 2, "reboot", id="mismatch-critical"),
        pytest.param("faults/remapper-histogram-low.json", 1, "none", id="histogram-warning"),
    ],
)
def test_json_and_nagios_codes(capsys, fixture: str, code: int, action: str) -> None:
    rc, out, err = run(capsys, "health", "--json", "--replay", str(FIX / fixture))
    assert rc == code, err
    data = json.loads(out)
    assert data["schema_version"] == 1
    assert data["exit_code"] == code
    assert data["action"] == action


def test_nhc_lines(capsys) -> None:
    rc, out, _ = run(
        capsys, "health", "--format", "nhc", "--replay", str(FIX / "faults/dbe-volatile.json")
    )
    assert rc == 2
    lines = out.strip().splitlines()
    assert lines and all(line.startswith("ERROR: nhc: Health check failed: ") for line in lines)
    assert any("ecc.uncorrected_volatile" in line for line in lines)


def test_nhc_prints_nothing_when_healthy(capsys) -> None:
    rc, out, _ = run(
        capsys, "health", "--format", "nhc", "--replay", str(FIX / "h100-capture.json")
    )
    assert rc == 0
    assert out == ""


def test_bad_policy_is_unknown(capsys, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("thermal: {margin_warn_c: hot}\n")
    rc, _, err = run(
        capsys, "health", "--config", str(site), "--replay", str(FIX / "h100-capture.json")
    )
    assert rc == 3
    assert err.strip().count("\n") == 0
    assert "site.yaml: thermal.margin_warn_c" in err


def test_unwritable_state_is_unknown(capsys, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, _, err = run(
        capsys,
        "health",
        "--state",
        str(blocker / "state.json"),
        "--replay",
        str(FIX / "h100-capture.json"),
    )
    assert rc == 3
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--timeout", "-1"], id="negative-timeout"),
        pytest.param(["--timeout", "nan"], id="nan-timeout"),
        pytest.param(["--timeout", "inf"], id="inf-timeout"),
        pytest.param(["--timeout", "0"], id="zero-timeout"),
        pytest.param(["--format", "xml"], id="bad-format"),
        pytest.param(["--no-such-option"], id="unknown-option"),
        pytest.param(["extra-argument"], id="extra-argument"),
    ],
)
def test_usage_errors_are_unknown(capsys, args: list[str]) -> None:
    rc, out, err = run(capsys, "health", *args, "--replay", str(FIX / "h100-capture.json"))
    assert rc == 3, err
    assert out == ""
    assert err.startswith("sre: usage error: ")


@pytest.mark.parametrize(
    "site",
    [
        pytest.param("thermal: {margin_warn_c: .nan}\n", id="nan-threshold"),
        pytest.param("thermal: {margin_warn_c: .inf}\n", id="inf-threshold"),
        pytest.param("collection: {timeout_seconds: -5}\n", id="negative-timeout"),
        pytest.param("collection: {timeout_seconds: .nan}\n", id="nan-timeout"),
    ],
)
def test_non_finite_or_negative_policy_values_are_unknown(
    capsys, tmp_path: Path, site: str
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(site)
    rc, _, err = run(
        capsys, "health", "--config", str(path), "--replay", str(FIX / "h100-capture.json")
    )
    assert rc == 3
    assert "site.yaml" in err and "Traceback" not in err


@pytest.mark.parametrize("count", ["eight", -1, True, 10**9])
def test_malformed_device_count_exits_unknown(capsys, tmp_path: Path, count: object) -> None:
    """Slurm drains on anything but 0: a bad count is UNKNOWN (3), never an empty OK."""
    data = json.loads((FIX / "h100-capture.json").read_text())
    data["device_count"] = count
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    rc, out, err = run(capsys, "health", "--json", "--replay", str(path))
    assert rc == 3 and out == ""
    assert err.count("\n") == 1 and "bad.json: device_count: expected a whole number" in err


def test_table_is_linear_in_findings(monkeypatch) -> None:
    """render() asks for the problem list once, not once per finding."""
    from sre_tools.cli import health as cli_health
    from sre_tools.health.model import Finding, GpuRef, HealthReport, Severity

    findings = tuple(
        Finding("ecc.mode", Severity.WARN if i % 2 else Severity.OK, "x", gpu=GpuRef(i))
        for i in range(2000)
    )
    calls = []

    class Counting(HealthReport):
        def problems(self) -> list[Finding]:
            calls.append(1)
            return super().problems()

    printed: list[object] = []

    class Console:
        def print(self, item: object) -> None:
            printed.append(item)

    monkeypatch.setattr(cli_health, "console", Console)
    monkeypatch.setattr(cli_health, "table", lambda title, cols, rows: rows)
    cli_health.render(Counting("n", 0.0, findings), False)
    assert len(calls) == 1
    assert len(printed[1]) == 1000


def test_health_json_path_imports_no_click_rich_or_yaml() -> None:
    """``sre health --json`` runs on every node from Slurm: start-up cost is the budget. Nor
    typing or dataclasses (with inspect): ~5 and ~7 ms of it (sre_tools/record.py)."""
    import subprocess
    import sys

    code = (
        "import sys, io, contextlib\n"
        "from sre_tools.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = main(['health', '--json', '--replay', {str(FIX / 'h100-capture.json')!r}])\n"
        "heavy = ('click', 'rich', 'yaml', 'pynvml', 'typing', 'dataclasses', 'inspect')\n"
        "print(rc, sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["0", "[]"], out.stderr


def test_click_path_gives_the_same_answers(capsys) -> None:
    """``sre --debug health`` goes through click; usage errors are UNKNOWN there too."""
    rc, _, err = run(capsys, "--debug", "health", "--timeout", "nan")
    assert rc == 3 and "usage error" in err
    rc, out, _ = run(
        capsys, "--debug", "health", "--json", "--replay", str(FIX / "h100-capture.json")
    )
    assert rc == 0 and json.loads(out)["status"] == "ok"


def test_nhc_lines_escape_what_the_node_answered(capsys, tmp_path: Path) -> None:
    """Slurm reads one problem per line: a UUID holding a newline and ESC (a hostile or broken
    device, a crafted recording) cannot add an 'OK' line or drive the terminal."""
    data = json.loads((FIX / "h100-capture.json").read_text())
    data["devices"][0]["readings"]["uuid"] = {"value": "GPU-x\nOK: all fine\x1b[2J\u202e"}
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(data))
    rc, out, _ = run(
        capsys, "health", "--format", "nhc", "--profile", "h100-sxm-8", "--replay", str(path)
    )
    assert rc == 2
    lines = out.splitlines()
    assert lines and all(line.startswith("ERROR: nhc: Health check failed: ") for line in lines)
    assert "\x1b" not in out and "\u202e" not in out
    assert any("GPU-x\\x0aOK: all fine\\x1b[2J\\u202e" in line for line in lines)
