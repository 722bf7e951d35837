"""Health reports and findings for tests, built from the domain model (sre_tools.health.model).

One builder for every test that needs a report: the model computes the status, the action and
the exit code, so no test keeps its own copy of the severity or action order. Tests that need
the JSON form take ``report(...).to_dict()``.

    report(finding("thermal.gpu", "warn", gpu=0), host="gpu01", at=T0)
    node_report("gpu05", T0, ("ecc.uncorrected_volatile", Severity.CRIT, Action.RESET_GPU, 3))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sre_tools.health.model import Action, Finding, GpuRef, HealthReport, Severity

Problem = tuple[str, Severity, Action, int | None]


def gpu_ref(index: int, uuid: str | None = None, pci_bus_id: str = "") -> GpuRef:
    """GPU ``index``; its UUID defaults to ``GPU-<index>``."""
    return GpuRef(index, f"GPU-{index}" if uuid is None else uuid, pci_bus_id)


def finding(
    check: str,
    severity: Severity | str = Severity.OK,
    action: Action | str = Action.NONE,
    *,
    gpu: GpuRef | int | None = None,
    summary: str = "",
    evidence: Mapping[str, Any] | None = None,
) -> Finding:
    """A finding; severity and action as the model's enums or their JSON values (``"warn"``,
    ``"reset_gpu"``), ``gpu`` as a :class:`GpuRef` or an index (see :func:`gpu_ref`), the summary
    ``"<check> is <severity>"`` unless given."""
    sev = Severity(severity)
    ref = gpu_ref(gpu) if isinstance(gpu, int) else gpu
    return Finding(
        check,
        sev,
        summary or f"{check} is {sev.value}",
        Action(action),
        ref,
        dict(evidence or {}),
    )


def report(
    *findings: Finding,
    host: str = "gpu-test",
    at: float = 0.0,
    source: str = "nvml",
    duration_seconds: float = 0.0,
) -> HealthReport:
    """A report of ``findings`` as the health runner returns it."""
    return HealthReport(host, at, tuple(findings), source, duration_seconds)


def node_report(host: str, at: float, *problems: Problem, gpus: int = 8) -> HealthReport:
    """A report for ``host``: one OK ``gpu.present`` finding per GPU plus ``problems``, each
    ``(check, severity, action, gpu index or None)`` summarised as ``"<check> on GPU <index>"``."""
    present = [finding("gpu.present", Severity.OK, gpu=i, summary="present") for i in range(gpus)]
    extra = [
        finding(check, severity, action, gpu=index, summary=f"{check} on GPU {index}")
        for check, severity, action, index in problems
    ]
    return report(*present, *extra, host=host, at=at)


def diag_run(
    node: str, at: float, level: int = 2, *, severity: str = "ok", kind: str = "dcgm"
) -> dict[str, Any]:
    """One diagnostic run as ``sre diag run --json`` writes it (a health report plus ``kind``
    and ``level``): passing (``ok``), all tests skipped (``skipped``), or a memory failure on
    GPU 3 of the given severity asking for an RMA."""
    if severity == "ok":
        findings = [finding("dcgm.memory", "ok", gpu=3), finding("dcgm.pcie", "ok", gpu=3)]
    elif severity == "skipped":
        findings = [finding("dcgm.diag", "skipped", summary="dcgmi not found on PATH")]
    else:
        findings = [
            finding("dcgm.memory", "ok", gpu=2),
            finding(
                "dcgm.memory",
                severity,
                Action.RMA_CANDIDATE,
                gpu=3,
                summary="Memory test failed: uncorrectable errors on GPU 3",
            ),
        ]
    data = report(*findings, host=node, at=at, source=f"dcgmi diag -r {level}").to_dict()
    return {**data, "kind": kind, "level": level if kind == "dcgm" else 0}
