"""The GPU probe against a fake NVML (real NVML runs on a lent GPU machine)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from sre_tools.gpu.probe import probe


class FakeNVML:
    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    def __init__(self, gpus: int = 2, init_error: str | None = None, temp_error: bool = False):
        self.gpus = gpus
        self.init_error = init_error
        self.temp_error = temp_error
        self.shutdown_called = False

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shutdown_called = True

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.159.04"

    def nvmlDeviceGetCount(self) -> int:
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-0000000{h}-aaaa-bbbb-cccc-dddddddddddd"

    def nvmlDeviceGetPciInfo(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(busId=f"00000000:{0x18 + h:02X}:00.0")

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        if self.temp_error:
            raise self.NVMLError("Not Supported")
        return 35 + h


def test_lists_gpus_and_shuts_down() -> None:
    nvml = FakeNVML(gpus=2)
    result = probe(nvml)
    assert result.driver_present
    assert result.driver_version == "580.159.04"
    assert [g.pci_bus_id for g in result.gpus] == ["00000000:18:00.0", "00000000:19:00.0"]
    assert result.gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert result.gpus[1].temperature_c == 36
    assert nvml.shutdown_called


def test_not_supported_reading_is_none() -> None:
    result = probe(FakeNVML(gpus=1, temp_error=True))
    assert result.gpus[0].temperature_c is None


def test_no_driver_is_a_normal_answer(tmp_path: Path) -> None:
    result = probe(FakeNVML(init_error="Driver Not Loaded"), proc_version=tmp_path / "missing")
    assert not result.driver_present
    assert result.message == "no NVIDIA driver on this machine"


def test_driver_present_but_nvml_fails(tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.write_text("NVRM version: 580.159.04\n")
    result = probe(FakeNVML(init_error="Driver/library version mismatch"), proc_version=version)
    assert not result.driver_present
    assert "version mismatch" in result.message
