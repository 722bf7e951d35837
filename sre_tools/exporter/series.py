"""The series of one snapshot: what a collection read, as rows of metric name -> label values.

The poller (:mod:`~sre_tools.exporter.poller`) calls these builders once per collection; each
adds the rows of one part (GPUs and their telemetry, XID counters, health findings, the
exporter's own metrics) to a :class:`SeriesBuilder`, which checks every row against
:mod:`~sre_tools.exporter.metric_names`. :class:`KnownGpus` gives a GPU the same labels in every
part, however a source named it (index, UUID or bus id).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

from sre_tools import __version__
from sre_tools.exporter import metric_names as c
from sre_tools.exporter.metric_names import ErrorReason
from sre_tools.exporter.telemetry import GpuIdentity, LabelValues, Telemetry
from sre_tools.exporter.xid import XidCounter
from sre_tools.health.model import Action, GpuRef, HealthReport, Severity
from sre_tools.health.xid.parser import normalize_bus_id

Rows = tuple[tuple[LabelValues, float], ...]


class SeriesBuilder:
    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[LabelValues, float]]] = collections.defaultdict(list)

    def add(self, metric: str, labels: LabelValues, value: float) -> None:
        spec = c.SPECS[metric]
        if len(labels) != len(spec.labels):
            raise ValueError(f"{metric}: {len(labels)} label values for {spec.labels}")
        self.rows[metric].append((labels, float(value)))

    def freeze(self) -> dict[str, Rows]:
        return {name: tuple(rows) for name, rows in self.rows.items()}


class KnownGpus:
    """Every GPU seen since start (by UUID) and the GPU last seen at each index."""

    def __init__(self) -> None:
        self.by_uuid: dict[str, GpuIdentity] = {}
        self.by_index: dict[int, GpuIdentity] = {}

    def remember(self, ident: GpuIdentity) -> None:
        self.by_uuid[ident.uuid] = ident
        self.by_index[ident.index] = ident

    def identity_for(self, index: int | None, uuid: str = "", pci: str = "") -> GpuIdentity:
        """The best known identity of a GPU named by any of index, UUID or bus id."""
        if uuid and uuid in self.by_uuid:
            return self.by_uuid[uuid]
        if pci:
            wanted = normalize_bus_id(pci)
            for ident in self.by_uuid.values():
                if wanted is not None and normalize_bus_id(ident.pci_bus_id) == wanted:
                    return ident
        if index is not None and not uuid and index in self.by_index:
            return self.by_index[index]
        return GpuIdentity(-1 if index is None else index, uuid, pci)

    def labels_for(self, ref: GpuRef | None) -> LabelValues:
        if ref is None:
            return ("", "", "")
        ident = self.identity_for(ref.index, ref.uuid, ref.pci_bus_id)
        return (str(ref.index), ref.uuid or ident.uuid, ref.pci_bus_id or ident.pci_bus_id)


def render_gpus(out: SeriesBuilder, t: Telemetry, known: KnownGpus) -> None:
    """Identity, presence and telemetry of every GPU; remembers the GPUs that answered."""
    if t.init_error is not None:
        # NVML is down: every GPU we knew is unreachable.
        for ident in known.by_uuid.values():
            out.add(c.GPU_UP, ident.labels, 0)
        return
    if t.count is not None:
        out.add(c.GPU_COUNT, (), t.count)
    shown: set[str] = set()
    for dev in t.devices:
        ident = dev.identity
        if dev.up:
            known.remember(ident)
            out.add(
                c.GPU_INFO,
                (
                    *ident.labels,
                    ident.name,
                    ident.serial,
                    ident.vbios_version,
                    t.driver_version,
                ),
                1,
            )
            out.add(c.GPU_UP, ident.labels, 1)
            for metric, labels, value in dev.samples:
                out.add(metric, labels, value)
        else:
            # Its telemetry is dropped; the last known identity (serial for the RMA) stays.
            last = known.by_index.get(ident.index)
            if last is not None and last.uuid not in shown:
                ident = last
                out.add(
                    c.GPU_INFO,
                    (
                        *ident.labels,
                        ident.name,
                        ident.serial,
                        ident.vbios_version,
                        t.driver_version,
                    ),
                    1,
                )
            out.add(c.GPU_UP, ident.labels, 0)
        if ident.uuid:
            shown.add(ident.uuid)
    # GPUs seen earlier that NVML no longer enumerates at all.
    for uuid, ident in known.by_uuid.items():
        if uuid not in shown:
            out.add(c.GPU_UP, ident.labels, 0)


def render_xid(out: SeriesBuilder, counter: XidCounter) -> None:
    for key, count in counter.counts.items():
        out.add(c.GPU_XID_EVENTS, key, count)
        out.add(c.GPU_XID_LAST_EVENT, key, counter.last[key])


def render_health(out: SeriesBuilder, report: HealthReport | None, known: KnownGpus) -> None:
    if report is None:
        out.add(c.GPU_HEALTH_STATUS, (), c.STATUS_UNKNOWN)
        return
    worst: dict[tuple[str, LabelValues], tuple[int, Action]] = {}
    for f in report.findings:
        if f.severity is Severity.SKIPPED:
            continue
        status = c.STATUS_VALUES[f.severity.value]
        action = f.action if f.severity in (Severity.WARN, Severity.CRIT) else Action.NONE
        key = (f.check, known.labels_for(f.gpu))
        prev = worst.get(key)
        if prev is None:
            worst[key] = (status, action)
        else:
            worst[key] = (
                max(prev[0], status),
                action if action.rank > prev[1].rank else prev[1],
            )
    for (check, labels), (status, action) in worst.items():
        out.add(c.GPU_HEALTH_CHECK_STATUS, (*labels, check, action.value), status)
    node = report.severity
    out.add(
        c.GPU_HEALTH_STATUS,
        (),
        c.STATUS_OK if node is Severity.SKIPPED else c.STATUS_VALUES[node.value],
    )
    required = report.action
    for action in Action:
        out.add(c.GPU_HEALTH_REQUIRED_ACTION, (action.value,), 1 if action is required else 0)


def render_self(
    out: SeriesBuilder,
    collections: int,
    errors: Mapping[ErrorReason, int],
    finished: float,
    duration: float,
) -> SeriesBuilder:
    out.add(c.EXPORTER_BUILD_INFO, (__version__,), 1)
    out.add(c.EXPORTER_COLLECTIONS, (), collections)
    for reason in ErrorReason:
        out.add(c.EXPORTER_COLLECTION_ERRORS, (reason.value,), errors[reason])
    if collections:
        out.add(c.EXPORTER_COLLECTION_DURATION, (), duration)
        out.add(c.EXPORTER_LAST_COLLECTION, (), finished)
    return out
