"""Pre-rendered exposition: one rendering per collection, scrapes are lookups."""

from __future__ import annotations

import gzip

from prometheus_client.registry import CollectorRegistry

from sre_tools.exporter.exposition import Exposition
from sre_tools.exporter.prometheus_collector import GpuCollector, make_registry
from tests.exporter.conftest import HEALTHY, CountingBackend, make_loop, one

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


class CountingCollector(GpuCollector):
    calls = 0

    def collect(self):  # type: ignore[no-untyped-def]
        type(self).calls += 1
        yield from super().collect()


def test_scrapes_after_a_collection_reuse_the_prerendered_bytes() -> None:
    loop = make_loop(CountingBackend.from_file(HEALTHY))
    registry = CollectorRegistry(auto_describe=False)
    CountingCollector.calls = 0
    registry.register(CountingCollector(loop.snapshot))
    exposition = Exposition(registry, loop.snapshot)
    loop.listeners.append(exposition.refresh)
    loop.collect_once()
    rendered = CountingCollector.calls
    assert rendered == 2  # text and OpenMetrics, once each
    bodies = [
        exposition.render(accept, enc) for accept in ("", OPENMETRICS) for enc in ("", "gzip")
    ]
    assert CountingCollector.calls == rendered  # no scrape formatted anything
    text, text_gz, om, om_gz = bodies
    assert text.content_type.startswith("text/plain; version=0.0.4")
    assert om.content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert not text.gzipped and text_gz.gzipped
    assert gzip.decompress(text_gz.content) == text.content
    assert gzip.decompress(om_gz.content) == om.content
    assert om.content.endswith(b"# EOF\n")
    assert one(text.content.decode(), "gpu_up", gpu="0") == 1


def test_a_new_snapshot_is_never_served_from_the_old_cache() -> None:
    loop = make_loop(CountingBackend.from_file(HEALTHY))
    exposition = Exposition(make_registry(loop.snapshot, process=False), loop.snapshot)
    loop.listeners.append(exposition.refresh)
    loop.collect_once()
    first = exposition.render().content
    loop.listeners.clear()  # the next snapshot is published without a refresh
    loop.collect_once()
    second = exposition.render().content
    assert one(first.decode(), "gpu_exporter_collections_total") == 1
    assert one(second.decode(), "gpu_exporter_collections_total") == 2


def test_other_formats_are_rendered_live() -> None:
    loop = make_loop(CountingBackend.from_file(HEALTHY))
    exposition = Exposition(make_registry(loop.snapshot, process=False), loop.snapshot)
    loop.listeners.append(exposition.refresh)
    loop.collect_once()
    body = exposition.render("text/plain; version=1.0.0; escaping=allow-utf-8")
    assert "escaping=allow-utf-8" in body.content_type
    assert b"gpu_up{" in body.content


def test_a_plain_registry_without_versions_is_always_rendered_live() -> None:
    loop = make_loop(CountingBackend.from_file(HEALTHY))
    exposition = Exposition(make_registry(loop.snapshot, process=False))
    exposition.refresh()  # nothing to key a cache on: a no-op
    assert b"gpu_up{" not in exposition.render().content
    loop.collect_once()
    assert b"gpu_up{" in exposition.render().content
