"""Recorded outputs in the tools' formats, parsed and judged into health findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sre_tools.diag.formats import detect, judge_text
from sre_tools.diag.model import Inventory, Kind
from sre_tools.health.model import Action, Severity
from sre_tools.health.policy import load_policy
from tests.diag.conftest import FIXTURES


def _judge(name: str, profile: str = "h100-sxm-8", rc: int | None = None, site: str | None = None):
    text = (FIXTURES / name).read_text()
    policy = load_policy(profile, site)
    return judge_text(
        text,
        name,
        policy=policy,
        inventory=Inventory(),
        node="hgx-h100-8",
        started=100.0,
        ended=130.0,
        label=f"import:{name}",
        rc=rc,
    )


# (fixture, kind, level, worst severity, action, [(check, gpu index or None, severity, action)])
CASES = [
    ("dcgm/level1-pass.json", Kind.DCGM, 1, Severity.OK, Action.NONE, []),
    ("dcgm/level2-pass.json", Kind.DCGM, 2, Severity.OK, Action.NONE, []),
    ("dcgm/level3-pass.json", Kind.DCGM, 3, Severity.OK, Action.NONE, []),
    (
        "dcgm/level2-memory-fail-gpu3.json",
        Kind.DCGM,
        2,
        Severity.CRIT,
        Action.RMA_CANDIDATE,
        [("diag.dcgm.memory", 3, Severity.CRIT, Action.RMA_CANDIDATE)],
    ),
    (
        "dcgm/level2-pcie-fail-gpu5.json",
        Kind.DCGM,
        2,
        Severity.CRIT,
        Action.CHECK_MECHANICALS,
        [("diag.dcgm.pcie", 5, Severity.CRIT, Action.CHECK_MECHANICALS)],
    ),
    (
        "dcgm/level1-persistence-off.json",
        Kind.DCGM,
        1,
        Severity.CRIT,
        Action.RESTART_APP,
        [("diag.dcgm.software", i, Severity.CRIT, Action.RESTART_APP) for i in range(8)],
    ),
    (
        "dcgm/level3-thermal-warn-gpu6.json",
        Kind.DCGM,
        3,
        Severity.WARN,
        Action.CHECK_MECHANICALS,
        [("diag.dcgm.targeted_power", 6, Severity.WARN, Action.CHECK_MECHANICALS)],
    ),
    (
        "dcgm/runtime-error-hostengine.json",
        Kind.DCGM,
        1,
        Severity.UNKNOWN,
        Action.NONE,
        [("diag.dcgm.runtime_error", None, Severity.UNKNOWN, Action.NONE)],
    ),
    ("nvbandwidth/h100-8-pass.json", Kind.NVBANDWIDTH, 0, Severity.OK, Action.NONE, []),
    (
        "nvbandwidth/h100-8-h2d-low-gpu4.json",
        Kind.NVBANDWIDTH,
        0,
        Severity.CRIT,
        Action.CHECK_MECHANICALS,
        [("diag.nvbandwidth.h2d", 4, Severity.CRIT, Action.CHECK_MECHANICALS)],
    ),
    (
        "nvbandwidth/h100-8-d2h-warn-gpu1.json",
        Kind.NVBANDWIDTH,
        0,
        Severity.WARN,
        Action.NONE,
        [("diag.nvbandwidth.d2h", 1, Severity.WARN, Action.NONE)],
    ),
    (
        "nvbandwidth/h100-8-p2p-low-gpu2.json",
        Kind.NVBANDWIDTH,
        0,
        Severity.CRIT,
        Action.CONTACT_SUPPORT,
        [("diag.nvbandwidth.p2p_read", 2, Severity.CRIT, Action.CONTACT_SUPPORT)],
    ),
    (
        "nvbandwidth/cuda-error.json",
        Kind.NVBANDWIDTH,
        0,
        Severity.UNKNOWN,
        Action.NONE,
        [("diag.nvbandwidth.error", None, Severity.UNKNOWN, Action.NONE)],
    ),
    ("nccl/h100-8-pass.txt", Kind.NCCL, 0, Severity.OK, Action.NONE, []),
    (
        "nccl/h100-8-low.txt",
        Kind.NCCL,
        0,
        Severity.CRIT,
        Action.CONTACT_SUPPORT,
        [("diag.nccl.all_reduce", None, Severity.CRIT, Action.CONTACT_SUPPORT)],
    ),
    (
        "nccl/h100-8-warn.txt",
        Kind.NCCL,
        0,
        Severity.WARN,
        Action.NONE,
        [("diag.nccl.all_reduce", None, Severity.WARN, Action.NONE)],
    ),
    (
        "nccl/h100-8-wrong.txt",
        Kind.NCCL,
        0,
        Severity.CRIT,
        Action.DRAIN_AND_RESET,
        [("diag.nccl.correctness", None, Severity.CRIT, Action.DRAIN_AND_RESET)],
    ),
    (
        "nccl/h100-8-truncated.txt",
        Kind.NCCL,
        0,
        Severity.UNKNOWN,
        Action.NONE,
        [("diag.nccl.incomplete", None, Severity.UNKNOWN, Action.NONE)],
    ),
    (
        "nccl/h100-8-nccl-failure.txt",
        Kind.NCCL,
        0,
        Severity.UNKNOWN,
        Action.NONE,
        [("diag.nccl.error", None, Severity.UNKNOWN, Action.NONE)] * 2,
    ),
    (
        "nccl/2x-h100-8-ndr.txt",
        Kind.NCCL,
        0,
        Severity.WARN,
        Action.NONE,
        [("diag.nccl.all_reduce", None, Severity.WARN, Action.NONE)],
    ),
]


@pytest.mark.parametrize(
    ("fixture", "kind", "level", "severity", "action", "problems"),
    CASES,
    ids=[c[0].replace("/", ":") for c in CASES],
)
def test_recorded_output_is_judged(
    fixture: str,
    kind: Kind,
    level: int,
    severity: Severity,
    action: Action,
    problems: list[tuple[str, int | None, Severity, Action]],
) -> None:
    run = _judge(fixture)
    assert run.kind is kind
    assert run.level == level
    assert run.report.severity is severity
    assert run.report.action is action
    got = [
        (f.check, None if f.gpu is None else f.gpu.index, f.severity, f.action)
        for f in run.report.problems()
    ]
    assert got == problems


def test_a_passing_dcgm_level_2_has_one_ok_finding_per_test_and_gpu() -> None:
    run = _judge("dcgm/level2-pass.json")
    assert len(run.findings) == 3 * 8
    assert {f.check for f in run.findings} == {
        "diag.dcgm.software",
        "diag.dcgm.pcie",
        "diag.dcgm.memory",
    }
    # The serials come from DCGM's entity list (an imported file has no NVML).
    assert [g.serial for g in run.inventory.gpus] == [str(1752624007973 + 17 * i) for i in range(8)]
    assert run.inventory.driver_version == "580.159.04"
    assert run.tool_version == "4.2.3"


def test_memory_failure_names_the_error_and_the_serial() -> None:
    run = _judge("dcgm/level2-memory-fail-gpu3.json")
    (bad,) = run.report.problems()
    assert "Found 12 faulty memory elements on GPU 3" in bad.summary
    assert "DCGM error 52" in bad.summary
    assert bad.evidence["serial"] == str(1752624007973 + 17 * 3)
    assert bad.evidence["errors"][0]["error_id"] == 52


@pytest.mark.parametrize(
    ("rc", "severity", "check"),
    [
        (245, Severity.CRIT, "diag.dcgm.timeout"),  # DCGM_ST_TIMEOUT (-11)
        (0, Severity.UNKNOWN, "diag.dcgm.runtime_error"),
    ],
    ids=["dcgmi-timeout-status-is-crit", "imported-runtime-error-is-unknown"],
)
def test_dcgm_runtime_error_by_exit_status(rc: int, severity: Severity, check: str) -> None:
    run = _judge("dcgm/runtime-error-timeout.json", rc=rc)
    (finding,) = run.findings
    assert (finding.check, finding.severity) == (check, severity)
    assert "Timeout" in finding.summary


def test_dcgm_failure_status_without_a_failing_result_is_unknown_not_ok() -> None:
    run = _judge("dcgm/level2-pass.json", rc=226)
    assert run.report.severity is Severity.UNKNOWN
    assert run.report.problems()[0].check == "diag.dcgm.exit_status"
    assert "DCGM_ST_NVVS_ERROR" in run.report.problems()[0].summary


@pytest.mark.parametrize(
    ("fixture", "check"),
    [
        ("nvbandwidth/h100-8-h2d-low-gpu4.json", "diag.nvbandwidth.h2d"),
        ("nccl/h100-8-low.txt", "diag.nccl.all_reduce"),
    ],
    ids=["nvbandwidth", "nccl"],
)
def test_generic_profile_records_bandwidth_without_judging_it(fixture: str, check: str) -> None:
    run = _judge(fixture, profile="generic")
    assert run.report.severity is Severity.OK  # nothing judged: skipped findings only
    judged = [f for f in run.findings if f.check == check]
    assert judged and all(f.severity is Severity.SKIPPED for f in judged)
    assert all("no floor in profile generic" in f.summary for f in judged)


def test_site_file_overrides_a_floor() -> None:
    # The passing 8-GPU run (481 GB/s at 16 GiB) fails a site floor of 500 GB/s.
    run = _judge("nccl/h100-8-pass.txt", site="diag:\n  nccl:\n    busbw_min_gbps: 500\n")
    (bad,) = run.report.problems()
    assert bad.severity is Severity.CRIT
    assert bad.evidence["floor_gbps"] == 500
    assert bad.evidence["size_bytes"] == 17179869184


def test_a100_profile_judges_8_gib_messages() -> None:
    run = _judge("nccl/h100-8-pass.txt", profile="a100-sxm-8")
    (f,) = [f for f in run.findings if f.check == "diag.nccl.all_reduce"]
    assert f.severity is Severity.OK and f.evidence["floor_gbps"] == 228
    assert f.evidence["size_bytes"] == 17179869184  # the best of the rows >= 8 GiB


def test_multinode_floor_is_per_nic_times_nics() -> None:
    run = _judge("nccl/2x-h100-8-ndr.txt")
    (f,) = run.report.problems()
    assert f.evidence["floor_gbps"] == 46 * 8
    assert f.evidence["nodes"] == ["hgx-h100-8", "hgx-h100-9"]
    assert f.evidence["ranks"] == 16


@pytest.mark.parametrize(
    "fixture",
    ["dcgm/level1-pass.json", "nvbandwidth/h100-8-pass.json", "nccl/h100-8-pass.txt"],
    ids=["dcgm", "nvbandwidth", "nccl"],
)
def test_detect_names_the_kind(fixture: str) -> None:
    kind, _ = detect((FIXTURES / fixture).read_text(), fixture)
    assert kind.value == Path(fixture).parts[0]


def _slug(heading: str) -> str:
    import re

    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).strip().replace(" ", "-")


def test_every_problem_links_an_existing_runbook_section() -> None:
    from sre_tools.diag.model import RUNBOOK, RUNBOOK_SECTIONS

    root = Path(__file__).resolve().parents[2]
    headings = {
        _slug(line[3:])
        for line in (root / RUNBOOK).read_text().splitlines()
        if line.startswith("## ")
    }
    assert {anchor for _, anchor in RUNBOOK_SECTIONS} <= headings
    problems = [
        f
        for name, *_ in CASES
        for f in _judge(name).findings
        if f.severity in (Severity.WARN, Severity.CRIT, Severity.UNKNOWN)
    ]
    assert problems
    assert all(f.evidence["runbook"].startswith(f"{RUNBOOK}#") for f in problems)
    assert (
        _judge("dcgm/level2-memory-fail-gpu3.json").report.problems()[0].evidence["runbook"]
        == f"{RUNBOOK}#memory"
    )


def _dcgm_doc(test: dict[str, object]) -> str:
    return json.dumps(
        {"DCGM Diagnostic": {"test_categories": [{"category": "Hardware", "tests": [test]}]}}
    )


MONITOR = {"error_id": 40, "error_category": 9, "error_severity": 1, "warning": "thermal"}
ISOLATE = {"error_id": 52, "error_category": 10, "error_severity": 2, "warning": "faulty"}
STATUS_CASES = [
    ("literal-warn", {"entity_group": "GPU", "entity_id": 1, "status": "Warn",
     "warnings": [MONITOR]}, Severity.WARN, Action.CHECK_MECHANICALS, 1),
    ("fail-monitor-only-is-warn", {"entity_group": "GPU", "entity_id": 1, "status": "Fail",
     "warnings": [MONITOR]}, Severity.WARN, Action.CHECK_MECHANICALS, 1),
    ("fail-with-isolate-is-crit", {"entity_group": "GPU", "entity_id": 1, "status": "Fail",
     "warnings": [MONITOR, ISOLATE]}, Severity.CRIT, Action.RMA_CANDIDATE, 1),
    ("fail-without-errors-uses-the-test", {"entity_group": "GPU", "entity_id": 2, "status": "Fail"},
     Severity.CRIT, Action.RMA_CANDIDATE, 2),
    ("skip", {"entity_group": "GPU", "entity_id": 0, "status": "Skip"}, Severity.SKIPPED,
     Action.NONE, 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "result", "severity", "action", "gpu"), STATUS_CASES, ids=[c[0] for c in STATUS_CASES]
)
def test_dcgm_status_and_error_severity(
    name: str, result: dict[str, object], severity: Severity, action: Action, gpu: int
) -> None:
    from sre_tools.diag import dcgm

    test = {"name": "memory", "results": [result], "test_summary": {"status": result["status"]}}
    out = dcgm.parse(json.loads(_dcgm_doc(test)), name)
    (f,) = dcgm.judge(out, Inventory())
    assert (f.severity, f.action, f.gpu.index if f.gpu else None) == (severity, action, gpu)


def test_dcgm_test_with_only_a_summary_is_a_node_finding() -> None:
    from sre_tools.diag import dcgm

    test = {"name": "software", "results": [], "test_summary": {"status": "Fail", "warnings": [
        {"error_id": 23, "error_category": 3, "error_severity": 2,
         "warning": "Found driver on the denylist: nouveau"}]}}  # fmt: skip
    out = dcgm.parse(json.loads(_dcgm_doc(test)), "summary")
    (f,) = dcgm.judge(out, Inventory())
    assert (f.check, f.severity, f.action, f.gpu) == (
        "diag.dcgm.software",
        Severity.CRIT,
        Action.REBOOT,
        None,
    )
    assert "Found driver on the denylist: nouveau" in f.summary


def test_one_node_floor_holds_only_for_the_profiles_gpu_count() -> None:
    # 8 ranks judged by a profile for 4 GPUs: recorded, not judged against the 8-GPU floor.
    run = _judge("nccl/h100-8-low.txt", site="expected_gpus: 4\n")
    (f,) = [f for f in run.findings if f.check == "diag.nccl.all_reduce"]
    assert f.severity is Severity.SKIPPED
    assert "the floor is for 4" in f.summary


def test_nccl_per_iteration_columns_are_read() -> None:
    # nccl-tests with per-iteration timing prints four more columns per half (src/util.cu).
    from sre_tools.diag import nccl

    text = (
        "# nccl-tests version 2.17.6 nccl-headers=22705 nccl-library=22705\n"
        "#       size         count      type   redop    root     time   algbw   busbw #wrong"
        "    i_min    i_max    i_p99    i_cv%     time   algbw   busbw #wrong    i_min    i_max"
        "    i_p99    i_cv%\n"
        " 17179869184    4294967296     float     sum      -1  62465.8  275.03  481.30       0"
        "  62000.0  63000.0  62900.0     0.40  62215.9  276.13  483.23       2  61000.0  64000.0"
        "  63900.0     0.50\n"
        "# Out of bounds values : 1 FAILED\n# Avg bus bandwidth    : 482.265 \n"
    )
    out = nccl.parse(text, "per-iter")
    (row,) = out.rows
    assert (row.oop_busbw, row.ip_busbw, row.oop_wrong, row.ip_wrong) == (481.30, 483.23, 0, 2)


@pytest.mark.parametrize(
    ("rc", "kind", "signal"),
    [
        (-9, Kind.DCGM, 9),
        (137, Kind.NCCL, 9),
        (143, Kind.NVBANDWIDTH, 15),
        (186, Kind.DCGM, None),  # a dcgmReturn_t (-70), not a signal
        (226, Kind.DCGM, None),
        (1, Kind.NCCL, None),
    ],
    ids=["popen-sigkill", "nccl-wrapped-sigkill", "nvbandwidth-sigterm", "dcgm-code-186",
         "dcgm-nvvs-error", "plain-failure"],
)  # fmt: skip
def test_signal_of(rc: int, kind: Kind, signal: int | None) -> None:
    from sre_tools.diag.outcome import signal_of

    assert signal_of(rc, kind) == signal
