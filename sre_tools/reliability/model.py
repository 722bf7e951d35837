"""The incident record. Pure data: no I/O, no clock.

Times are unix seconds (``int``); ``detected`` and ``resolved`` are ``None`` when unknown / still
open. ``component`` is the component class the reliability report groups by (``gpu``, ``nvlink``,
``infiniband``, ``psu``, ``host``, ``software``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from sre_tools.exceptions import ValidationError
from sre_tools.timeutil import MAX_FUTURE_SECONDS

#: Largest XID accepted (NVIDIA XIDs are small positive integers; this only rejects nonsense).
MAX_XID = 999_999
#: Longest text field accepted (host, gpu, category, component, cause).
MAX_TEXT = 4096


@dataclass(frozen=True, slots=True)
class Incident:
    """One interruption of a GPU, a node or the fabric.

    ``planned`` incidents (maintenance, firmware roll-outs) are reported apart and never count as
    failures. ``id`` is ``None`` until the incident is stored.
    """

    id: int | None
    started: int
    detected: int | None
    resolved: int | None
    component: str
    host: str = ""
    gpu: str = ""
    category: str = ""
    planned: bool = False
    cause: str = ""
    xid: int | None = None

    @property
    def is_open(self) -> bool:
        return self.resolved is None

    @property
    def repair_seconds(self) -> int | None:
        """``resolved - started`` (time to repair), ``None`` while open."""
        return None if self.resolved is None else self.resolved - self.started

    @property
    def detect_seconds(self) -> int | None:
        """``detected - started`` (time to detect), ``None`` when not recorded."""
        return None if self.detected is None else self.detected - self.started


def validate_incident(
    incident: Incident, *, source: str | None = None, where: str = "", now: float | None = None
) -> None:
    """Raise :class:`ValidationError` unless ``incident`` is consistent (and, given ``now``, none
    of its times lies more than :data:`MAX_FUTURE_SECONDS` ahead of it).

    ``where`` prefixes the field in messages (``"row 7: "`` gives ``row 7: resolved: ...``).
    """

    def fail(field: str, message: str) -> ValidationError:
        return ValidationError(message, source=source, field=f"{where}{field}")

    if now is not None:
        for name in ("started", "detected", "resolved"):
            value = getattr(incident, name)
            if value is not None and value > now + MAX_FUTURE_SECONDS:
                raise fail(name, f"{value - now:.0f} s in the future: not a time of this incident")

    if not incident.component:
        raise fail("component", "must not be empty")
    for name in ("component", "host", "gpu", "category", "cause"):
        value = getattr(incident, name)
        if len(value) > MAX_TEXT:
            raise fail(name, f"longer than {MAX_TEXT} characters")
    if incident.xid is not None and not 1 <= incident.xid <= MAX_XID:
        raise fail("xid", f"XID must be an integer between 1 and {MAX_XID}, got {incident.xid}")
    if incident.resolved is not None and incident.resolved < incident.started:
        raise fail("resolved", "resolved is before started")
    if incident.detected is not None:
        if incident.detected < incident.started:
            raise fail("detected", "detected is before started")
        if incident.resolved is not None and incident.detected > incident.resolved:
            raise fail("detected", "detected is after resolved")
