"""``sre diag run`` against stand-in tools on PATH, ``sre diag import``, ``history``."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sre_tools.diag import history as diag_history
from sre_tools.store import Store
from tests.conftest import CliResult
from tests.diag.conftest import FIXTURES, HGX, FakeTool, argv_of

Sre = Callable[..., CliResult]


def _run(sre: Sre, store: Path | str, *args: str) -> CliResult:
    return sre(
        "diag", "run", "--replay", str(HGX), "--store", str(store), "--node", "hgx-h100-8", *args
    )


# (what the fake dcgmi does, exit code, NHC lines expected to contain)
RUN_CASES = [
    ("level2-pass", {"fixture": "dcgm/level2-pass.json"}, 0, []),
    # Level 2 asked, only level 1's test in the output: pcie and memory did not run.
    (
        "level2-asked-level1-output",
        {"fixture": "dcgm/level1-pass.json"},
        3,
        ["diag.dcgm.pcie", "test pcie of level 2 is not in dcgmi's output"],
    ),
    (
        "memory-fail-nvvs-error",
        {"fixture": "dcgm/level2-memory-fail-gpu3.json", "rc": 226},
        2,
        ["GPU 3 (GPU-386eb5c4-8593-5584-afb0-c98a99c45c48, 00000000:5D:00.0): diag.dcgm.memory"],
    ),
    (
        "pcie-fail-isolate",
        {"fixture": "dcgm/level2-pcie-fail-gpu5.json", "rc": 205},
        2,
        ["diag.dcgm.pcie", "action check_mechanicals"],
    ),
    (
        "dcgm-timeout-status",
        {"fixture": "dcgm/runtime-error-timeout.json", "rc": 245},
        2,
        ["diag.dcgm.timeout", "Timeout"],
    ),
    (
        "hostengine-down",
        {"fixture": "dcgm/runtime-error-hostengine.json", "rc": 235},
        3,
        ["diag.dcgm.runtime_error", "unable to establish a connection"],
    ),
    (
        "nvvs-killed",
        {"fixture": None, "rc": 203, "stderr": "nvvs killed"},
        3,
        ["diag.dcgm.output", "DCGM_ST_NVVS_KILLED"],
    ),
    (
        "dcgmi-killed-by-sigkill",
        {"fixture": None, "signal": int(signal.SIGKILL)},
        3,
        ["diag.dcgm.killed", "signal 9"],
    ),
    (
        "garbage-output",
        {"fixture": "nccl/h100-8-pass.txt"},
        3,
        ["diag.dcgm.output", "output not understood"],
    ),
]


@pytest.mark.parametrize(
    ("name", "spec", "code", "expect"), RUN_CASES, ids=[c[0] for c in RUN_CASES]
)
def test_run_with_stand_in_dcgmi(
    sre: Sre,
    fake_tool: FakeTool,
    tool_bin: Path,
    tmp_path: Path,
    name: str,
    spec: dict[str, Any],
    code: int,
    expect: list[str],
) -> None:
    spec = dict(spec)
    fake_tool("dcgmi", spec.pop("fixture"), **spec)
    rc, out, err = _run(sre, tmp_path / "s.db", "--level", "2", "--format", "nhc")
    assert rc == code, (out, err)
    assert err == ""
    # level 2's 600 s less a margin of 30 s: DCGM's own timeout comes first
    assert argv_of(tool_bin, "dcgmi") == ["diag", "-r", "2", "-j", "--timeout", "570"]
    if not expect:
        assert out == ""  # NHC: nothing when healthy
    for text in expect:
        assert text in out
    assert all(line.startswith("ERROR: nhc: Health check failed: ") for line in out.splitlines())


def test_missing_tools_are_skipped_never_a_crash(
    sre: Sre,
    tool_bin: Path,
    tmp_path: Path,
) -> None:
    rc, out, err = _run(sre, tmp_path / "s.db", "--nvbandwidth", "--nccl", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["status"] == "ok"
    tools = {f["check"]: f for f in data["findings"]}
    assert set(tools) == {
        "diag.dcgm.tool",
        "diag.nvbandwidth.tool",
        "diag.nccl.tool",
        "diag.gpu_count",  # 8 of 8 GPUs in the recording
    }
    assert tools.pop("diag.gpu_count")["severity"] == "ok"
    assert all(f["severity"] == "skipped" for f in tools.values())
    assert tools["diag.dcgm.tool"]["summary"] == "dcgmi not run: dcgmi is not on PATH"


def test_timeout_from_the_site_file_kills_the_tool(
    sre: Sre,
    fake_tool: FakeTool,
    tool_bin: Path,
    tmp_path: Path,
) -> None:
    fake_tool("dcgmi", "dcgm/level1-pass.json", sleep=30)
    site = tmp_path / "site.yaml"
    site.write_text("diag:\n  dcgm:\n    timeout_level_1_seconds: 1\n")
    start = time.monotonic()
    rc, out, _ = _run(sre, tmp_path / "s.db", "--site", str(site), "--format", "nhc")
    assert time.monotonic() - start < 15
    assert rc == 2
    assert "diag.dcgm.timeout" in out and "did not finish within 1 s" in out
    # the diagnostic was asked to stop inside DCGM (nvvs outlives a killed dcgmi)
    assert (tool_bin / "dcgmi.abort").read_text() == "localhost diag"


def test_kill_switch_and_configured_path(
    sre: Sre,
    fake_tool: FakeTool,
    tool_bin: Path,
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "opt"
    elsewhere.mkdir()
    fake = fake_tool("nvbandwidth", "nvbandwidth/h100-8-h2d-low-gpu4.json")
    fake.rename(elsewhere / "nvbandwidth")
    fake_tool("dcgmi", "dcgm/level1-pass.json")
    site = tmp_path / "site.yaml"
    site.write_text(
        "diag:\n  dcgm:\n    enabled: false\n"
        f"  nvbandwidth:\n    path: {elsewhere / 'nvbandwidth'}\n"
    )
    rc, out, err = _run(sre, tmp_path / "s.db", "--site", str(site), "--nvbandwidth", "--json")
    assert rc == 2, err
    data = json.loads(out)
    by_check = {(f["check"], (f["gpu"] or {}).get("index")): f for f in data["findings"]}
    assert by_check[("diag.dcgm.tool", None)]["severity"] == "skipped"
    assert "turned off" in by_check[("diag.dcgm.tool", None)]["summary"]
    low = by_check[("diag.nvbandwidth.h2d", 4)]
    assert low["severity"] == "crit" and low["action"] == "check_mechanicals"
    # the profile came from the recorded node: 8 H100 on an NVSwitch fabric
    assert low["evidence"]["profile"] == "h100-sxm-8"
    assert low["evidence"]["serial"] == str(1752624007973 + 17 * 4)
    assert argv_of(elsewhere, "nvbandwidth")[:2] == ["-j", "-t"]


def test_nccl_run_passes_the_profile_sizes(
    sre: Sre,
    fake_tool: FakeTool,
    tool_bin: Path,
    tmp_path: Path,
) -> None:
    fake_tool("all_reduce_perf", "nccl/h100-8-pass.txt")
    rc, out, err = _run(sre, tmp_path / "s.db", "--no-dcgm", "--nccl", "--format", "nhc")
    assert (rc, out, err) == (0, "", "")
    assert argv_of(tool_bin, "all_reduce_perf") == [
        "-b", "1073741824", "-e", "17179869184", "-f", "2", "-g", "8",
    ]  # fmt: skip


def test_results_are_stored_with_serials_and_versions(
    sre: Sre,
    fake_tool: FakeTool,
    store_location: Path | str,
) -> None:
    """On both engines (a SQLite file, a PostgreSQL database): the remediation gate reads the
    same history wherever the store lives."""
    store = store_location
    fake_tool("dcgmi", "dcgm/level2-memory-fail-gpu3.json", rc=226)
    before = time.time()
    assert _run(sre, store, "--level", "2", "--format", "nhc")[0] == 2
    fake_tool("dcgmi", "dcgm/level2-pass.json")
    assert _run(sre, store, "--level", "2", "--format", "nhc")[0] == 0
    with Store(store) as s:
        last = diag_history.latest(s, "hgx-h100-8", level=2, since=before)
        assert last is not None and last.passed and last.level == 2
        assert last.driver_version == "580.159.04"
        assert diag_history.passed(s, "hgx-h100-8", level=2, since=before)
        assert not diag_history.passed(s, "hgx-h100-8", level=3)  # no level-3 run
        assert diag_history.latest(s, "other-node") is None
    serial = str(1752624007973 + 17 * 3)
    rc, out, err = sre("diag", "history", "--serial", serial, "--store", str(store), "--json")
    assert rc == 0, err
    rows = json.loads(out)["results"]
    memory = [r for r in rows if r["check"] == "diag.dcgm.memory"]
    assert [r["severity"] for r in memory] == ["ok", "crit"]  # newest first
    assert {r["vbios_version"] for r in rows} == {"96.00.DA.00.0C"}
    assert {r["gpu_index"] for r in rows} == {3}
    rc, out, _ = sre("diag", "history", "--node", "hgx-h100-8", "--store", str(store))
    assert rc == 0 and serial in out


def test_import_judges_and_stores_every_format(sre: Sre, store_location: Path | str) -> None:
    store = store_location
    files = [
        FIXTURES / "dcgm/level3-pass.json",
        FIXTURES / "nvbandwidth/h100-8-pass.json",
        FIXTURES / "nccl/h100-8-low.txt",
    ]
    rc, out, err = sre(
        "diag", "import", *map(str, files), "--profile", "h100-sxm-8", "--store", str(store),
        "--node", "n17", "--json",
    )  # fmt: skip
    assert rc == 2, err
    data = json.loads(out)
    assert [r["kind"] for r in data["runs"]] == ["dcgm", "nvbandwidth", "nccl"]
    assert data["runs"][0]["level"] == 3
    with Store(store) as s:
        assert [r.kind for r in diag_history.runs(s, node="n17")] != []
        assert diag_history.latest(s, "n17", kind="nccl").status == "crit"  # type: ignore[union-attr]
        assert diag_history.passed(s, "n17", level=3)


def _stored_runs(store: Path) -> int:
    with Store(store) as s:
        return len(diag_history.runs(s, limit=1000))


HOSTILE = [
    ("not-json", "{not json", "not valid JSON: Expecting property name"),
    ("wrong-status", '{"DCGM Diagnostic": {"test_categories": [{"category": "Hardware", '
     '"tests": [{"name": "memory", "results": [{"entity_group": "GPU", "entity_id": 0, '
     '"status": "Exploded"}]}]}]}}',
     "DCGM Diagnostic.test_categories[0].tests[0].results[0].status: unknown status 'Exploded'"),
    ("entity-id-string", '{"DCGM Diagnostic": {"test_categories": [{"tests": [{"name": "pcie", '
     '"results": [{"entity_group": "GPU", "entity_id": "0", "status": "Pass"}]}]}]}}',
     "results[0].entity_id: expected an integer"),
    # 2**64 did not fit the store's integer column (OverflowError); -1 was stored as "GPU -1".
    ("entity-id-2**64", '{"DCGM Diagnostic": {"test_categories": [{"tests": [{"name": "pcie", '
     '"results": [{"entity_group": "GPU", "entity_id": 18446744073709551616, '
     '"status": "Pass"}]}]}]}}',
     "results[0].entity_id: expected an integer from 0 to 2147483647"),
    ("entity-id-negative", '{"DCGM Diagnostic": {"test_categories": [{"tests": [{"name": "pcie", '
     '"results": [{"entity_group": "GPU", "entity_id": -1, "status": "Pass"}]}]}]}}',
     "results[0].entity_id: expected an integer from 0 to 2147483647, got -1"),
    ("nvbandwidth-matrix-text", '{"nvbandwidth": {"testcases": [{"name": '
     '"host_to_device_memcpy_ce", "status": "Passed", "bandwidth_matrix": [["fast"]]}]}}',
     "nvbandwidth.testcases[0].bandwidth_matrix[0][0]: expected a bandwidth, got 'fast'"),
    ("deep-nesting", "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("duplicate-key", '{"nvbandwidth": {}, "nvbandwidth": {}}', "duplicate key"),
    ("unknown-json", '{"hello": 1}', "(top level): JSON that is neither"),
    ("plain-text", "hello world\n", "not a recognised diagnostic output"),
    ("nccl-short-row", "# nccl-tests version 2.17.6\n  1024  256  float  sum  -1  1.0\n"
     "# Avg bus bandwidth    : 1\n", "line 2: a result row needs 13 columns, found 6"),
    ("nccl-long-line", "# nccl-tests version 2.17.6\n" + "9" * 5000 + "\n",
     "line 2: longer than 4096 characters"),
    ("nan-bandwidth", '{"nvbandwidth": {"testcases": [{"name": "x", "status": "Passed", '
     '"bandwidth_matrix": [[NaN]]}]}}', "NaN is not a number"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_malformed_import_is_one_line_unknown_and_stores_nothing(
    sre: Sre,
    tmp_path: Path,
    name: str,
    text: str,
    message: str,
) -> None:
    store = tmp_path / "s.db"
    good = FIXTURES / "dcgm/level1-pass.json"
    assert sre("diag", "import", str(good), "--store", str(store))[0] == 0
    bad = tmp_path / f"{name}.out"
    bad.write_text(text)
    rc, out, err = sre("diag", "import", str(good), str(bad), "--store", str(store))
    assert rc == 3
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"sre: error: {bad}: ")
    assert message in err
    assert _stored_runs(store) == 1  # the earlier import is kept; nothing of this one


def test_oversized_import_is_refused_at_the_cap(sre: Sre, tmp_path: Path) -> None:
    big = tmp_path / "huge.json"
    with big.open("wb") as fh:
        fh.truncate(16 * 1024 * 1024 + 1)
    rc, out, err = sre("diag", "import", str(big), "--no-store")
    assert (rc, out) == (3, "")
    assert err == f"sre: error: {big}: diagnostic output larger than 16 MiB, the size limit\n"


def test_debug_shows_the_traceback_and_keeps_the_code(sre: Sre, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    rc, _, err = sre("--debug", "diag", "import", str(bad), "--no-store")
    assert rc == 3
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("sre: error: ")


@pytest.mark.parametrize(
    "args",
    [("run", "--level", "5"), ("run", "--format", "xml"), ("import",), ("run", "--bogus")],
    ids=["level-out-of-range", "bad-format", "import-without-files", "unknown-option"],
)
def test_usage_errors_are_unknown(sre: Sre, args: tuple[str, ...]) -> None:
    rc, out, err = sre("diag", *args)
    assert (rc, out) == (3, "")
    assert err.startswith("sre: usage error: ") and err.count("\n") == 1


def test_bad_site_file_is_unknown_naming_the_field(sre: Sre, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("diag:\n  nccl:\n    busbw_min_gbps: fast\n")
    rc, out, err = sre("diag", "import", str(FIXTURES / "nccl/h100-8-pass.txt"), "--site",
                       str(site), "--no-store")  # fmt: skip
    assert (rc, out) == (3, "")
    assert err == (
        f"sre: error: {site}: diag.nccl.busbw_min_gbps: expected int or null, got 'fast'\n"
    )


def test_zero_timeout_in_site_file_is_refused(
    sre: Sre,
    fake_tool: FakeTool,
    tmp_path: Path,
) -> None:
    fake_tool("dcgmi", "dcgm/level1-pass.json")
    site = tmp_path / "site.yaml"
    site.write_text("diag:\n  dcgm:\n    timeout_level_1_seconds: 0\n")
    rc, _, err = _run(sre, tmp_path / "s.db", "--site", str(site))
    assert rc == 3
    assert "diag.dcgm.timeout_level_1_seconds: must be a number of seconds above 0" in err


def test_run_without_nvml_still_runs_and_says_why(
    sre: Sre, fake_tool: FakeTool, tmp_path: Path
) -> None:
    # No GPU driver on the build machine: NVML cannot start, DCGM's serials fill in.
    fake_tool("dcgmi", "dcgm/level1-pass.json")
    rc, out, err = sre("diag", "run", "--store", str(tmp_path / "s.db"), "--json")
    assert rc == 0, err
    (run,) = json.loads(out)["runs"]
    assert run["inventory_note"].startswith("NVML")
    assert [g["serial"] for g in run["gpus"]] == [str(1752624007973 + 17 * i) for i in range(8)]


def test_one_gpu_h100_gets_the_h100_profile(sre: Sre, fake_tool: FakeTool, tmp_path: Path) -> None:
    # The real H100 capture (one GPU, no NVSwitch): the 1-GPU profile's 48 GB/s floors judge it.
    capture = Path(__file__).resolve().parents[1] / "fixtures" / "gpu" / "h100-capture.json"
    fake_tool("nvbandwidth", "nvbandwidth/h100-8-h2d-low-gpu4.json")
    rc, out, err = sre(
        "diag", "run", "--no-dcgm", "--nvbandwidth", "--replay", str(capture), "--no-store",
        "--json",
    )  # fmt: skip
    assert rc == 2, err
    h2d = [f for f in json.loads(out)["findings"] if f["check"] == "diag.nvbandwidth.h2d"]
    assert {f["evidence"]["profile"] for f in h2d} == {"h100"}
    assert [f["gpu"]["index"] for f in h2d if f["severity"] == "crit"] == [4]
    # p2p is not judged for one GPU without a fabric (no floor in h100)
    p2p = [f for f in json.loads(out)["findings"] if f["check"] == "diag.nvbandwidth.p2p_read"]
    assert p2p and all(f["severity"] == "skipped" for f in p2p)


def test_corrupt_store_is_one_line(sre: Sre, fake_tool: FakeTool, tmp_path: Path) -> None:
    store = tmp_path / "garbage.db"
    store.write_bytes(b"not a database" * 100)
    good = str(FIXTURES / "dcgm/level1-pass.json")
    for args in (("history",), ("import", good)):
        rc, out, err = sre("diag", *args, "--store", str(store))
        assert (rc, out) == (3, ""), args
        assert err.startswith(f"sre: error: {store}: cannot open store: ") and err.count("\n") == 1
    # A run keeps its verdict when the record cannot be written: a warning, then the result.
    fake_tool("dcgmi", "dcgm/level2-memory-fail-gpu3.json", rc=226)
    rc, out, err = _run(sre, store, "--level", "2", "--format", "nhc")
    assert rc == 2 and "diag.dcgm.memory" in out
    assert err.startswith("sre: warning: results not stored: ") and err.count("\n") == 1


def test_import_from_standard_input(
    sre: Sre, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    text = (FIXTURES / "nvbandwidth/h100-8-h2d-low-gpu4.json").read_text()
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    rc, out, err = sre("diag", "import", "-", "--profile", "h100-sxm-8", "--no-store", "--json")
    assert rc == 2, err
    data = json.loads(out)
    assert data["source"] == "import:<stdin>"
    assert [f["gpu"]["index"] for f in data["findings"] if f["severity"] == "crit"] == [4]
