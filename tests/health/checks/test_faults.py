"""Each fault fixture gives exactly its expected findings (check, severity, action), nothing more.

``reset.pending`` is the aggregate every reset/reboot finding also produces; it is listed where
the fault's own action is a reset or reboot.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sre_tools.health.model import Action, Severity
from tests.health.checks.conftest import FAULTS, HGX, Runner, only, problems

A, S = Action, Severity
CRIT, WARN = S.CRIT, S.WARN

CASES = [
    pytest.param("generic", {("gpu.lost", CRIT, A.POWER_CYCLE)}, id="gpu-lost"),
    pytest.param(
        "generic",
        {("nvml.init", CRIT, A.REBOOT), ("reset.pending", CRIT, A.REBOOT)},
        id="driver-library-mismatch",
    ),
    pytest.param(
        "generic",
        {("ecc.uncorrected_volatile", CRIT, A.RESET_GPU), ("reset.pending", CRIT, A.RESET_GPU)},
        id="dbe-volatile",
    ),
    pytest.param(
        "generic",
        {("remap.pending", CRIT, A.RESET_GPU), ("reset.pending", CRIT, A.RESET_GPU)},
        id="remap-pending",
    ),
    pytest.param("generic", {("remap.failure", CRIT, A.RMA_CANDIDATE)}, id="remap-failure"),
    pytest.param("generic", {("remap.histogram", WARN, A.NONE)}, id="remapper-histogram-low"),
    pytest.param(
        "generic", {("remap.histogram", WARN, A.RMA_CANDIDATE)}, id="remapper-histogram-none"
    ),
    pytest.param(
        "generic",
        {("thermal.gpu", CRIT, A.CHECK_MECHANICALS), ("clocks.events", CRIT, A.CHECK_MECHANICALS)},
        id="thermal-slowdown",
    ),
    pytest.param(
        "generic", {("pcie.width", CRIT, A.CHECK_MECHANICALS)}, id="pcie-width-downtrained"
    ),
    pytest.param(
        "h100-sxm-8",
        {("nvlink.state", CRIT, A.DRAIN_AND_RESET), ("reset.pending", CRIT, A.DRAIN_AND_RESET)},
        id="nvlink-down",
    ),
    pytest.param(
        "h100-sxm-8",
        {("fabric.state", CRIT, A.RESTART_FABRIC_MANAGER)},
        id="fabric-not-completed",
    ),
    pytest.param(
        "generic",
        {("ecc.mode", WARN, A.REBOOT), ("reset.pending", WARN, A.REBOOT)},
        id="ecc-mode-pending",
    ),
    pytest.param(
        "generic",
        {("mig.pending", WARN, A.RESET_GPU), ("reset.pending", WARN, A.RESET_GPU)},
        id="mig-pending",
    ),
]


@pytest.mark.parametrize(("profile", "expected"), CASES)
def test_fault_fixture_gives_exactly_its_findings(
    run: Runner, request: pytest.FixtureRequest, profile: str, expected: set[tuple[str, S, A]]
) -> None:
    name = request.node.callspec.id
    report = run(FAULTS / f"{name}.json", profile=profile)
    got = {(f.check, f.severity, f.action) for f in problems(report)}
    assert got == expected
    assert not [f for f in report.findings if f.severity is S.UNKNOWN]
    worst = max((sev for _, sev, _ in expected), key=lambda s: s.rank)
    assert report.severity is worst
    assert report.exit_code == {CRIT: 2, WARN: 1}[worst]


def test_nvlink_down_names_the_gpu_and_link(run: Runner) -> None:
    report = run(FAULTS / "nvlink-down.json", profile="h100-sxm-8")
    (down,) = [f for f in only(report, "nvlink.state") if f.severity is S.CRIT]
    assert down.gpu is not None and down.gpu.index == 3
    assert down.evidence["inactive_links"] == [7]
    assert (down.evidence["active"], down.evidence["expected"]) == (17, 18)
    (reset,) = only(report, "reset.pending")
    assert reset.evidence["gpus"] == [3]


def test_nvlink_down_without_a_profile_is_caught_against_links_seen_before(run: Runner) -> None:
    # generic has no expected_links: the first sight of a node sets the expectation.
    first = run(FAULTS / "nvlink-down.json", profile="generic")
    assert not [f for f in problems(first) if f.check == "nvlink.state"]
    run(HGX, profile="generic")  # healthy run, same state file: 18 links seen on every GPU
    later = run(FAULTS / "nvlink-down.json", profile="generic")
    (down,) = [f for f in problems(later) if f.check == "nvlink.state"]
    assert down.evidence["expected_from"] == "most seen active"


def test_fabric_not_completed_is_reported_per_gpu(run: Runner) -> None:
    report = run(FAULTS / "fabric-not-completed.json", profile="h100-sxm-8")
    crit = [f for f in only(report, "fabric.state") if f.severity is S.CRIT]
    assert sorted(f.gpu.index for f in crit if f.gpu) == list(range(8))
    assert crit[0].evidence["state"] == "in_progress"


@pytest.mark.parametrize("path", sorted(FAULTS.glob("*.json")), ids=lambda p: Path(p).stem)
def test_fault_fixture_findings_are_plain_json(run: Runner, path: Path) -> None:
    import json

    profile = "h100-sxm-8" if path.stem in {"nvlink-down", "fabric-not-completed"} else None
    json.dumps(run(path, profile=profile).to_dict())
