"""NVML event dicts, de-duplication across sources, and the NVML event thread (fake NVML)."""

from __future__ import annotations

import threading
import time
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest

from sre_tools.health.model import GpuRef
from sre_tools.health.xid.events import (
    NvmlEventWatcher,
    dedupe,
    event_from_nvml,
    nvml_events,
    start_event_watcher,
)
from sre_tools.health.xid.parser import parse_lines

from .conftest import BOOT, T0

GPUS = [GpuRef(0, "GPU-0", "00000000:18:00.0"), GpuRef(1, "GPU-1", "00000000:3B:00.0")]
FELL = "NVRM: Xid (PCI:0000:18:00): 79, pid=1234, name=python, GPU has fallen off the bus."
UP = T0 - BOOT  # uptime at T0


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            {"type": "xid", "gpu_index": 0, "xid": 79, "timestamp": T0},
            {"xid": 79, "pci_bus_id": "0000:18:00", "kind": "xid", "timestamp": T0},
        ),
        (
            {"type": "dbe", "gpu_index": 1, "timestamp": T0},
            {"xid": 48, "pci_bus_id": "0000:3b:00", "kind": "dbe"},
        ),
        (
            {"type": "gpu_unavailable", "gpu_index": 0},
            {"xid": None, "catalog_xid": 79, "kind": "gpu_unavailable"},
        ),
        (
            {"type": "recovery_action", "gpu_index": 1, "value": 2},
            {"xid": 154, "recovery_action": 2, "kind": "recovery_action"},
        ),
        (
            {"type": "xid", "gpu_index": 7, "xid": 43, "pci_bus_id": "00000000:86:00.0"},
            {"pci_bus_id": "0000:86:00", "gpu_index": 7},
        ),
        (
            {"type": "xid", "gpu_index": 0, "xid": 43, "gpu_instance_id": 3},
            {"gpu_instance": "GPU-I:03"},
        ),
        (
            {"type": "xid", "gpu_index": 0, "xid": 43, "gpu_instance_id": 0xFFFFFFFF},
            {"gpu_instance": None},
        ),
    ],
    ids=["xid", "dbe", "unavailable", "recovery", "unknown-index-with-bus", "mig", "no-mig"],
)
def test_event_from_nvml(record: dict[str, Any], expected: dict[str, Any]) -> None:
    ev = event_from_nvml(record, GPUS)
    assert ev is not None
    assert ev.source == "nvml"
    for name, value in expected.items():
        assert getattr(ev, name) == value, name


@pytest.mark.parametrize(
    "record",
    [
        {"type": "pstate", "gpu_index": 0},
        {"type": "xid", "gpu_index": 0},
        {"type": "xid", "gpu_index": 0, "xid": "79"},
        {"type": "recovery_action", "gpu_index": 0},
        {"gpu_index": 0, "xid": 79},
    ],
)
def test_malformed_nvml_events_are_skipped(record: dict[str, Any]) -> None:
    assert event_from_nvml(record, GPUS) is None
    assert nvml_events([record, "junk", 3], GPUS) == []


def test_same_event_from_kmsg_journal_dmesg_and_nvml_is_one() -> None:
    kmsg = parse_lines([f"4,812,{int(UP * 1e6)},-;{FELL}"], boot_time=BOOT)
    dmesg = parse_lines([f"[{UP:.6f}] {FELL}"], boot_time=BOOT)
    journal = parse_lines([f"2026-11-20T10:00:00+0000 node1 kernel: {FELL}"])
    nvml = nvml_events([{"type": "xid", "gpu_index": 0, "xid": 79, "timestamp": T0 + 0.8}], GPUS)
    unavailable = nvml_events([{"type": "gpu_unavailable", "gpu_index": 0, "timestamp": T0}], GPUS)
    merged = dedupe([*nvml, *journal, *dmesg, *kmsg, *unavailable])
    assert len(merged) == 1
    (ev,) = merged
    assert ev.source == "kmsg"  # the best source is kept
    assert ev.key == kmsg[0].key
    assert set(ev.sources) == {"kmsg", "dmesg", "journal", "nvml"}


def test_kmsg_sequence_number_matches_without_times() -> None:
    a = parse_lines([f"4,812,1000,-;{FELL}"])
    b = [
        e.replace(source="dmesg", uptime=None, timestamp=None)
        for e in parse_lines([f"4,812,1000,-;{FELL}"])
    ]
    assert len(dedupe([*a, *b])) == 1


def test_a_burst_from_one_source_stays_a_burst() -> None:
    lines = [
        f"[ 100.00000{i}] NVRM: Xid (PCI:0000:18:00): 13, pid=1, name=x, Graphics" for i in range(5)
    ]
    events = parse_lines(lines, boot_time=BOOT)
    assert len(dedupe(events)) == 5
    # ... and a second source reporting the same burst adds nothing
    journal = parse_lines(
        ["2026-11-20T07:15:00+0000 h kernel: NVRM: Xid (PCI:0000:18:00): 13, pid=1, name=x, G"] * 5
    )
    assert len(dedupe([*events, *journal])) == 5


def test_different_gpu_xid_or_time_are_different_events() -> None:
    base = parse_lines([f"[{UP:.6f}] {FELL}"], boot_time=BOOT)
    other_xid = nvml_events([{"type": "xid", "gpu_index": 0, "xid": 48, "timestamp": T0}], GPUS)
    other_gpu = nvml_events([{"type": "xid", "gpu_index": 1, "xid": 79, "timestamp": T0}], GPUS)
    later = nvml_events([{"type": "xid", "gpu_index": 0, "xid": 79, "timestamp": T0 + 5}], GPUS)
    assert len(dedupe([*base, *other_xid, *other_gpu, *later])) == 4


def test_fallen_off_text_merges_with_its_xid_79() -> None:
    events = parse_lines(
        [f"[ 50.000000] {FELL}", "[ 50.000100] NVRM: GPU 0000:18:00.0: GPU has fallen off the bus."]
    )
    (ev,) = dedupe(events)
    assert ev.xid == 79


def test_dedupe_keeps_input_order() -> None:
    events = parse_lines(
        [
            "[ 1.0] NVRM: Xid (PCI:0000:18:00): 13, pid=1, name=x, a",
            "[ 2.0] NVRM: Xid (PCI:0000:3b:00): 48, pid=1, name=x, b",
            "[ 3.0] NVRM: Xid (PCI:0000:18:00): 45, pid=1, name=x, c",
        ]
    )
    nvml = nvml_events([{"type": "xid", "gpu_index": 0, "xid": 94, "timestamp": 1.0}], GPUS)
    assert [e.xid for e in dedupe([*nvml, *events])] == [94, 13, 48, 45]


class FakeNVML:
    """Just enough of pynvml's event API for the watcher."""

    NVML_ERROR_TIMEOUT = 10
    nvmlEventTypeXidCriticalError = 0x0008
    nvmlEventTypeDoubleBitEccError = 0x0002
    nvmlEventTypeGpuUnavailableError = 0x4000
    nvmlEventTypeGpuRecoveryAction = 0x8000

    class NVMLError(Exception):
        def __init__(self, value: int):
            self.value = value
            super().__init__(f"NVML error {value}")

    def __init__(self, gpus: int = 2, supported: int = 0xFFFF):
        self.gpus = gpus
        self.supported = supported
        self.pending: deque[SimpleNamespace] = deque()
        self.registered: list[tuple[int, int]] = []
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def nvmlInit(self) -> None:
        self.calls.append("init")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlEventSetCreate(self) -> str:
        return "set"

    def nvmlEventSetFree(self, s: str) -> None:
        self.calls.append("free")

    def nvmlDeviceGetCount(self) -> int:
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetIndex(self, h: int) -> int:
        return h

    def nvmlDeviceGetPciInfo(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(busId=f"00000000:{0x18 + h:02X}:00.0".encode())

    def nvmlDeviceGetSupportedEventTypes(self, h: int) -> int:
        if h == 1:
            raise self.NVMLError(3)  # NOT_SUPPORTED on the second GPU
        return self.supported

    def nvmlDeviceRegisterEvents(self, h: int, mask: int, s: str) -> None:
        self.registered.append((h, mask))

    def nvmlEventSetWait_v2(self, s: str, timeout_ms: int) -> SimpleNamespace:
        with self.lock:
            if self.pending:
                return self.pending.popleft()
        time.sleep(timeout_ms / 1000)
        raise self.NVMLError(self.NVML_ERROR_TIMEOUT)

    def fire(self, etype: int, gpu: int, data: int = 0, gi: int = 0xFFFFFFFF) -> None:
        with self.lock:
            self.pending.append(
                SimpleNamespace(
                    device=gpu,
                    eventType=etype,
                    eventData=data,
                    gpuInstanceId=gi,
                    computeInstanceId=0xFFFFFFFF,
                )
            )


def _wait_for(pred: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_watcher_queues_events_and_stops() -> None:
    nvml = FakeNVML()
    sunk: list[dict[str, Any]] = []
    watcher = NvmlEventWatcher(sunk.append, nvml=nvml, timeout_ms=10, clock=lambda: T0).start()
    assert watcher.ready.wait(5)
    assert watcher.registered == {0: ["xid", "dbe", "gpu_unavailable", "recovery_action"]}
    assert nvml.registered == [(0, 0x8000 | 0x4000 | 0x0008 | 0x0002)]
    assert any("GPU 1" in e for e in watcher.errors)
    nvml.fire(0x0008, 0, 79)
    nvml.fire(0x8000, 0, 2)
    nvml.fire(0x0008, 0, 43, gi=5)
    nvml.fire(0x0004, 0)  # a P-state event: not ours
    _wait_for(lambda: len(sunk) == 3)
    watcher.stop()
    assert not watcher.running
    assert nvml.calls[-2:] == ["free", "shutdown"]
    assert sunk[0] == {
        "type": "xid",
        "timestamp": T0,
        "gpu_index": 0,
        "pci_bus_id": "00000000:18:00.0",
        "xid": 79,
    }
    assert sunk[1]["type"] == "recovery_action" and sunk[1]["value"] == 2
    assert sunk[2]["gpu_instance_id"] == 5
    assert watcher.drain() == sunk
    # the dicts are the recorded-event schema
    converted = nvml_events(sunk, GPUS)
    assert [(e.xid, e.gpu_instance) for e in converted] == [
        (79, None),
        (154, None),
        (43, "GPU-I:05"),
    ]


def test_watcher_survives_init_failure() -> None:
    nvml = FakeNVML()

    def boom() -> None:
        raise nvml.NVMLError(9)

    nvml.nvmlInit = boom  # type: ignore[method-assign]
    watcher = NvmlEventWatcher(nvml=nvml, timeout_ms=10).start()
    assert watcher.ready.wait(5)
    watcher.stop()
    assert watcher.errors and "init" in watcher.errors[0]


def test_start_event_watcher_feeds_the_backend() -> None:
    from sre_tools.gpu.backend import RealBackend

    backend = RealBackend()
    nvml = FakeNVML(gpus=1)
    watcher = start_event_watcher(backend, nvml=nvml, timeout_ms=10)
    assert watcher.ready.wait(5)
    nvml.fire(0x0002, 0)
    _wait_for(lambda: not watcher.queue.empty())
    watcher.stop()
    assert [e["type"] for e in backend.events()] == ["dbe"]
    assert backend.events() == []  # drained


def test_a_flood_from_two_sources_merges_exactly() -> None:
    n = 700  # more than one window's worth of neighbours
    kmsg = parse_lines(
        [
            f"4,{i + 1},{int((100 + i * 0.001) * 1e6)},-;NVRM: Xid (PCI:0000:18:00): 13, pid=1, "
            "name=x, Graphics"
            for i in range(n)
        ],
        boot_time=BOOT,
    )
    journal = parse_lines(
        ["2026-11-20T07:15:00+0000 h kernel: NVRM: Xid (PCI:0000:18:00): 13, pid=1, name=x, G"] * n
    )
    merged = dedupe([*journal, *kmsg])
    assert len(merged) == n
    assert all(set(e.sources) == {"kmsg", "journal"} for e in merged)
