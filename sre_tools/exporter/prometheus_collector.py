"""The prometheus-client ``Collector``: formats the latest snapshot, never touches NVML."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from sre_tools.exporter import metric_names as c
from sre_tools.exporter.poller import Snapshot


class GpuCollector(Collector):
    """Yields one metric family per exported metric of the snapshot ``source()`` returns.

    ``source`` is normally :meth:`CollectionLoop.snapshot`, a reference read: a scrape costs
    formatting only, whatever the GPUs are doing.
    """

    def __init__(self, source: Callable[[], Snapshot]):
        self._source = source

    def describe(self) -> list[Metric]:
        # No up-front description: registering must not trigger a collection.
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self._source()
        for spec in c.METRICS:
            rows = snap.series.get(spec.name)
            if not rows:
                continue
            family: Metric
            if spec.kind is c.Kind.COUNTER:
                family = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
            else:
                family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
            for labels, value in rows:
                family.add_metric(labels, value)
            yield family


def make_registry(source: Callable[[], Snapshot], *, process: bool = True) -> CollectorRegistry:
    """A registry holding only this exporter (plus ``process_*`` self-metrics on Linux)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GpuCollector(source))
    if process:
        from prometheus_client import ProcessCollector

        ProcessCollector(registry=registry)
    return registry
