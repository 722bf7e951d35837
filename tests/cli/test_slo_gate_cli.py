"""``sre slo gate``: exit 4 while an SLO pages or its budget is low, 0 otherwise, 1 (fail closed)
when the source cannot be read, 2 on bad input, on the store of tests/helpers/slo_gate.py."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from sre_tools.cli.main import EXIT_BLOCKED, main
from tests.helpers.slo_gate import AT, write_gate_data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return write_gate_data(tmp_path_factory.mktemp("gate"))


def gate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["slo", "gate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("slos", "min_budget", "code", "line"),
    [
        pytest.param(
            ["jobs-paging"],
            "10",
            EXIT_BLOCKED,
            "blocked: jobs-paging: paging: page-quick burn rate 50 over 1h and 50 over 5m > 14.4, "
            "page-slow burn rate 50 over 6h and 50 over 30m > 6",
            id="paging",
        ),
        pytest.param(["jobs-healthy"], "10", 0, "ok: 1 SLOs, none blocking", id="healthy"),
        pytest.param(
            ["jobs-spent"],
            "10",
            EXIT_BLOCKED,
            "blocked: jobs-spent: budget remaining 5.0% < 10%",
            id="budget-low",
        ),
        pytest.param(["jobs-spent"], "4", 0, "ok: 1 SLOs, none blocking", id="budget-above-4"),
    ],
)
def test_gate_on_the_store(
    data: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    slos: list[str],
    min_budget: str,
    code: int,
    line: str,
) -> None:
    spec, store = data
    only = [a for s in slos for a in ("--slo", s)]
    got, out, err = gate(
        capsys, spec, "--store", store, "--at", AT, "--min-budget", min_budget, *only
    )
    assert (got, out.splitlines(), err) == (code, [line], "")


def test_gate_lists_every_blocking_slo_as_json(
    data: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, store = data
    code, out, _ = gate(capsys, spec, "--store", store, "--at", AT, "--json")
    assert code == EXIT_BLOCKED == 4
    result = json.loads(out)
    assert result["passed"] is False and result["slos"] == 3
    assert [b["id"] for b in result["blocking"]] == ["jobs-paging", "jobs-spent"]


def test_unreachable_prometheus_fails_closed(
    data: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, _ = data
    url = f"http://127.0.0.1:{closed_port()}"
    code, out, err = gate(capsys, spec, "--prometheus", url, "--timeout", "2")
    assert (code, out) == (1, "")
    assert err.startswith(f"sre: error: {url}: cannot reach Prometheus"), err
    assert err.rstrip().endswith("(the gate fails closed: nothing may proceed)")


def test_missing_store_fails_closed(
    data: tuple[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec, _ = data
    code, _, err = gate(capsys, spec, "--store", str(tmp_path / "none.db"))
    assert code == 1 and "the gate fails closed" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--min-budget", "120"], "--min-budget: must be a percentage", id="over-100"),
        pytest.param(["--min-budget", "nan"], "--min-budget: must be a percentage", id="nan"),
        pytest.param(["--min-budget", "ten"], "'--min-budget': 'ten' is not a valid", id="text"),
        pytest.param(
            ["--store", "x.db", "--prometheus", "http://h:9090"],
            "use either --prometheus or --store",
            id="both-sources",
        ),
        pytest.param(["--slo", "jobs-nope"], "--slo: unknown SLO 'jobs-nope'", id="unknown-slo"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    data: tuple[str, str], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    spec, store = data
    code, out, err = gate(
        capsys, spec, *(["--store", store] if "--store" not in args else []), *args
    )
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and message in err, err
