"""XID events to actions: the catalog's buckets, its workflows, and one decision per GPU.

Each event gets the catalog's bucket names exactly as NVIDIA wrote them (``catalog_immediate``,
``catalog_investigatory``) and our :class:`Action` with a severity. Workflow buckets are decided
with the other events of the same physical GPU (same PCI bus id):

- ``WORKFLOW_XID_48``: XID 48 alone -> ``reset_gpu``; with XID 63 or 64 -> ``drain_and_reset``;
- ``WORKFLOW_XID_45``: XID 45 alone -> ``restart_fabric_manager`` (``restart_app`` on a node
  without NVSwitch/Fabric Manager); with any other XID -> nothing (the other XID decides);
- ``WORKFLOW_NVLINK5_ERR`` (144-150): intrInfo and errorStatus decoded with the catalog's
  "Xid 144-150 Decode" table;
- ``XID_154``: the recovery action the driver printed.

The per-GPU decision is the most disruptive action of its events, unless the GPU's recovery
action (NVML field, or the latest XID 154) is non-zero: that is the driver's own summary and is
authoritative. The full table and the reasons are in ``docs/xid.md``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sre_tools.health.model import Action, Severity
from sre_tools.health.xid.catalog import Catalog, CatalogEntry, load_catalog
from sre_tools.health.xid.model import (
    FALLEN_OFF_BUS,
    KIND_FALLEN_OFF_BUS,
    KIND_GPU_UNAVAILABLE,
    RECOVERY_ACTIONS,
    XidEvent,
    recovery_name,
)

# Buckets with one fixed answer. Workflows and the others are decided in _bucket_action.
FIXED_BUCKETS: dict[str, tuple[Action, Severity]] = {
    "IGNORE": (Action.NONE, Severity.OK),
    "RESTART_APP": (Action.RESTART_APP, Severity.WARN),
    "RESTART_VM": (Action.RESTART_APP, Severity.WARN),  # bare metal: the VM is the application
    "RESET_GPU": (Action.RESET_GPU, Severity.CRIT),
    "RESTART_BM": (Action.REBOOT, Severity.CRIT),
    "CONTACT_SUPPORT": (Action.CONTACT_SUPPORT, Severity.CRIT),
    "CHECK_MECHANICALS": (Action.CHECK_MECHANICALS, Severity.CRIT),
    "UPDATE_SWFW": (Action.CONTACT_SUPPORT, Severity.WARN),  # driver/firmware update: a ticket
    "CHECK_UVM": (Action.RESET_GPU, Severity.WARN),  # "if UVM/vGPU is used, RESET_GPU"
}
# Buckets of the 144-150 decode table (Data Center Recovery Action column).
DECODE_BUCKETS: dict[str, tuple[Action, Severity]] = {
    "IGNORE": (Action.NONE, Severity.OK),
    "RESET_GPU": (Action.RESET_GPU, Severity.CRIT),
    "XID_154_EVAL": (Action.RESTART_APP, Severity.WARN),  # "no XID 154: RESTART_APP"
}
_DECODE_REGISTERS = re.compile(
    r"\(\s{0,8}0x(?P<intr>[0-9a-fA-F]{1,8})\s{1,8}0x(?P<st>[0-9a-fA-F]{1,8})"
)
_FATAL = re.compile(r"\bfatal\b", re.IGNORECASE)
_NONFATAL = re.compile(r"\bnon-?fatal\b", re.IGNORECASE)


@dataclass(frozen=True)
class Classification:
    """One event with the catalog's buckets and our action."""

    event: XidEvent
    mnemonic: str
    catalog_immediate: str | None  # None: the XID is not in the catalog
    catalog_investigatory: str | None
    action: Action
    severity: Severity
    reason: str

    @property
    def in_catalog(self) -> bool:
        return self.catalog_immediate is not None

    def to_dict(self) -> dict[str, Any]:
        from sre_tools.timeutil import iso

        ev = self.event
        return {
            "key": ev.key,
            "xid": ev.xid,
            "pci_bus_id": ev.pci_bus_id,
            "gpu_instance": ev.gpu_instance,
            "gpu_index": ev.gpu_index,
            "mnemonic": self.mnemonic,
            "catalog_immediate": self.catalog_immediate,
            "catalog_investigatory": self.catalog_investigatory,
            "action": self.action.value,
            "severity": self.severity.value,
            "reason": self.reason,
            "kind": ev.kind,
            "pid": ev.pid,
            "name": ev.name,
            "time": iso(ev.timestamp),
            "timestamp": ev.timestamp,
            "uptime": ev.uptime,
            "source": ev.source,
            "sources": list(ev.sources or (ev.source,)),
            "recovery_action": ev.recovery_action,
            "message": ev.message,
            "line": ev.line,
            "drill_run": ev.drill_run,
        }


@dataclass(frozen=True)
class GpuDecision:
    """The combined decision for one GPU (or MIG instance): what to do and which events say so."""

    pci_bus_id: str | None
    gpu_instance: str | None
    gpu_index: int | None
    action: Action
    severity: Severity
    reason: str
    events: tuple[Classification, ...]
    because: tuple[Classification, ...]  # the events that led to the action
    authoritative: str | None = None  # "nvml" or "xid154" when the recovery action decided
    recovery_action: int | None = None

    @property
    def xids(self) -> list[int]:
        return sorted({c.event.catalog_xid for c in self.events if c.event.catalog_xid is not None})

    @property
    def counts(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for c in self.events:
            n = c.event.catalog_xid
            if n is not None:
                out[n] = out.get(n, 0) + 1
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "pci_bus_id": self.pci_bus_id,
            "gpu_instance": self.gpu_instance,
            "gpu_index": self.gpu_index,
            "action": self.action.value,
            "severity": self.severity.value,
            "xids": self.xids,
            "count": len(self.events),
            "reason": self.reason,
            "authoritative": self.authoritative,
            "recovery_action": self.recovery_action,
            "because": [c.event.key for c in self.because],
        }


@dataclass(frozen=True)
class Analysis:
    events: tuple[Classification, ...]
    gpus: tuple[GpuDecision, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": [c.to_dict() for c in self.events],
            "gpus": [g.to_dict() for g in self.gpus],
        }


def _label(n: int | None, entry: CatalogEntry | None) -> str:
    if n is None:
        return "event"
    return f"XID {n}" if entry is None else f"XID {n} ({entry.short_mnemonic})"


def _match(pattern: str, value: int) -> bool:
    if not pattern:
        return False
    bits = format(value & 0xFFFFFFFF, "032b")
    return all(p in ("-", b) for p, b in zip(pattern, bits, strict=True))


def decode_nvlink5(event: XidEvent, catalog: Catalog) -> tuple[str | None, str]:
    """The decode table's bucket for an XID 144-150 message, and how it was found.

    ``(None, why)`` when the registers are missing or no row matches. The message does not say
    whether the driver is older than R575 (two bit layouts); rows of both are tried and the most
    disruptive match wins. The sub-component name in the message narrows the rows when it can.
    """
    m = _DECODE_REGISTERS.search(event.message)
    if m is None:
        return None, "no (intrInfo errorStatus ...) registers in the message"
    intr, status = int(m.group("intr"), 16), int(m.group("st"), 16)
    rows = []
    for row in catalog.decode:
        if row.xid != event.catalog_xid:
            continue
        if not (_match(row.intr_v1, intr) or _match(row.intr_v2, intr)):
            continue
        if row.error_status and not any(
            status == s or (s and status & s == s) for s in row.error_status
        ):
            continue
        rows.append(row)
    named = [
        r for r in rows if any(t and t in event.message for t in re.split(r"[/\s]+", r.subcode))
    ]
    rows = named or rows
    if not rows:
        return None, f"intrInfo 0x{intr:08x} errorStatus 0x{status:08x} match no decode row"
    best: tuple[str, str] | None = None
    for row in rows:
        bucket = row.bucket
        if row.action2 and (_match(row.action2_v1, intr) or _match(row.action2_v2, intr)):
            bucket = row.action2
        action = DECODE_BUCKETS.get(bucket, (Action.CONTACT_SUPPORT, Severity.WARN))[0]
        if best is None or action.rank > DECODE_BUCKETS.get(best[0], (Action.NONE,))[0].rank:
            best = (bucket, row.subcode)
    assert best is not None
    return best[0], (
        f"intrInfo 0x{intr:08x} errorStatus 0x{status:08x} decode to {best[1]}: {best[0]}"
    )


def _bucket_action(
    event: XidEvent,
    entry: CatalogEntry,
    others: Collection[int],
    fabric_manager: bool,
    catalog: Catalog,
) -> tuple[Action, Severity, str]:
    bucket = entry.immediate_action
    fixed = FIXED_BUCKETS.get(bucket)
    if fixed is not None:
        return fixed[0], fixed[1], f"catalog: {bucket}"
    if bucket == "WORKFLOW_XID_48":
        with_fb = sorted(x for x in others if x in (63, 64))
        if with_fb:
            names = " and ".join(str(x) for x in with_fb)
            return (
                Action.DRAIN_AND_RESET,
                Severity.CRIT,
                f"catalog WORKFLOW_XID_48: with XID {names} on the same GPU, DRAIN_AND_RESET",
            )
        return Action.RESET_GPU, Severity.CRIT, "catalog WORKFLOW_XID_48: solo, RESET_GPU"
    if bucket == "WORKFLOW_XID_45":
        rest = sorted(x for x in others if x != 45)
        if rest:
            listed = ", ".join(str(x) for x in rest)
            return (
                Action.NONE,
                Severity.OK,
                f"catalog WORKFLOW_XID_45: not solo (XID {listed}), follow the other XIDs",
            )
        if not fabric_manager:
            return (
                Action.RESTART_APP,
                Severity.WARN,
                "catalog WORKFLOW_XID_45: solo, RESTART_FM; no Fabric Manager here: RESTART_APP",
            )
        return (
            Action.RESTART_FABRIC_MANAGER,
            Severity.WARN,
            "catalog WORKFLOW_XID_45: solo, RESTART_FM",
        )
    if bucket == "XID_154":
        value = event.recovery_action
        if value is None:
            return (
                Action.CONTACT_SUPPORT,
                Severity.WARN,
                "XID 154 without a readable recovery action",
            )
        action = RECOVERY_ACTIONS.get(value)
        if action is None:
            return (
                Action.CONTACT_SUPPORT,
                Severity.WARN,
                f"XID 154: unknown recovery action 0x{value:x}",
            )
        severity = Severity.OK if action is Action.NONE else Severity.CRIT
        return action, severity, f"XID 154: recovery action 0x{value:x} ({recovery_name(value)})"
    if bucket == "WORKFLOW_NVLINK_ERR":
        # The registers need a human (the catalog's text is a bit-by-bit guide); the catalog's
        # trigger text: "A GPU reset or node reboot is needed to clear this error".
        return (
            Action.RESET_GPU,
            Severity.CRIT,
            "catalog WORKFLOW_NVLINK_ERR: registers not decoded here; a GPU reset clears it",
        )
    if bucket == "WORKFLOW_NVLINK5_ERR":
        decoded, how = decode_nvlink5(event, catalog)
        if decoded is not None:
            action, severity = DECODE_BUCKETS.get(decoded, (Action.CONTACT_SUPPORT, Severity.WARN))
            return action, severity, f"catalog WORKFLOW_NVLINK5_ERR: {how}"
        if _FATAL.search(event.message) and not _NONFATAL.search(event.message):
            return (
                Action.RESET_GPU,
                Severity.CRIT,
                f"catalog WORKFLOW_NVLINK5_ERR: not decoded ({how}); fatal, RESET_GPU",
            )
        return (
            Action.CONTACT_SUPPORT,
            Severity.WARN,
            f"catalog WORKFLOW_NVLINK5_ERR: not decoded ({how})",
        )
    if not bucket:
        return (
            Action.CONTACT_SUPPORT,
            Severity.WARN,
            f"catalog gives no action for XID {entry.xid} yet",
        )
    return Action.CONTACT_SUPPORT, Severity.WARN, f"catalog bucket {bucket!r} is not mapped here"


def classify(
    event: XidEvent,
    others: Collection[int] = (),
    *,
    fabric_manager: bool = True,
    catalog: Catalog | None = None,
) -> Classification:
    """Classify one event; ``others`` are the XIDs seen on the same GPU (for the workflows)."""
    catalog = catalog or load_catalog()
    n = event.catalog_xid
    entry = catalog.get(n)
    if event.kind == KIND_FALLEN_OFF_BUS:
        mnemonic = FALLEN_OFF_BUS
    elif event.kind == KIND_GPU_UNAVAILABLE:
        mnemonic = "GPU_UNAVAILABLE"
    elif entry is not None:
        mnemonic = entry.short_mnemonic
    else:
        mnemonic = "UNKNOWN"
    if entry is None:
        return Classification(
            event,
            mnemonic,
            None,
            None,
            Action.CONTACT_SUPPORT,
            Severity.WARN,
            f"XID {n} unknown to catalog",
        )
    action, severity, reason = _bucket_action(event, entry, others, fabric_manager, catalog)
    if event.xid is None and n is not None:
        reason = f"{mnemonic} is XID {n}'s equivalent; {reason}"
    return Classification(
        event,
        mnemonic,
        entry.immediate_action,
        entry.investigatory_action,
        action,
        severity,
        reason,
    )


def _worst(items: Iterable[Classification]) -> tuple[Action, Severity]:
    action, severity = Action.NONE, Severity.OK
    for c in items:
        if c.action.rank > action.rank:
            action = c.action
        if c.severity.rank > severity.rank:
            severity = c.severity
    return action, severity


def _order(c: Classification, i: int) -> tuple[float, int]:
    ev = c.event
    t = ev.timestamp if ev.timestamp is not None else ev.uptime
    return (t if t is not None else float("-inf"), i)


def _authority(
    bus: str, recovery_actions: Mapping[str, int], by_bus: Mapping[str, list[Classification]]
) -> tuple[str, int, tuple[Classification, ...]] | None:
    value = recovery_actions.get(bus)
    if value:
        return "nvml", value, ()
    latest: Classification | None = None
    best = (float("-inf"), -1)
    for i, c in enumerate(by_bus.get(bus, [])):
        if c.event.catalog_xid == 154 and c.event.recovery_action is not None:
            order = _order(c, i)
            if order >= best:
                best, latest = order, c
    if latest is not None and latest.event.recovery_action:
        return "xid154", int(latest.event.recovery_action), (latest,)
    return None


def analyze(
    events: Iterable[XidEvent],
    *,
    recovery_actions: Mapping[str, int] | None = None,
    gpu_missing: Collection[str] = (),
    fabric_manager: bool = True,
    catalog: Catalog | None = None,
) -> Analysis:
    """Classify ``events`` and combine them into one decision per GPU (bus id + MIG instance).

    ``recovery_actions``: NVML's recovery action per normalised bus id (non-zero wins).
    ``gpu_missing``: bus ids NVML cannot see now; XID 79 there escalates to ``power_cycle``.
    """
    catalog = catalog or load_catalog()
    recovery_actions = recovery_actions or {}
    evs = list(events)
    xids_by_bus: dict[str, Counter[int]] = {}
    for ev in evs:
        n = ev.catalog_xid
        if n is not None:
            xids_by_bus.setdefault(ev.gpu_key[0], Counter())[n] += 1
    classified: list[Classification] = []
    for ev in evs:
        counts = xids_by_bus.get(ev.gpu_key[0], Counter())
        # the XIDs of the same GPU, this occurrence excluded
        others = {x for x, k in counts.items() if x != ev.catalog_xid or k > 1}
        classified.append(classify(ev, others, fabric_manager=fabric_manager, catalog=catalog))
    by_bus: dict[str, list[Classification]] = {}
    groups: dict[tuple[str, str], list[Classification]] = {}
    for c in classified:
        by_bus.setdefault(c.event.gpu_key[0], []).append(c)
        groups.setdefault(c.event.gpu_key, []).append(c)
    decisions = []
    for key in sorted(groups):
        members = groups[key]
        first = members[0].event
        decisions.append(_decide(key[0], members, first, recovery_actions, by_bus, gpu_missing))
    return Analysis(tuple(classified), tuple(decisions))


def _decide(
    bus: str,
    members: list[Classification],
    first: XidEvent,
    recovery_actions: Mapping[str, int],
    by_bus: Mapping[str, list[Classification]],
    gpu_missing: Collection[str],
) -> GpuDecision:
    action, severity = _worst(members)
    because = tuple(c for c in members if c.action is action and action is not Action.NONE)
    if because:
        lead = because[0]
        reason = f"{_label(lead.event.catalog_xid, None)} {lead.mnemonic}: {lead.reason}"
    else:
        reason = "no action needed: " + "; ".join(sorted({c.reason for c in members}))
    authoritative: str | None = None
    recovery: int | None = None
    auth = _authority(bus, recovery_actions, by_bus)
    if auth is not None:
        authoritative, recovery, cause = auth
        mapped = RECOVERY_ACTIONS.get(recovery)
        where = "NVML recovery action" if authoritative == "nvml" else "XID 154 recovery action"
        if mapped is None:
            action, severity = Action.CONTACT_SUPPORT, Severity.WARN
            reason = f"{where} 0x{recovery:x} is unknown"
        else:
            reason = f"{where} 0x{recovery:x} ({recovery_name(recovery)}) is authoritative"
            if mapped is not action:
                reason += f"; the events alone say {action.value}"
            action, severity = mapped, Severity.CRIT
        because = cause
    fell_off = [c for c in members if c.event.catalog_xid == 79]
    if fell_off and bus in gpu_missing and action.rank < Action.POWER_CYCLE.rank:
        action, severity = Action.POWER_CYCLE, Severity.CRIT
        reason = "GPU fell off the bus (XID 79) and NVML still cannot see it: power cycle"
        because = tuple(fell_off)
    index = next((c.event.gpu_index for c in members if c.event.gpu_index is not None), None)
    return GpuDecision(
        pci_bus_id=first.pci_bus_id,
        gpu_instance=first.gpu_instance,
        gpu_index=index,
        action=action,
        severity=severity,
        reason=reason,
        events=tuple(members),
        because=because,
        authoritative=authoritative,
        recovery_action=recovery,
    )
