"""The result of one diagnostic run: findings in the health model, plus what identifies the run.

No I/O here. A run's findings are :class:`~sre_tools.health.model.Finding` objects and its report a
:class:`~sre_tools.health.model.HealthReport`, so severity order, the action chosen, Nagios exit
codes, JSON and NHC output are the health engine's, not a second copy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from sre_tools.health.model import Finding, HealthReport, Severity


class Kind(enum.StrEnum):
    DCGM = "dcgm"
    NVBANDWIDTH = "nvbandwidth"
    NCCL = "nccl"


# The executable each kind runs, and the file name a fake takes in tests.
TOOLS = {Kind.DCGM: "dcgmi", Kind.NVBANDWIDTH: "nvbandwidth", Kind.NCCL: "all_reduce_perf"}

# DCGM run levels: how long each takes (docs/diagnostics.md), for help and messages.
LEVELS = {1: "seconds", 2: "about 2 minutes", 3: "about 15 minutes", 4: "an hour or more"}


# Where the on-call engineer reads what a problem means: runbooks/gpu-diagnostics.md, one section
# per failure class. Longest prefix wins; every problem finding of sre diag carries its link in
# evidence["runbook"].
RUNBOOK = "runbooks/gpu-diagnostics.md"
RUNBOOK_SECTIONS: tuple[tuple[str, str], ...] = (
    ("diag.gpu_count", "untested-gpus"),
    ("diag.dcgm.not_run", "untested-gpus"),
    ("diag.dcgm.identity", "untested-gpus"),
    ("diag.dcgm.memory", "memory"),
    ("diag.dcgm.memtest", "memory"),
    ("diag.dcgm.memory_bandwidth", "stress"),
    ("diag.dcgm.pcie", "pcie"),
    ("diag.dcgm.software", "software"),
    ("diag.dcgm.timeout", "timeout-killed-runtime"),
    ("diag.dcgm.killed", "timeout-killed-runtime"),
    ("diag.dcgm.runtime_error", "timeout-killed-runtime"),
    ("diag.dcgm.exit_status", "timeout-killed-runtime"),
    ("diag.dcgm.output", "timeout-killed-runtime"),
    ("diag.dcgm.tool", "timeout-killed-runtime"),
    ("diag.dcgm.", "stress"),
    ("diag.nvbandwidth.p2p_read", "nvbandwidth"),
    ("diag.nvbandwidth.", "nvbandwidth"),
    ("diag.nccl.correctness", "nccl"),
    ("diag.nccl.", "nccl"),
)


def runbook(check: str) -> str:
    best = ""
    section = ""
    for prefix, anchor in RUNBOOK_SECTIONS:
        if check.startswith(prefix) and len(prefix) > len(best):
            best, section = prefix, anchor
    return f"{RUNBOOK}#{section}" if section else RUNBOOK


def linked(findings: list[Finding] | tuple[Finding, ...]) -> tuple[Finding, ...]:
    """The findings, each problem (warn, crit, unknown) with its runbook link in the evidence."""
    problems = (Severity.WARN, Severity.CRIT, Severity.UNKNOWN)
    return tuple(
        f.replace(evidence={**f.evidence, "runbook": runbook(f.check)})
        if f.severity in problems
        else f
        for f in findings
    )


@dataclass(frozen=True)
class GpuInfo:
    """What identifies one GPU across reboots and replacements (from NVML or the tool's output)."""

    index: int
    uuid: str = ""
    serial: str = ""
    pci_bus_id: str = ""
    vbios_version: str = ""
    inforom_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "serial": self.serial,
            "pci_bus_id": self.pci_bus_id,
            "vbios_version": self.vbios_version,
            "inforom_version": self.inforom_version,
        }


@dataclass(frozen=True)
class Inventory:
    """The node's GPUs and driver, as NVML (or a recording) reports them."""

    gpus: tuple[GpuInfo, ...] = ()
    driver_version: str = ""
    note: str = ""  # why the inventory is empty or partial
    model: str = ""  # the first GPU's name, for the node's profile
    nvswitch: bool = False  # an NVSwitch fabric (NVML fabric state or an NVSwitch on the bus)

    def gpu(self, index: int) -> GpuInfo | None:
        for g in self.gpus:
            if g.index == index:
                return g
        return None


@dataclass(frozen=True)
class DiagRun:
    """One tool run (or one imported output), judged."""

    kind: Kind
    level: int  # DCGM run level; 0 for nvbandwidth and nccl-tests
    node: str
    started: float
    ended: float
    findings: tuple[Finding, ...]
    source: str  # "dcgmi diag -r 2", "import:FILE"
    exit_code: int | None = None  # the tool's, where it ran
    tool_version: str = ""
    inventory: Inventory = field(default_factory=Inventory)

    def __post_init__(self) -> None:
        # Every front end (run, import, the store) sees problem findings with their runbook.
        object.__setattr__(self, "findings", linked(self.findings))

    @property
    def report(self) -> HealthReport:
        return HealthReport(
            host=self.node,
            at=self.ended,
            findings=self.findings,
            source=self.source,
            duration_seconds=max(0.0, self.ended - self.started),
        )

    def to_dict(self) -> dict[str, Any]:
        out = self.report.to_dict()
        out["kind"] = self.kind.value
        out["level"] = self.level
        out["tool_exit_code"] = self.exit_code
        out["tool_version"] = self.tool_version
        out["driver_version"] = self.inventory.driver_version
        out["gpus"] = [g.to_dict() for g in self.inventory.gpus]
        if self.inventory.note:
            out["inventory_note"] = self.inventory.note
        return out


def combined(runs: list[DiagRun], host: str, at: float) -> HealthReport:
    """One report over several runs (``sre diag run --nvbandwidth --nccl``): the worst wins."""
    findings = tuple(f for r in runs for f in r.findings)
    duration = sum(max(0.0, r.ended - r.started) for r in runs)
    source = ", ".join(r.source for r in runs) or "diag"
    return HealthReport(
        host=host, at=at, findings=findings, source=source, duration_seconds=duration
    )
