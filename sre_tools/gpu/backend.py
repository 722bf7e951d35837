"""NVML backends: the real one (``pynvml``), and a recorded one that plays back a capture.

Both answer the same three questions: how many devices, what is system reading X, what is
device reading X with arguments A. Errors come back as :class:`NotSupported` (the check does not
apply here) or :class:`ReadError` with NVML's error name, never as pynvml exceptions.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from sre_tools.exceptions import ValidationError
from sre_tools.gpu import readings
from sre_tools.gpu.errors import (
    InitFailure,
    NotRecorded,
    NotSupported,
    NvmlInitError,
    ReadError,
)

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any, Protocol

    from sre_tools.progress import Progress

RECORDING_VERSION = 1
# The most GPUs one node can show NVML (HGX and MGX boards have 8, the largest PCIe servers 20;
# NVML's own device limit is far below this). A count outside 0..MAX_GPUS is not a GPU count.
MAX_GPUS = 256


if TYPE_CHECKING:
    # What every backend answers; a Protocol only for the type checker (import it under
    # ``if TYPE_CHECKING:``), so that the health path never imports typing.
    class Backend(Protocol):
        def init(self) -> None: ...
        def shutdown(self) -> None: ...
        def device_count(self) -> int: ...
        def system(self, name: str) -> Any: ...
        def read(self, index: int, name: str, *args: Any) -> Any: ...
        def events(self) -> list[dict[str, Any]]: ...
        def pci_bus_id(self, index: int) -> str | None: ...


def is_gpu_count(value: object) -> bool:
    """A whole number from 0 to :data:`MAX_GPUS` (not a bool, not a float)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_GPUS


def _error_name(nvml: Any, exc: Exception) -> str:
    value = getattr(exc, "value", None)
    for attr in dir(nvml):
        if attr.startswith("NVML_ERROR_") and getattr(nvml, attr) == value:
            return attr[len("NVML_ERROR_") :]
    return str(exc).upper().replace(" ", "_") or "UNKNOWN"


class RealBackend:
    """NVML through ``pynvml``. Imported lazily: nothing loads NVML until :meth:`init`."""

    def __init__(self) -> None:
        self.nvml: Any = None
        self._handles: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._pending_events: list[dict[str, Any]] = []

    def init(self) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise NvmlInitError(
                InitFailure.LIBRARY_NOT_FOUND, f"nvidia-ml-py missing: {exc}"
            ) from None
        self.nvml = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            name = _error_name(pynvml, exc)
            kind = {
                "DRIVER_NOT_LOADED": InitFailure.DRIVER_NOT_LOADED,
                "LIBRARY_NOT_FOUND": InitFailure.LIBRARY_NOT_FOUND,
                "LIB_RM_VERSION_MISMATCH": InitFailure.VERSION_MISMATCH,
                "NO_PERMISSION": InitFailure.NO_PERMISSION,
            }.get(name, InitFailure.OTHER)
            raise NvmlInitError(kind, f"NVML init failed: {exc} ({name})") from None

    def shutdown(self) -> None:
        if self.nvml is not None:
            with contextlib.suppress(self.nvml.NVMLError):
                self.nvml.nvmlShutdown()
        self._handles.clear()

    def _wrap(self, fn: Any, *args: Any) -> Any:
        nvml = self.nvml
        try:
            return fn(*args)
        except nvml.NVMLError as exc:
            name = _error_name(nvml, exc)
            if name in {"NOT_SUPPORTED", "FUNCTION_NOT_FOUND"}:
                raise NotSupported(name) from None
            raise ReadError(name, str(exc)) from None
        except (AttributeError, NotImplementedError):
            # An older pynvml without this function, or a field the driver does not know.
            raise NotSupported("FUNCTION_NOT_FOUND") from None

    def device_count(self) -> int:
        return int(self._wrap(self.nvml.nvmlDeviceGetCount))

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = self._wrap(self.nvml.nvmlDeviceGetHandleByIndex, index)
        return self._handles[index]

    def system(self, name: str) -> Any:
        return self._wrap(readings.SYSTEM[name], self.nvml)

    def read(self, index: int, name: str, *args: Any) -> Any:
        handle = self._handle(index)
        return self._wrap(readings.DEVICE[name], self.nvml, handle, *args)

    def pci_bus_id(self, index: int) -> str | None:
        """Where NVML cannot name a lost GPU, the caller asks sysfs instead."""
        return None

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            out, self._pending_events = self._pending_events, []
        return out

    def push_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._pending_events.append(event)


class RecordedBackend:
    """Plays back a capture written by ``sre gpu capture`` (or a fault fixture derived from it).

    A recording may also say that NVML itself fails (``"init_error": "driver_not_loaded"``) and
    list NVML events (``"events"``) for the event-driven XID path.

    Each reading is ``{"value": ...}``, ``{"error": "NVML_ERROR_NAME"}`` or
    ``{"not_recorded": "why"}``; extra keys (``"source"``, ``"from"``) say where a value came
    from and are ignored here. A reading that is missing or marked not recorded raises
    :class:`NotRecorded` (the check is SKIPPED), never a healthy default.
    """

    def __init__(self, data: dict[str, Any], source: str = "<recording>"):
        self.data = data
        self.source = source
        self._validate()

    @classmethod
    def load(cls, path: str | Path) -> RecordedBackend:
        """Read a recording: at most ``MAX_RECORDING_BYTES`` (unpacked, for ``.gz``), JSON
        without duplicate keys, NaN or nesting deeper than ``MAX_DEPTH`` (sre_tools.inputs)."""
        from sre_tools.inputs import MAX_RECORDING_BYTES, load_json, read_text_capped

        try:
            text, source = read_text_capped(str(path), MAX_RECORDING_BYTES, what="recording")
        except ValidationError as exc:
            if exc.reason.startswith("cannot read file: "):  # say what could not be read
                reason = exc.reason.removeprefix("cannot read file: ")
                raise ValidationError(
                    f"cannot read recording: {reason}", source=str(path)
                ) from None
            raise
        return cls(load_json(text, source), source)

    def _validate(self) -> None:
        d = self.data
        if not isinstance(d, dict):
            raise ValidationError("expected a JSON object", source=self.source)
        if d.get("version") != RECORDING_VERSION:
            raise ValidationError(
                f"unsupported recording version {d.get('version')!r} "
                f"(expected {RECORDING_VERSION})",
                source=self.source,
                field="version",
            )
        if d.get("init_error") is not None:
            try:
                InitFailure(d["init_error"])
            except ValueError:
                raise ValidationError(
                    f"unknown init_error {d['init_error']!r}",
                    source=self.source,
                    field="init_error",
                ) from None
            return
        devices = d.get("devices")
        if not isinstance(devices, list):
            raise ValidationError("expected a list", source=self.source, field="devices")
        count = d.get("device_count")
        if isinstance(count, dict) and "value" in count:
            count = count["value"]
        elif isinstance(count, dict) and "error" in count:
            count = None  # NVML's error, played back as such
        if count is not None and not is_gpu_count(count):
            raise ValidationError(
                f"expected a whole number of GPUs from 0 to {MAX_GPUS}, got {count!r}",
                source=self.source,
                field="device_count",
            )
        if len(devices) > MAX_GPUS:
            raise ValidationError(
                f"{len(devices)} devices, more than {MAX_GPUS}", source=self.source, field="devices"
            )
        for i, dev in enumerate(devices):
            if not isinstance(dev, dict) or not isinstance(dev.get("readings"), dict):
                raise ValidationError(
                    "expected an object with 'readings'", source=self.source, field=f"devices[{i}]"
                )
        if not isinstance(d.get("system", {}), dict):
            raise ValidationError("expected an object", source=self.source, field="system")
        events = d.get("events", [])
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise ValidationError("expected a list of objects", source=self.source, field="events")

    def init(self) -> None:
        failure = self.data.get("init_error")
        if failure is not None:
            raise NvmlInitError(InitFailure(failure), f"NVML init failed ({failure}, recorded)")

    def shutdown(self) -> None:
        return None

    @staticmethod
    def _answer(entry: Any) -> Any:
        if isinstance(entry, dict) and "error" in entry:
            code = str(entry["error"])
            if code == "NOT_SUPPORTED":
                raise NotSupported(code)
            raise ReadError(code)
        if isinstance(entry, dict) and "value" in entry:
            return entry["value"]
        raise NotRecorded("NOT_RECORDED")

    def device_count(self) -> int:
        count = self.data.get("device_count")
        if isinstance(count, dict):
            count = self._answer(count)
        return len(self.data["devices"]) if count is None else int(count)

    def system(self, name: str) -> Any:
        return self._answer(self.data.get("system", {}).get(name))

    def read(self, index: int, name: str, *args: Any) -> Any:
        devices = self.data["devices"]
        if index >= len(devices):
            raise ReadError("GPU_NOT_FOUND")
        dev = devices[index]
        if dev.get("lost"):
            raise ReadError("GPU_IS_LOST")
        return self._answer(dev["readings"].get(readings.key(name, args)))

    def pci_bus_id(self, index: int) -> str | None:
        """The recorded bus id of a GPU, even one the recording marks lost."""
        devices = self.data.get("devices", [])
        if not 0 <= index < len(devices):
            return None
        dev = devices[index]
        entry = dev["readings"].get("pci")
        if isinstance(entry, dict) and isinstance(entry.get("value"), dict):
            bus = entry["value"].get("bus_id")
            return str(bus) if bus else None
        bus = dev.get("pci_bus_id")
        return str(bus) if bus else None

    def events(self) -> list[dict[str, Any]]:
        return list(self.data.get("events", []))


def capture(
    backend: Backend,
    *,
    host: str = "",
    captured_at: str = "",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Record every reading the checks use from ``backend`` (normally the real one);
    ``progress`` (see sre_tools.progress) hears each GPU as it starts."""

    def entry(fn: Any, *args: Any) -> dict[str, Any]:
        try:
            return {"value": fn(*args)}
        except NotSupported:
            return {"error": "NOT_SUPPORTED"}
        except ReadError as exc:
            return {"error": exc.code}

    backend.init()
    try:
        out: dict[str, Any] = {
            "version": RECORDING_VERSION,
            "host": host,
            "captured_at": captured_at,
            "system": {name: entry(backend.system, name) for name in readings.SYSTEM},
            "devices": [],
        }
        count = backend.device_count()
        for index in range(count):
            if progress is not None:
                progress(index, count, f"GPU {index}")
            dev: dict[str, Any] = {}
            for name in readings.DEVICE:
                for args in readings.DEVICE_ARGS.get(name, [()]):
                    dev[readings.key(name, args)] = entry(backend.read, index, name, *args)
            out["devices"].append({"index": index, "readings": dev})
        out["events"] = []
        return out
    finally:
        backend.shutdown()
