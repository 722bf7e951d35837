"""Readers against a fake pynvml: memory as nvidia-smi shows it, the T.Limit margin."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sre_tools.gpu import readings


class FakeNvml:
    nvmlMemory_v2 = 0x02000028

    class NVMLError(Exception):
        pass

    class NVMLError_FunctionNotFound(NVMLError):
        pass

    def __init__(self, v2: bool = True):
        self.v2 = v2

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: int | None = None) -> Any:
        if version is None:  # v1 counts reserved memory as used
            return SimpleNamespace(total=100, used=30, free=70)
        if not self.v2:
            raise self.NVMLError_FunctionNotFound()
        return SimpleNamespace(total=100, reserved=20, used=10, free=70)

    def nvmlDeviceGetMarginTemperature(self, handle: Any) -> int:
        return 50


def test_memory_uses_v2_with_reserved_apart() -> None:
    assert readings.DEVICE["memory"](FakeNvml(), None) == {
        "total_bytes": 100,
        "reserved_bytes": 20,
        "used_bytes": 10,
        "free_bytes": 70,
    }


def test_memory_falls_back_to_v1_without_v2() -> None:
    assert readings.DEVICE["memory"](FakeNvml(v2=False), None) == {
        "total_bytes": 100,
        "used_bytes": 30,
        "free_bytes": 70,
    }


def test_margin_temperature() -> None:
    assert readings.DEVICE["margin_temperature_c"](FakeNvml(), None) == 50
