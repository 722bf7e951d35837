"""The exporter on real NVML (``pytest -m gpu`` on a GPU node; skipped elsewhere). Read-only."""

from __future__ import annotations

import pytest

from sre_tools.exporter import metric_names as c
from sre_tools.exporter.poller import CollectionLoop
from sre_tools.gpu.backend import RealBackend
from sre_tools.health.policy import load_policy
from tests.exporter.conftest import samples, scrape, values

pytestmark = pytest.mark.gpu


def _gpu_count() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


@pytest.fixture(scope="module")
def gpus() -> int:
    count = _gpu_count()
    if count == 0:
        pytest.skip("no NVIDIA GPU here")
    return count


def test_real_gpus_are_exported_with_uuid_and_telemetry(gpus: int) -> None:
    loop = CollectionLoop(RealBackend(), load_policy("generic"))
    loop.collect_once()
    loop.collect_once()
    text = scrape(loop)
    assert values(text, c.GPU_COUNT) == [gpus]
    up = [(labels, v) for n, labels, v in samples(text) if n == c.GPU_UP]
    assert len(up) == gpus and all(v == 1 for _, v in up)
    assert all(labels["uuid"].startswith("GPU-") for labels, _ in up)
    for metric in (c.GPU_TEMPERATURE, c.GPU_POWER_USAGE, c.GPU_MEMORY_TOTAL, c.GPU_CLOCK):
        assert values(text, metric), metric
    assert values(text, c.EXPORTER_COLLECTION_ERRORS, reason="device_lost") == [0]
    assert values(text, c.EXPORTER_COLLECTION_ERRORS, reason="timeout") == [0]
    print(f"collection took {values(text, c.EXPORTER_COLLECTION_DURATION)[0] * 1000:.1f} ms")
