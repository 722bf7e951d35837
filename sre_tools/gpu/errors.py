"""NVML outcomes as the rest of the package sees them (no pynvml types leak out of ``gpu``)."""

from __future__ import annotations

import enum

from sre_tools.exceptions import SreError


class InitFailure(enum.StrEnum):
    """Why NVML could not start; each maps to one clear health finding."""

    DRIVER_NOT_LOADED = "driver_not_loaded"
    LIBRARY_NOT_FOUND = "library_not_found"
    VERSION_MISMATCH = "driver_library_mismatch"
    NO_PERMISSION = "no_permission"
    OTHER = "other"


class NvmlInitError(SreError):
    """NVML initialisation failed."""

    def __init__(self, kind: InitFailure, message: str):
        self.kind = kind
        super().__init__(message)


class NotSupported(Exception):
    """The reading does not exist on this device or driver: the check does not apply."""


class NotRecorded(NotSupported):
    """A recording holds no answer for this reading (converted from a tool that does not show
    it, or written by an older version): the check is SKIPPED, never judged on a made-up value."""


class ReadError(Exception):
    """A reading failed; ``code`` is NVML's error name (``GPU_IS_LOST``, ``TIMEOUT``, ...)."""

    def __init__(self, code: str, message: str = ""):
        self.code = code
        super().__init__(message or code)

    @property
    def gpu_lost(self) -> bool:
        return self.code in {"GPU_IS_LOST", "GPU_NOT_FOUND"}

    @property
    def reset_required(self) -> bool:
        return self.code == "RESET_REQUIRED"
