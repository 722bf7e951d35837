"""NotSupported means "not applicable": SKIPPED, never a warning; other read errors are UNKNOWN."""

from __future__ import annotations

import pytest

from sre_tools.health.model import Severity
from tests.health.checks.conftest import H100, NOT_SUPPORTED, Runner, load, only, patched, problems

H100_KEYS = sorted(load(H100)["devices"][0]["readings"])
SITE_H100_SXM = "profile: h100-sxm-8\nexpected_gpus: 1\n"


@pytest.mark.parametrize(
    ("config", "check"),
    [
        pytest.param(None, "nvlink.state", id="nvlink-state-generic"),
        pytest.param(None, "nvlink.errors", id="nvlink-errors-generic"),
        pytest.param(None, "fabric.state", id="fabric-generic"),
        pytest.param(None, "retired_pages", id="retired-pages-on-hopper"),
        pytest.param(
            "thermal:\n  hbm_warn_c: 85\n", "fabric.state", id="fabric-site-file-no-profile"
        ),
    ],
)
def test_h100_without_nvlink_or_fabric_is_skipped_not_warned(
    run: Runner, config: str | None, check: str
) -> None:
    report = run(H100, config=config)
    (finding,) = only(report, check)
    assert finding.severity is Severity.SKIPPED
    assert problems(report) == []


@pytest.mark.parametrize(
    ("check", "severity"),
    [
        pytest.param("nvlink.state", Severity.CRIT, id="nvlink-state-expecting-18"),
        pytest.param("nvlink.errors", Severity.UNKNOWN, id="nvlink-errors-expecting-18"),
        pytest.param("fabric.state", Severity.CRIT, id="fabric-expecting-nvswitch"),
    ],
)
def test_not_supported_is_a_finding_where_the_profile_expects_nvlink_and_fabric(
    run: Runner, check: str, severity: Severity
) -> None:
    report = run(H100, config=SITE_H100_SXM)
    (finding,) = only(report, check)
    assert finding.severity is severity
    assert "h100-sxm-8" in finding.summary


@pytest.mark.parametrize("key", H100_KEYS)
def test_any_single_reading_not_supported_never_warns(run: Runner, key: str) -> None:
    report = run(patched(H100, {0: {key: NOT_SUPPORTED}}))
    assert problems(report) == []
    assert not [f for f in report.findings if f.severity is Severity.UNKNOWN]


def test_unrecorded_readings_are_not_supported(run: Runner) -> None:
    data = load(H100)
    data["devices"][0]["readings"] = {
        k: v for k, v in data["devices"][0]["readings"].items() if k in {"uuid", "pci", "name"}
    }
    report = run(data)
    assert problems(report) == []
    skipped = {f.check for f in report.findings if f.severity is Severity.SKIPPED}
    assert {"ecc.mode", "thermal.gpu", "pcie.width", "mig.pending", "clocks.events"} <= skipped


def test_other_read_errors_are_unknown_not_warnings(run: Runner) -> None:
    report = run(patched(H100, {0: {"temperature_c": {"error": "UNKNOWN"}}}))
    (finding,) = only(report, "thermal.gpu")
    assert finding.severity is Severity.UNKNOWN
    assert "UNKNOWN" in finding.summary
    assert problems(report) == []
    assert report.exit_code == 3
