"""The ``gpu`` marker: real NVML tests run only where a GPU and its driver are present."""

from __future__ import annotations

import pytest


def _gpu_present() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:
        return f"no NVIDIA GPU here ({type(exc).__name__}: {exc})"
    return None if count > 0 else "NVML sees no GPU"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _gpu_present()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
