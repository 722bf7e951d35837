"""Prometheus exporter for GPU health and telemetry (``sre exporter``).

- :mod:`~sre_tools.exporter.telemetry` reads NVML through a backend into plain samples;
- :mod:`~sre_tools.exporter.xid` counts the health engine's XID events in a monotonic counter;
- :mod:`~sre_tools.exporter.poller` runs health + telemetry on an interval in a background
  thread and publishes an immutable :class:`~sre_tools.exporter.poller.Snapshot`;
- :mod:`~sre_tools.exporter.series` builds a snapshot's series from what a collection read;
- :mod:`~sre_tools.exporter.prometheus_collector` is the prometheus-client ``Collector``: it only
  formats the latest snapshot, so a scrape never touches NVML;
- :mod:`~sre_tools.exporter.server` serves ``/metrics`` over HTTP(S) with optional basic auth
  (:mod:`~sre_tools.exporter.auth`).

Metric and label names live in :mod:`~sre_tools.exporter.metric_names`.
"""
