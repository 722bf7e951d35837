"""The ``xid`` and ``xid.recovery_action`` health checks, and ``collect_events``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sre_tools.gpu.backend import RecordedBackend
from sre_tools.health.checks.xid import collect_events, xid_findings
from sre_tools.health.model import Action, Finding, HealthReport, Severity
from sre_tools.health.policy import load_policy
from sre_tools.health.runner import run_health
from sre_tools.health.state import CounterState
from sre_tools.health.xid.kernel_log import KernelLogError, KernelLogReader

from .conftest import BOOT, T0, context, device, recording

FELL = "NVRM: Xid (PCI:0000:18:00): 79, pid=1234, name=python, GPU has fallen off the bus."


def run(data: dict[str, Any], lines: list[str] | None, config: str | None = None) -> HealthReport:
    return run_health(
        RecordedBackend(data, "<test>"),
        load_policy(None, config),
        state=CounterState(),
        now=T0,
        sysfs=Path("/nonexistent-sysfs"),
        kernel_log_lines=lines,
        host="node1",
        timeout=30,
    )


def only(report: HealthReport, check: str) -> list[Finding]:
    return [f for f in report.findings if f.check == check]


def test_no_xids_is_one_ok_finding() -> None:
    (f,) = only(run(recording(), []), "xid")
    assert f.severity is Severity.OK
    assert f.gpu is None
    assert f.evidence["kernel_log"] == "injected"


def test_findings_per_gpu_with_evidence() -> None:
    lines = [
        "[ 10.000000] NVRM: Xid (PCI:0000:3b:00): 48, pid='<unknown>', name=<unknown>, DBE",
        "[ 10.000500] NVRM: Xid (PCI:0000:3b:00): 63, pid='<unknown>', name=<unknown>, remap",
        "[ 11.0] NVRM: Xid (PCI:0000:3b:00): 48, pid='<unknown>', name=<unknown>, DBE again",
        "[ 12.0] NVRM: Xid (PCI:0000:18:00): 13, pid=77, name=train, Graphics Exception",
    ]
    report = run(recording(), lines)
    findings = {f.gpu.index: f for f in only(report, "xid") if f.gpu is not None}
    assert set(findings) == {0, 1}
    gpu1 = findings[1]
    assert (gpu1.severity, gpu1.action) == (Severity.CRIT, Action.DRAIN_AND_RESET)
    assert gpu1.gpu is not None and gpu1.gpu.pci_bus_id == "00000000:3B:00.0"
    ev = gpu1.evidence
    assert ev["count"] == 3
    assert ev["xids"] == [48, 63]
    assert ev["counts"] == {"48": 2, "63": 1}
    assert ev["pci_bus_id"] == "0000:3b:00"
    first = ev["events"][0]
    assert first["xid"] == 48
    assert first["mnemonic"] == "ROBUST_CHANNEL_GPU_ECC_DBE"
    assert first["catalog_immediate"] == "WORKFLOW_XID_48"
    assert first["catalog_investigatory"] == "WORKFLOW_XID_48"
    assert first["line"] == lines[0]
    assert first["uptime"] == 10.0
    assert "XID 48 x2, 63" in gpu1.summary
    assert (findings[0].severity, findings[0].action) == (Severity.WARN, Action.RESTART_APP)
    assert report.action is Action.DRAIN_AND_RESET
    assert report.exit_code == 2


def test_mig_instance_goes_into_the_gpu_ref() -> None:
    lines = ["NVRM: Xid (PCI:0000:18:00 GPU-I:05): 31, pid=1, name=x, MMU Fault"]
    (f,) = only(run(recording(), lines), "xid")
    assert f.gpu is not None
    assert (f.gpu.index, f.gpu.mig) == (0, "GPU-I:05")


def test_unknown_bus_still_reported() -> None:
    lines = ["NVRM: Xid (PCI:0000:86:00): 94, pid=1, name=x, Contained ECC error."]
    (f,) = only(run(recording(), lines), "xid")
    assert f.gpu is None
    assert f.evidence["pci_bus_id"] == "0000:86:00"
    assert f.action is Action.RESTART_APP


def test_xid_79_on_a_gpu_nvml_cannot_see_means_power_cycle() -> None:
    lines = ["NVRM: Xid (PCI:0000:86:00): 79, pid=1, name=x, GPU has fallen off the bus."]
    (f,) = only(run(recording(), lines), "xid")
    assert (f.gpu, f.action, f.severity) == (None, Action.POWER_CYCLE, Severity.CRIT)


def test_xid_79_on_a_visible_gpu_follows_the_catalog() -> None:
    (f,) = only(run(recording(), [FELL]), "xid")
    assert f.action is Action.REBOOT


def test_recovery_action_reading_is_authoritative() -> None:
    lines = ["NVRM: Xid (PCI:0000:18:00): 13, pid=1, name=x, Graphics Exception"]
    report = run(recording(gpu0=2), lines)
    (f,) = only(report, "xid")
    assert (f.action, f.severity) == (Action.REBOOT, Severity.CRIT)
    assert f.evidence["authoritative"] == "nvml"
    recovery = {g.gpu.index: g for g in only(report, "xid.recovery_action") if g.gpu}
    assert (recovery[0].severity, recovery[0].action) == (Severity.CRIT, Action.REBOOT)
    assert recovery[1].severity is Severity.OK


def test_recovery_action_values() -> None:
    data = recording(gpus=2, gpu0=4, gpu1=7)
    got = {f.gpu.index: f for f in only(run(data, []), "xid.recovery_action") if f.gpu}
    assert got[0].action is Action.DRAIN_AND_RESET
    assert got[1].severity is Severity.UNKNOWN


def test_recovery_action_not_supported_is_skipped() -> None:
    data = recording(gpus=1)
    data["devices"] = [device(0, recovery_action=None)]
    (f,) = only(run(data, []), "xid.recovery_action")
    assert f.severity is Severity.SKIPPED


def test_nvml_events_from_the_recording_are_deduplicated_with_the_log() -> None:
    data = recording(events=[{"type": "xid", "gpu_index": 0, "xid": 79, "timestamp": T0 + 1}])
    lines = [f"2026-11-20T10:00:00+0000 node1 kernel: {FELL}"]
    (f,) = only(run(data, lines), "xid")
    assert f.evidence["count"] == 1
    assert set(f.evidence["events"][0]["sources"]) == {"journal", "nvml"}


def test_kernel_log_still_read_when_nvml_is_down() -> None:
    data = {"version": 1, "init_error": "driver_not_loaded"}
    (f,) = only(run(data, [FELL]), "xid")  # kernel log still read without NVML
    assert f.gpu is None and f.action is Action.REBOOT


def test_solo_45_without_nvswitch_restarts_the_app() -> None:
    lines = ["NVRM: Xid (PCI:0000:18:00): 45, pid=1, name=x, Ch 00000010"]
    (f,) = only(run(recording(), lines), "xid")
    assert f.action is Action.RESTART_FABRIC_MANAGER
    (g,) = only(run(recording(), lines, config="nvswitch: false"), "xid")
    assert g.action is Action.RESTART_APP


def test_collect_events_is_cached_and_keyed() -> None:
    ctx = context(
        recording(events=[{"type": "dbe", "gpu_index": 1, "timestamp": T0}]),
        kernel_log_lines=[FELL],
    )
    events = collect_events(ctx)
    assert [(e.xid, e.pci_bus_id) for e in events] == [(79, "0000:18:00"), (48, "0000:3b:00")]
    assert all(e.key for e in events)
    assert collect_events(ctx) == events  # same list on a second call (NVML events drained once)


def fake_reader(tmp_path: Path, **answers: str | Exception) -> KernelLogReader:
    def run_cmd(argv: Any, timeout: float) -> str:
        answer = answers.get(argv[0], KernelLogError(f"{argv[0]}: not found"))
        if isinstance(answer, Exception):
            raise answer
        return answer

    return KernelLogReader(
        kmsg_path=tmp_path / "no-kmsg", run=run_cmd, clock=lambda: T0, boot_time=lambda: BOOT
    )


def test_backfill_from_dmesg_uses_the_window(tmp_path: Path) -> None:
    old = f"[ 100.000000] {FELL}"  # 9900 s before T0
    new = "[ 9990.000000] NVRM: Xid (PCI:0000:3b:00): 94, pid=1, name=x, Contained ECC error."
    reader = fake_reader(tmp_path, dmesg=f"{old}\n{new}\n")
    ctx = context(config="xid:\n  backfill_seconds: 3600")
    findings = xid_findings(ctx, reader=reader)
    assert [f.evidence["xids"] for f in findings] == [[94]]
    assert findings[0].evidence["kernel_log"] == "dmesg"
    assert findings[0].evidence["window_seconds"] == 3600


def test_kernel_log_timeout_is_unknown_not_a_crash(tmp_path: Path) -> None:
    reader = fake_reader(
        tmp_path,
        journalctl=KernelLogError("journalctl timed out after 10s"),
        dmesg=KernelLogError("dmesg timed out after 10s"),
    )
    ctx = context(recording(events=[{"type": "xid", "gpu_index": 0, "xid": 48, "timestamp": T0}]))
    findings = xid_findings(ctx, reader=reader)
    unknown = [f for f in findings if f.severity is Severity.UNKNOWN]
    assert len(unknown) == 1 and "timed out" in unknown[0].summary
    # what NVML delivered is still judged
    crit = [f for f in findings if f.severity is Severity.CRIT]
    assert [f.action for f in crit] == [Action.RESET_GPU]
