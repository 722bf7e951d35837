"""A first look at the local GPUs: is a driver there, and which GPUs does NVML see.

The full health engine (checks, findings, recorded backends) builds on this facade. A machine
without an NVIDIA driver is a normal answer here ("no NVIDIA driver"), not an error.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROC_VERSION = Path("/proc/driver/nvidia/version")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    uuid: str
    pci_bus_id: str
    temperature_c: int | None = None


@dataclass(frozen=True)
class ProbeResult:
    driver_present: bool
    message: str
    driver_version: str | None = None
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "driver_present": self.driver_present,
            "message": self.message,
            "driver_version": self.driver_version,
            "gpus": [g.__dict__ for g in self.gpus],
        }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe(nvml: Any = None, proc_version: Path = PROC_VERSION) -> ProbeResult:
    """Initialise NVML and list GPUs; ``nvml`` may be injected (a recorded backend in tests)."""
    if nvml is None:
        try:
            import pynvml
        except ImportError:
            return ProbeResult(False, "nvidia-ml-py is not installed")
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        if not proc_version.exists():
            return ProbeResult(False, "no NVIDIA driver on this machine")
        return ProbeResult(False, f"NVIDIA driver present but NVML failed: {exc}")
    try:
        version = _text(nvml.nvmlSystemGetDriverVersion())
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            try:
                temp: int | None = int(
                    nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                )
            except nvml.NVMLError:
                temp = None
            pci = nvml.nvmlDeviceGetPciInfo(handle)
            gpus.append(
                GpuInfo(
                    index=i,
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    pci_bus_id=_text(pci.busId),
                    temperature_c=temp,
                )
            )
        return ProbeResult(True, f"driver {version}, {len(gpus)} GPU(s)", version, tuple(gpus))
    except nvml.NVMLError as exc:
        return ProbeResult(True, f"NVML query failed: {exc}")
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()
