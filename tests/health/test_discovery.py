"""Discovery and initialisation: a crash outside any check is UNKNOWN with its reason, and a
lost GPU is named by its PCI bus id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sre_tools.cli.health import nhc_lines
from sre_tools.gpu.backend import RecordedBackend
from sre_tools.health.model import Severity
from sre_tools.health.policy import load_policy
from sre_tools.health.runner import run_health
from sre_tools.health.state import CounterState
from tests.health.checks.conftest import FAULTS, H100, load


def _run(backend: Any, sysfs: Path) -> Any:
    return run_health(
        backend, load_policy(), state=CounterState(), sysfs=sysfs, kernel_log_lines=[], host="n1"
    )


@pytest.mark.parametrize(
    "count",
    [
        pytest.param("eight", id="string"),
        pytest.param([1], id="list"),
        pytest.param(1.5e400, id="inf"),
    ],
)
def test_malformed_device_count_is_unknown_not_an_empty_ok(tmp_path: Path, count: Any) -> None:
    data = load(H100)
    data["device_count"] = count
    report = _run(RecordedBackend(data, "<test>"), tmp_path)
    assert report.exit_code == 3
    (f,) = [x for x in report.findings if x.check == "health.collection"]
    assert f.severity is Severity.UNKNOWN
    assert "GPU discovery failed" in f.summary
    assert not [x for x in report.findings if x.check == "gpu.count"]


class CrashingInit(RecordedBackend):
    def init(self) -> None:
        raise RuntimeError("libnvidia-ml.so: bad ELF header")


def test_crash_in_initialisation_is_unknown_with_the_reason(tmp_path: Path) -> None:
    report = _run(CrashingInit(load(H100), "<test>"), tmp_path)
    assert report.exit_code == 3
    (f,) = [x for x in report.findings if x.check == "health.collection"]
    assert "bad ELF header" in f.summary


def test_lost_gpu_named_by_its_recorded_bus_id(tmp_path: Path) -> None:
    report = _run(RecordedBackend.load(FAULTS / "gpu-lost.json"), tmp_path)
    (lost,) = [x for x in report.findings if x.check == "gpu.lost"]
    assert lost.gpu is not None and lost.gpu.pci_bus_id == "00000000:00:06.0"
    (line,) = [x for x in nhc_lines(report) if "gpu.lost" in x]
    assert "GPU 0 (00000000:00:06.0)" in line


class NoBusIdBackend(RecordedBackend):
    """Like NVML: a lost GPU cannot be named by the backend itself."""

    def pci_bus_id(self, index: int) -> str | None:
        return None


def test_lost_gpu_named_from_sysfs_nvidia_driver(tmp_path: Path) -> None:
    driver = tmp_path / "bus" / "pci" / "drivers" / "nvidia"
    for bus, klass in (("0000:18:00.0", "0x030200"), ("0000:05:00.0", "0x068000")):
        dev = driver / bus
        dev.mkdir(parents=True)
        (dev / "class").write_text(klass + "\n")
    (driver / "new_id").write_text("")
    report = _run(NoBusIdBackend.load(FAULTS / "gpu-lost.json"), tmp_path)
    (lost,) = [x for x in report.findings if x.check == "gpu.lost"]
    assert lost.gpu is not None and lost.gpu.pci_bus_id == "0000:18:00.0"
