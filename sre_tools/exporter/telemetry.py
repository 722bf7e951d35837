"""Read GPU telemetry through a backend into plain samples (no prometheus-client types here).

Per device, NVML outcomes become:

- a value: one sample in base units (watts, hertz, bytes, ratio);
- ``NotSupported``: no sample (the reading does not exist on this GPU or driver), not an error;
- ``ReadError`` GPU_IS_LOST / GPU_NOT_FOUND / RESET_REQUIRED: the device is lost, every sample of
  it is dropped, ``gpu_up`` is 0 and one ``device_lost`` error is counted;
- any other ``ReadError``: that sample is dropped and one ``read_error`` is counted.

A device whose UUID cannot be read exports nothing but ``gpu_up 0``: a series without a stable
identity would be worse than none.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sre_tools.exporter import metric_names as c
from sre_tools.exporter.metric_names import ErrorReason
from sre_tools.gpu.errors import NotSupported, NvmlInitError, ReadError
from sre_tools.gpu.readings import NVLINK_COUNTERS, NVLINK_MAX_LINKS, PERF_POLICIES, THRESHOLDS

if TYPE_CHECKING:
    from sre_tools.gpu.backend import Backend

LabelValues = tuple[str, ...]
Sample = tuple[str, LabelValues, float]  # (metric name, label values in spec order, value)

CLOCK_DOMAINS = ("sm", "memory", "graphics")
ECC_KINDS = ("corrected", "uncorrected")
ECC_COUNTERS = ("volatile", "aggregate")


@dataclass(frozen=True)
class GpuIdentity:
    index: int
    uuid: str = ""
    pci_bus_id: str = ""
    name: str = ""
    serial: str = ""
    vbios_version: str = ""

    @property
    def labels(self) -> LabelValues:
        """Values of :data:`sre_tools.exporter.metric_names.GPU_LABELS`."""
        return (str(self.index), self.uuid, self.pci_bus_id)


@dataclass
class DeviceTelemetry:
    identity: GpuIdentity
    up: bool
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None  # NVML error name when the device is down


@dataclass
class Telemetry:
    """One pass over every device; ``errors`` counts what went wrong, by reason."""

    driver_version: str = ""
    count: int | None = None
    init_error: NvmlInitError | None = None
    devices: list[DeviceTelemetry] = field(default_factory=list)
    errors: collections.Counter[ErrorReason] = field(default_factory=collections.Counter)
    extra: Any = None  # what the in-session hook returned (XID events)


class _Lost(Exception):
    def __init__(self, code: str):
        self.code = code
        super().__init__(code)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


class _Reader:
    def __init__(self, backend: Backend, index: int, errors: collections.Counter[ErrorReason]):
        self.backend = backend
        self.index = index
        self.errors = errors

    def get(self, name: str, *args: Any) -> Any:
        """The reading, or None (not supported, or failed and counted); raises ``_Lost``."""
        try:
            return self.backend.read(self.index, name, *args)
        except NotSupported:
            return None
        except ReadError as exc:
            if exc.gpu_lost or exc.reset_required:
                raise _Lost(exc.code) from None
            self.errors[ErrorReason.READ_ERROR] += 1
            return None

    def number(self, name: str, *args: Any) -> float | None:
        raw = self.get(name, *args)
        if raw is None:
            return None
        value = _number(raw)
        if value is None:
            self.errors[ErrorReason.READ_ERROR] += 1  # a malformed value: count, never crash
        return value

    def mapping(self, name: str, *args: Any) -> dict[str, Any]:
        raw = self.get(name, *args)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.errors[ErrorReason.READ_ERROR] += 1
            return {}
        return raw


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def read_device(
    backend: Backend, index: int, errors: collections.Counter[ErrorReason]
) -> DeviceTelemetry:
    """Every exported reading of one device (see the module docstring for error handling)."""
    r = _Reader(backend, index, errors)
    try:
        uuid = _text(r.get("uuid"))
        if not uuid:
            return DeviceTelemetry(GpuIdentity(index), up=False, error="NO_UUID")
        pci = r.mapping("pci")
        identity = GpuIdentity(
            index,
            uuid,
            _text(pci.get("bus_id")),
            _text(r.get("name")),
            _text(r.get("serial")),
            _text(r.get("vbios_version")),
        )
        return DeviceTelemetry(identity, up=True, samples=_device_samples(r, identity.labels))
    except _Lost as exc:
        errors[ErrorReason.DEVICE_LOST] += 1
        return DeviceTelemetry(GpuIdentity(index), up=False, error=exc.code)


def _device_samples(r: _Reader, lab: LabelValues) -> list[Sample]:
    out: list[Sample] = []

    def add(metric: str, value: float | None, *extra: str, scale: float = 1.0) -> None:
        if value is not None:
            out.append((metric, (*lab, *extra), value * scale))

    add(c.GPU_TEMPERATURE, r.number("temperature_c"))
    add(c.GPU_MEMORY_TEMPERATURE, r.number("memory_temperature_c"))
    for kind in THRESHOLDS:
        add(c.GPU_TEMPERATURE_THRESHOLD, r.number("temperature_threshold_c", kind), kind)
    add(c.GPU_POWER_USAGE, r.number("power_usage_mw"), scale=1e-3)
    add(c.GPU_POWER_LIMIT, r.number("power_limit_mw"), scale=1e-3)
    for domain in CLOCK_DOMAINS:
        add(c.GPU_CLOCK, r.number("clock_mhz", domain), domain, scale=1e6)
    for policy in PERF_POLICIES:
        add(c.GPU_CLOCK_THROTTLE, r.number("violation_ns", policy), policy, scale=1e-9)
    util = r.mapping("utilization")
    add(c.GPU_UTILIZATION, _number(util.get("gpu_percent")), scale=0.01)
    add(c.GPU_MEMORY_UTILIZATION, _number(util.get("memory_percent")), scale=0.01)
    mem = r.mapping("memory")
    add(c.GPU_MEMORY_USED, _number(mem.get("used_bytes")))
    add(c.GPU_MEMORY_TOTAL, _number(mem.get("total_bytes")))
    add(c.GPU_MEMORY_RESERVED, _number(mem.get("reserved_bytes")))
    for kind in ECC_KINDS:
        for counter in ECC_COUNTERS:
            add(c.GPU_ECC_ERRORS, r.number("ecc_errors", kind, counter), kind, counter)
    rows = r.mapping("remapped_rows")
    add(c.GPU_REMAPPED_ROWS, _number(rows.get("correctable")), "correctable")
    add(c.GPU_REMAPPED_ROWS, _number(rows.get("uncorrectable")), "uncorrectable")
    add(c.GPU_ROW_REMAP_PENDING, _number(rows.get("pending")))
    add(c.GPU_ROW_REMAP_FAILURE, _number(rows.get("failure")))
    add(c.GPU_PCIE_REPLAYS, r.number("pcie_replay_counter"))
    add(c.GPU_PCIE_LINK_WIDTH, r.number("pcie_link_width"))
    add(c.GPU_PCIE_LINK_MAX_WIDTH, r.number("pcie_max_link_width"))
    add(c.GPU_PCIE_LINK_GENERATION, r.number("pcie_link_gen"))
    add(c.GPU_PCIE_LINK_MAX_GENERATION, r.number("pcie_max_link_gen"))
    _nvlink(r, add)
    fabric = r.mapping("fabric")
    add(c.GPU_FABRIC_STATE, _number(fabric.get("state")))
    add(c.GPU_FABRIC_STATUS, _number(fabric.get("status")))
    _mig(r, add)
    return out


def _mig(r: _Reader, add: Callable[..., None]) -> None:
    """MIG mode, and one info series per MIG instance (labelled with its parent GPU)."""
    mode = r.get("mig_mode")
    if not isinstance(mode, list | tuple) or not mode:
        return  # not supported (no MIG on this GPU)
    enabled = bool(mode[0])
    add(c.GPU_MIG_MODE, float(enabled))
    if not enabled:
        return
    devices = r.get("mig_devices")
    if not isinstance(devices, list):
        return
    for dev in devices:
        if not isinstance(dev, dict) or not dev.get("uuid"):
            continue
        add(
            c.GPU_MIG_INSTANCE_INFO,
            1.0,
            _text(dev.get("uuid")),
            _text(dev.get("gpu_instance_id")),
            _text(dev.get("compute_instance_id")),
            _text(dev.get("name")),
        )


def _nvlink(r: _Reader, add: Callable[..., None]) -> None:
    """Active links, and error counters summed over the active links (per-link detail is in
    ``nvidia-smi nvlink -e``; 18 links x 5 counters per GPU would dominate the scrape)."""
    active: list[int] = []
    supported = False
    for link in range(NVLINK_MAX_LINKS):
        state = r.get("nvlink_state", link)
        if state is None:
            continue
        supported = True
        if state:
            active.append(link)
    if not supported:
        return
    add(c.GPU_NVLINK_LINKS_ACTIVE, float(len(active)))
    totals: dict[str, float] = {}
    for link in active:
        counters = r.mapping("nvlink_errors", link)
        for name in NVLINK_COUNTERS:
            value = _number(counters.get(name))
            if value is not None:
                totals[name] = totals.get(name, 0.0) + value
    for name, total in totals.items():
        add(c.GPU_NVLINK_ERRORS, total, name)


InSession = Callable[[Telemetry], Any]


def read_all(backend: Backend, in_session: InSession | None = None) -> Telemetry:
    """One NVML session: init, every device, ``in_session`` (XID events), shutdown."""
    out = Telemetry()
    try:
        backend.init()
    except NvmlInitError as exc:
        out.init_error = exc
        out.errors[ErrorReason.NVML_INIT] += 1
        return out
    try:
        try:
            out.driver_version = _text(backend.system("driver_version"))
        except (NotSupported, ReadError):
            out.driver_version = ""
        try:
            out.count = int(backend.device_count())
        except (NotSupported, ReadError):
            out.errors[ErrorReason.READ_ERROR] += 1
            return out
        for index in range(out.count):
            out.devices.append(read_device(backend, index, out.errors))
        if in_session is not None:
            out.extra = in_session(out)
        return out
    finally:
        backend.shutdown()
