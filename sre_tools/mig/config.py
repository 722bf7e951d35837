"""NVIDIA mig-parted configuration files (``version: v1``, ``mig-configs``).

::

    version: v1
    mig-configs:
      all-disabled:
        - devices: all
          mig-enabled: false
      all-1g.10gb:
        - devices: all
          mig-enabled: true
          mig-devices:
            "1g.10gb": 7

Validation covers the schema (every field named in errors) and profile validity: the profile
names exist for the GPU model, and a device's instances fit in its 7 compute and 8 memory slices.
Placement rules beyond the slice totals are left to mig-parted itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sre_tools.exceptions import ValidationError
from sre_tools.inputs import load_yaml

# Profile -> (compute slices, memory slices) per GPU memory size; "+me" adds the media engine.
PROFILES: dict[str, dict[str, tuple[int, int]]] = {
    "80gb": {  # H100 80GB, A100 80GB
        "1g.10gb": (1, 1), "1g.10gb+me": (1, 1), "1g.20gb": (1, 2), "2g.20gb": (2, 2),
        "3g.40gb": (3, 4), "4g.40gb": (4, 4), "7g.80gb": (7, 8),
    },
    "40gb": {  # A100 40GB
        "1g.5gb": (1, 1), "1g.5gb+me": (1, 1), "1g.10gb": (1, 2), "2g.10gb": (2, 2),
        "3g.20gb": (3, 4), "4g.20gb": (4, 4), "7g.40gb": (7, 8),
    },
    "94gb": {  # H100 NVL
        "1g.12gb": (1, 1), "1g.12gb+me": (1, 1), "1g.24gb": (1, 2), "2g.24gb": (2, 2),
        "3g.47gb": (3, 4), "4g.47gb": (4, 4), "7g.94gb": (7, 8),
    },
    "141gb": {  # H200
        "1g.18gb": (1, 1), "1g.18gb+me": (1, 1), "1g.35gb": (1, 2), "2g.35gb": (2, 2),
        "3g.71gb": (3, 4), "4g.71gb": (4, 4), "7g.141gb": (7, 8),
    },
}  # fmt: skip
COMPUTE_SLICES = 7
MEMORY_SLICES = 8
_PROFILE = re.compile(r"^\d g\.\d+gb(\+me)?$".replace(" ", ""))
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,62}$")


@dataclass(frozen=True)
class DeviceLayout:
    devices: str | tuple[int, ...]  # "all" or GPU indices
    mig_enabled: bool
    mig_devices: tuple[tuple[str, int], ...] = ()

    def applies_to(self, index: int) -> bool:
        return self.devices == "all" or (isinstance(self.devices, tuple) and index in self.devices)


@dataclass(frozen=True)
class MigConfigFile:
    configs: dict[str, tuple[DeviceLayout, ...]]

    def layout_for(self, name: str, index: int) -> DeviceLayout | None:
        for layout in self.configs[name]:
            if layout.applies_to(index):
                return layout
        return None


def _fail(message: str, source: str, field: str) -> ValidationError:
    return ValidationError(message, source=source, field=field)


def parse_mig_config(text: str, source: str, *, memory: str | None = None) -> MigConfigFile:
    """Parse and validate; ``memory`` (``80gb``...) also checks profiles against that GPU."""
    doc = load_yaml(text, source)
    if not isinstance(doc, dict):
        raise ValidationError("expected a mapping at the top level", source=source)
    for key in doc:
        if key not in {"version", "mig-configs"}:
            raise _fail("unknown field (allowed: version, mig-configs)", source, str(key))
    if doc.get("version") != "v1":
        raise _fail(f"expected 'v1', got {doc.get('version')!r}", source, "version")
    configs = doc.get("mig-configs")
    if not isinstance(configs, dict) or not configs:
        raise _fail("expected a non-empty mapping of named configs", source, "mig-configs")
    out: dict[str, tuple[DeviceLayout, ...]] = {}
    for name, entries in configs.items():
        base = f"mig-configs.{name}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise _fail(f"invalid config name {name!r}", source, base)
        if not isinstance(entries, list) or not entries:
            raise _fail("expected a non-empty list of device entries", source, base)
        out[name] = tuple(_entry(e, source, f"{base}[{i}]", memory) for i, e in enumerate(entries))
    return MigConfigFile(out)


def _entry(raw: Any, source: str, path: str, memory: str | None) -> DeviceLayout:
    if not isinstance(raw, dict):
        raise _fail("expected a mapping", source, path)
    for key in raw:
        if key not in {"devices", "mig-enabled", "mig-devices", "device-filter"}:
            raise _fail("unknown field", source, f"{path}.{key}")
    devices_raw = raw.get("devices")
    devices: str | tuple[int, ...]
    if devices_raw == "all":
        devices = "all"
    elif (
        isinstance(devices_raw, list)
        and devices_raw
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 64 for d in devices_raw)
    ):
        devices = tuple(devices_raw)
    else:
        raise _fail("expected 'all' or a list of GPU indices", source, f"{path}.devices")
    enabled = raw.get("mig-enabled")
    if not isinstance(enabled, bool):
        raise _fail("expected true or false", source, f"{path}.mig-enabled")
    mig_devices = raw.get("mig-devices") or {}
    if not isinstance(mig_devices, dict):
        raise _fail("expected a mapping of profile to count", source, f"{path}.mig-devices")
    if mig_devices and not enabled:
        raise _fail("mig-devices given while mig-enabled is false", source, f"{path}.mig-devices")
    compute = memory_slices = 0
    table = PROFILES.get(memory) if memory else None
    for profile, count in mig_devices.items():
        where = f"{path}.mig-devices.{profile}"
        if not isinstance(profile, str) or not _PROFILE.fullmatch(profile):
            raise _fail(f"invalid MIG profile {profile!r} (like 1g.10gb)", source, where)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 7:
            raise _fail(f"count must be 0..7, got {count!r}", source, where)
        if table is not None:
            if profile not in table:
                known = ", ".join(table)
                raise _fail(f"not a profile of a {memory} GPU (known: {known})", source, where)
            c, mem = table[profile]
        else:
            c = int(profile.split("g.", 1)[0])
            mem = c + (1 if c in (3, 7) else 0) if c != 4 else 4
        compute += c * count
        memory_slices += mem * count
    if compute > COMPUTE_SLICES or memory_slices > MEMORY_SLICES:
        raise _fail(
            f"instances need {compute} compute and {memory_slices} memory slices; a GPU has "
            f"{COMPUTE_SLICES} and {MEMORY_SLICES}",
            source,
            f"{path}.mig-devices",
        )
    return DeviceLayout(
        devices, enabled, tuple(sorted((str(k), int(v)) for k, v in mig_devices.items()))
    )


def memory_class(gpu_name: str) -> str | None:
    """``NVIDIA H100 80GB HBM3`` -> ``80gb``; None when the name does not say."""
    match = re.search(r"(\d+)\s*GB", gpu_name, re.IGNORECASE)
    if match is None:
        return None
    key = f"{match.group(1)}gb"
    return key if key in PROFILES else None


def profile_of(mig_device_name: str) -> str | None:
    """``NVIDIA H100 80GB HBM3 MIG 1g.10gb`` -> ``1g.10gb``."""
    match = re.search(r"MIG\s+(\d+g\.\d+gb(?:\+me)?)", mig_device_name)
    return match.group(1) if match else None
