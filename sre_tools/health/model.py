"""Findings: the one object every front end shows. Frozen records, no I/O."""

from __future__ import annotations

import enum
import re

from sre_tools.record import Record

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

# A systemd service unit name (systemd.unit(5): ASCII letters, digits, ":-_.\\@", and "\\x2d"-style
# escapes), starting with a letter, digit or "_" so that it can never read as an option. Shared by
# the health checks that read a unit and the drills that stop and start one.
SERVICE_UNIT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9:_.@\\-]{0,240}\.service")

JSON_SCHEMA_VERSION = 1


class Severity(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    CRIT = "crit"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"  # not applicable here (NVML NotSupported, no NVSwitch, ...)

    @property
    def rank(self) -> int:
        """Order for "worst of": skipped < ok < unknown < warn < crit."""
        return {"skipped": 0, "ok": 1, "unknown": 2, "warn": 3, "crit": 4}[self.value]


class Action(enum.StrEnum):
    """What must be done, from least to most disruptive (the enum order is the priority)."""

    NONE = "none"
    RESTART_APP = "restart_app"
    RESTART_FABRIC_MANAGER = "restart_fabric_manager"
    RESET_GPU = "reset_gpu"
    DRAIN_AND_RESET = "drain_and_reset"
    REBOOT = "reboot"
    POWER_CYCLE = "power_cycle"
    CHECK_MECHANICALS = "check_mechanicals"
    CONTACT_SUPPORT = "contact_support"
    RMA_CANDIDATE = "rma_candidate"

    @property
    def rank(self) -> int:
        return list(Action).index(self)


class GpuRef(Record):
    """Which device a finding concerns."""

    __slots__ = ("index", "mig", "pci_bus_id", "uuid")
    index: int
    uuid: str
    pci_bus_id: str
    mig: str | None  # GPU instance (``GPU-I:nn``) where relevant

    def __init__(
        self, index: int, uuid: str = "", pci_bus_id: str = "", mig: str | None = None
    ) -> None:
        self._init(index=index, uuid=uuid, pci_bus_id=pci_bus_id, mig=mig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "pci_bus_id": self.pci_bus_id,
            "mig": self.mig,
        }


class Finding(Record):
    __slots__ = ("action", "check", "evidence", "gpu", "severity", "summary")
    check: str  # stable id, e.g. "ecc.uncorrected_volatile"
    severity: Severity
    summary: str
    action: Action
    gpu: GpuRef | None
    evidence: dict[str, Any]

    def __init__(
        self,
        check: str,
        severity: Severity,
        summary: str,
        action: Action = Action.NONE,
        gpu: GpuRef | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        self._init(
            check=check,
            severity=severity,
            summary=summary,
            action=action,
            gpu=gpu,
            evidence={} if evidence is None else evidence,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity.value,
            "action": self.action.value,
            "summary": self.summary,
            "gpu": None if self.gpu is None else self.gpu.to_dict(),
            "evidence": self.evidence,
        }


NAGIOS = {
    Severity.OK: 0,
    Severity.SKIPPED: 0,
    Severity.WARN: 1,
    Severity.CRIT: 2,
    Severity.UNKNOWN: 3,
}


class HealthReport(Record):
    __slots__ = ("at", "duration_seconds", "findings", "host", "source")
    host: str
    at: float
    findings: tuple[Finding, ...]
    source: str  # "nvml" or "replay:<file>"
    duration_seconds: float

    def __init__(
        self,
        host: str,
        at: float,
        findings: tuple[Finding, ...],
        source: str = "nvml",
        duration_seconds: float = 0.0,
    ) -> None:
        self._init(
            host=host, at=at, findings=findings, source=source, duration_seconds=duration_seconds
        )

    @property
    def severity(self) -> Severity:
        worst = Severity.OK
        for f in self.findings:
            if f.severity.rank > worst.rank:
                worst = f.severity
        return worst

    @property
    def action(self) -> Action:
        best = Action.NONE
        for f in self.findings:
            if f.severity in (Severity.WARN, Severity.CRIT) and f.action.rank > best.rank:
                best = f.action
        return best

    @property
    def exit_code(self) -> int:
        """Nagios: CRITICAL beats WARNING beats UNKNOWN beats OK."""
        sev = {f.severity for f in self.findings}
        if Severity.CRIT in sev:
            return 2
        if Severity.WARN in sev:
            return 1
        if Severity.UNKNOWN in sev:
            return 3
        return 0

    def problems(self) -> list[Finding]:
        return [
            f
            for f in self.findings
            if f.severity in (Severity.WARN, Severity.CRIT, Severity.UNKNOWN)
        ]

    def to_dict(self) -> dict[str, Any]:
        from sre_tools.timeutil import iso

        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "host": self.host,
            "at": iso(self.at),
            "source": self.source,
            "duration_seconds": round(self.duration_seconds, 6),
            "status": self.severity.value,
            "exit_code": self.exit_code,
            "action": self.action.value,
            "findings": [f.to_dict() for f in self.findings],
        }
