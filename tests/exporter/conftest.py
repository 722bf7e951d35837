"""Shared helpers for the exporter tests: recordings, a call-counting backend, a loop factory."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sre_tools.exporter.poller import CollectionLoop
from sre_tools.exporter.prometheus_collector import make_registry
from sre_tools.gpu.backend import RecordedBackend
from sre_tools.health.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
OWN = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT / "tests" / "fixtures" / "gpu"
HEALTHY = OWN / "h100-2gpu-healthy.json"  # two GPUs, every reading present
FAULTS = OWN / "h100-2gpu-faults.json"  # GPU 0: DBE + remap pending + a TIMEOUT; GPU 1 lost
UUID0 = "GPU-11111111-2222-3333-4444-000000000000"
UUID1 = "GPU-11111111-2222-3333-4444-000000000001"
BUS0 = "00000000:18:00.0"
BUS1 = "00000000:2A:00.0"


def shared_fixtures() -> list[Path]:
    """The checks engineer's recordings (tests/fixtures/gpu), when they exist."""
    return sorted(SHARED.glob("*.json")) + sorted((SHARED / "faults").glob("*.json"))


class CountingBackend(RecordedBackend):
    """A recorded backend that counts every call (scrapes must make none) and can be changed
    between collections (a GPU that falls off the bus later)."""

    def __init__(self, data: dict[str, Any], source: str = "<test>"):
        super().__init__(data, source)
        self.calls = 0
        self.block: threading.Event | None = None  # set: reads wait on it (a hung NVML call)
        self._count_lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path) -> CountingBackend:
        return cls(json.loads(path.read_text()), str(path))

    def _tick(self) -> None:
        with self._count_lock:
            self.calls += 1

    def init(self) -> None:
        self._tick()
        super().init()

    def shutdown(self) -> None:
        self._tick()

    def device_count(self) -> int:
        self._tick()
        return super().device_count()

    def system(self, name: str) -> Any:
        self._tick()
        return super().system(name)

    def read(self, index: int, name: str, *args: Any) -> Any:
        self._tick()
        if self.block is not None:
            self.block.wait(10)
        return super().read(index, name, *args)

    def events(self) -> list[dict[str, Any]]:
        self._tick()
        return super().events()

    def set_reading(self, index: int, key: str, entry: dict[str, Any]) -> None:
        self.data["devices"][index]["readings"][key] = entry


def load_data(path: Path) -> dict[str, Any]:
    return copy.deepcopy(json.loads(path.read_text()))


def make_loop(
    backend: Any, profile: str = "generic", config: str | None = None, **kwargs: Any
) -> CollectionLoop:
    policy = load_policy(profile, config)
    kwargs.setdefault("sysfs", Path("/nonexistent-sysfs"))
    kwargs.setdefault("kernel_log_lines", [])
    kwargs.setdefault("host", "gpu-test")
    return CollectionLoop(backend, policy, **kwargs)


def scrape(loop: CollectionLoop) -> str:
    return generate_latest(make_registry(loop.snapshot, process=False)).decode()


Sample = tuple[str, dict[str, str], float]


def samples(text: str) -> list[Sample]:
    """Every sample of an exposition (parsed by prometheus-client's own parser)."""
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.append((s.name, dict(s.labels), float(s.value)))
    return out


def values(text: str, name: str, **match: str) -> list[float]:
    return [
        v
        for n, labels, v in samples(text)
        if n == name and all(labels.get(k) == want for k, want in match.items())
    ]


def one(text: str, name: str, **match: str) -> float:
    found = values(text, name, **match)
    assert len(found) == 1, f"{name}{match}: {found}"
    return found[0]


@pytest.fixture
def counting() -> Callable[[Path], CountingBackend]:
    return CountingBackend.from_file


@pytest.fixture
def release_blocked() -> Iterator[list[threading.Event]]:
    """Events that tests block backends on; set at teardown so no thread is left hanging."""
    events: list[threading.Event] = []
    yield events
    for ev in events:
        ev.set()
