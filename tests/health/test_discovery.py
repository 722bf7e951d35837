"""Discovery and initialisation: a crash outside any check is UNKNOWN with its reason, and a
lost GPU is named by its PCI bus id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sre_tools.cli.health import nhc_lines
from sre_tools.exceptions import ValidationError
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


BAD_COUNTS = [
    pytest.param("eight", id="string"),
    pytest.param("8", id="numeric-string"),
    pytest.param([1], id="list"),
    pytest.param(1.5e400, id="inf"),
    pytest.param(1.5, id="float"),
    pytest.param(True, id="bool"),
    pytest.param(-1, id="negative"),
    pytest.param(1_000_000_000, id="huge"),
    pytest.param({"value": -3}, id="recorded-negative"),
]


@pytest.mark.parametrize("count", BAD_COUNTS)
def test_malformed_recorded_device_count_is_an_input_error(count: Any) -> None:
    """A recording is input: a count that is not 0..MAX_GPUS is refused naming the field (`sre
    health` exits 3 with it), never read as 1 (True, 1.5) or as no GPUs at all (-1)."""
    data = load(H100)
    data["device_count"] = count
    with pytest.raises(ValidationError) as err:
        RecordedBackend(data, "rec.json")
    assert err.value.field == "device_count" and "0 to 256" in str(err.value)


@pytest.mark.parametrize("count", [-1, 1_000_000_000, True, 2.0])
def test_impossible_count_from_nvml_is_unknown_not_an_empty_ok(tmp_path: Path, count: Any) -> None:
    """Whatever a backend answers: a GPU count outside 0..MAX_GPUS is UNKNOWN (exit 3), and no
    GPU is judged (not 'OK, 0 GPUs', not a billion-GPU loop until the watchdog)."""

    class Impossible(RecordedBackend):
        def device_count(self) -> Any:
            return count

    report = _run(Impossible(load(H100), "<test>"), tmp_path)
    assert report.exit_code == 3
    (f,) = [x for x in report.findings if x.check == "gpu.count"]
    assert f.severity is Severity.UNKNOWN and "not a GPU count" in f.summary
    assert not [x for x in report.findings if x.gpu is not None]


def test_crash_in_discovery_is_unknown_with_the_reason(tmp_path: Path) -> None:
    class Crashing(RecordedBackend):
        def device_count(self) -> int:
            raise OSError("nvidia-ml: device node vanished")

    report = _run(Crashing(load(H100), "<test>"), tmp_path)
    assert report.exit_code == 3
    (f,) = [x for x in report.findings if x.check == "health.collection"]
    assert f.severity is Severity.UNKNOWN
    assert "GPU discovery failed" in f.summary and "device node vanished" in f.summary


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
