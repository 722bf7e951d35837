"""Recorded outputs in the tools' formats, parsed and judged into health findings."""

from __future__ import annotations

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
