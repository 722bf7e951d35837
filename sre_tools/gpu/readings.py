"""Every NVML reading the health checks use, as one table.

A reading is a small function ``(nvml, handle, *args) -> plain JSON value``: the real backend calls
it against ``pynvml`` and a device handle, the recorder stores its result (or its error) under
``name(args)``, and the recorded backend plays it back. Adding a reading here is all it takes for
``sre gpu capture`` to record it.
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

    Reader = Callable[..., Any]

# NVLink error counters (nvmlNvLinkErrorCounter_t) by name.
NVLINK_COUNTERS = {
    "replay": 0,  # NVML_NVLINK_ERROR_DL_REPLAY
    "recovery": 1,  # NVML_NVLINK_ERROR_DL_RECOVERY
    "crc_flit": 2,  # NVML_NVLINK_ERROR_DL_CRC_FLIT
    "crc_data": 3,  # NVML_NVLINK_ERROR_DL_CRC_DATA
    "ecc_data": 4,  # NVML_NVLINK_ERROR_DL_ECC_DATA
}
NVLINK_MAX_LINKS = 18
# Temperature thresholds (nvmlTemperatureThresholds_t).
THRESHOLDS = {"shutdown": 0, "slowdown": 1, "mem_max": 2, "gpu_max": 3}
# Perf policies for violation time (nvmlPerfPolicyType_t).
PERF_POLICIES = {
    "power": 0,
    "thermal": 1,
    "sync_boost": 2,
    "board_limit": 3,
    "low_utilization": 4,
    "reliability": 5,
}


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(nvml: Any, handle: Any, field_name: str) -> Any:
    field_id = getattr(nvml, field_name)
    values = nvml.nvmlDeviceGetFieldValues(handle, [field_id])
    fv = values[0]
    if fv.nvmlReturn != 0:
        raise nvml.NVMLError(fv.nvmlReturn)
    kind = fv.valueType
    value = fv.value
    # nvmlValueType_t: 0 double, 1 uint, 2 ulong, 3 ulonglong, 4 slonglong, 5 sint, 6 ushort
    return {
        0: value.dVal,
        1: value.uiVal,
        2: value.ulVal,
        3: value.ullVal,
        4: value.sllVal,
        5: getattr(value, "siVal", value.uiVal),
        6: getattr(value, "usVal", value.uiVal),
    }.get(kind, value.ullVal)


def _clock_reasons(nvml: Any, handle: Any) -> int:
    fn = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or (
        nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    )
    return int(fn(handle))


def _pci(nvml: Any, handle: Any) -> dict[str, Any]:
    info = nvml.nvmlDeviceGetPciInfo(handle)
    return {
        "bus_id": _s(info.busId),
        "domain": int(info.domain),
        "bus": int(info.bus),
        "device": int(info.device),
        "pci_device_id": int(info.pciDeviceId),
        "pci_subsystem_id": int(info.pciSubSystemId),
    }


def _memory(nvml: Any, handle: Any) -> dict[str, int]:
    """Frame buffer memory as ``nvidia-smi`` shows it (``nvmlDeviceGetMemoryInfo_v2``).

    The v1 call counts the driver's reserved memory as used (an idle H100 80GB "uses" ~500 MiB);
    v2 reports it apart, so ``used_bytes`` matches ``nvidia-smi`` and ``reserved_bytes`` is
    exported on its own. Drivers without v2 fall back to v1 (no ``reserved_bytes`` then).
    """
    version = getattr(nvml, "nvmlMemory_v2", None)
    if version is not None:
        try:
            info = nvml.nvmlDeviceGetMemoryInfo(handle, version=version)
        except nvml.NVMLError_FunctionNotFound:
            pass
        else:
            return {
                "total_bytes": int(info.total),
                "reserved_bytes": int(info.reserved),
                "used_bytes": int(info.used),
                "free_bytes": int(info.free),
            }
    info = nvml.nvmlDeviceGetMemoryInfo(handle)
    return {
        "total_bytes": int(info.total),
        "used_bytes": int(info.used),
        "free_bytes": int(info.free),
    }


def _utilization(nvml: Any, handle: Any) -> dict[str, int]:
    util = nvml.nvmlDeviceGetUtilizationRates(handle)
    return {"gpu_percent": int(util.gpu), "memory_percent": int(util.memory)}


def _pair(value: Any) -> list[int]:
    return [int(value[0]), int(value[1])]


def _remapped_rows(nvml: Any, handle: Any) -> dict[str, Any]:
    corr, unc, pending, failure = nvml.nvmlDeviceGetRemappedRows(handle)
    return {
        "correctable": int(corr),
        "uncorrectable": int(unc),
        "pending": bool(pending),
        "failure": bool(failure),
    }


def _remapper_histogram(nvml: Any, handle: Any) -> dict[str, int]:
    h = nvml.nvmlDeviceGetRowRemapperHistogram(handle)
    return {
        "max": int(h.max),
        "high": int(h.high),
        "partial": int(h.partial),
        "low": int(h.low),
        "none": int(h.none),
    }


def _sram_status(nvml: Any, handle: Any) -> dict[str, Any]:
    st = nvml.nvmlDeviceGetSramEccErrorStatus(handle)
    return {
        "threshold_exceeded": bool(st.bThresholdExceeded),
        "aggregate_uncorrectable_parity": int(st.aggregateUncParity),
        "aggregate_uncorrectable_sec_ded": int(st.aggregateUncSecDed),
        "aggregate_correctable": int(st.aggregateCor),
        "volatile_uncorrectable_parity": int(st.volatileUncParity),
        "volatile_uncorrectable_sec_ded": int(st.volatileUncSecDed),
        "volatile_correctable": int(st.volatileCor),
    }


def _repair_status(nvml: Any, handle: Any) -> dict[str, bool]:
    st = nvml.nvmlDeviceGetRepairStatus(handle)
    return {
        "channel_repair_pending": bool(st.bChannelRepairPending),
        "tpc_repair_pending": bool(st.bTpcRepairPending),
    }


def _retired_pages(nvml: Any, handle: Any, cause: int) -> int:
    return len(nvml.nvmlDeviceGetRetiredPages(handle, cause))


def _violation(nvml: Any, handle: Any, policy: int) -> int:
    """Accumulated violation time in nanoseconds for a perf policy."""
    return int(nvml.nvmlDeviceGetViolationStatus(handle, policy).violationTime)


def _fabric(nvml: Any, handle: Any) -> dict[str, Any]:
    getter = getattr(nvml, "nvmlDeviceGetGpuFabricInfoV", None)
    if getter is not None:
        info = nvml.c_nvmlGpuFabricInfoV_t()
        info.version = nvml.nvmlGpuFabricInfo_v2
        getter(handle, nvml.byref(info))
        health = int(getattr(info, "healthMask", 0))
    else:
        info = nvml.c_nvmlGpuFabricInfo_t()
        nvml.nvmlDeviceGetGpuFabricInfo(handle, nvml.byref(info))
        health = 0
    return {
        "state": int(info.state),
        "status": int(info.status),
        "clique_id": int(info.cliqueId),
        "health_mask": health,
    }


def _mig_devices(nvml: Any, handle: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
        except nvml.NVMLError_NotFound:
            continue
        out.append(
            {
                "index": i,
                "name": _s(nvml.nvmlDeviceGetName(mig)),
                "uuid": _s(nvml.nvmlDeviceGetUUID(mig)),
                "gpu_instance_id": int(nvml.nvmlDeviceGetGpuInstanceId(mig)),
                "compute_instance_id": int(nvml.nvmlDeviceGetComputeInstanceId(mig)),
            }
        )
    return out


def _nvlink_state(nvml: Any, handle: Any, link: int) -> bool:
    return bool(nvml.nvmlDeviceGetNvLinkState(handle, link))


def _nvlink_errors(nvml: Any, handle: Any, link: int) -> dict[str, int]:
    return {
        name: int(nvml.nvmlDeviceGetNvLinkErrorCounter(handle, link, code))
        for name, code in NVLINK_COUNTERS.items()
    }


def _validate_inforom(nvml: Any, handle: Any) -> bool:
    nvml.nvmlDeviceValidateInforom(handle)
    return True


# Device readings: name -> reader. Arguments (thresholds, link numbers) are part of the key.
DEVICE: dict[str, Reader] = {
    "name": lambda n, h: _s(n.nvmlDeviceGetName(h)),
    "uuid": lambda n, h: _s(n.nvmlDeviceGetUUID(h)),
    "serial": lambda n, h: _s(n.nvmlDeviceGetSerial(h)),
    "pci": _pci,
    "minor_number": lambda n, h: int(n.nvmlDeviceGetMinorNumber(h)),
    "architecture": lambda n, h: int(n.nvmlDeviceGetArchitecture(h)),
    "vbios_version": lambda n, h: _s(n.nvmlDeviceGetVbiosVersion(h)),
    "inforom_image_version": lambda n, h: _s(n.nvmlDeviceGetInforomImageVersion(h)),
    "inforom_valid": _validate_inforom,
    "persistence_mode": lambda n, h: int(n.nvmlDeviceGetPersistenceMode(h)),
    "temperature_c": lambda n, h: int(n.nvmlDeviceGetTemperature(h, 0)),
    "temperature_threshold_c": lambda n, h, kind: int(
        n.nvmlDeviceGetTemperatureThreshold(h, THRESHOLDS[kind])
    ),
    # Degrees C below T.Limit, the point where the driver starts to slow the GPU down (positive:
    # below it). Where absolute thresholds are NotSupported (H100 on driver 580) this is the one
    # limit the driver reports.
    "margin_temperature_c": lambda n, h: int(n.nvmlDeviceGetMarginTemperature(h)),
    "memory_temperature_c": lambda n, h: int(_field(n, h, "NVML_FI_DEV_MEMORY_TEMP")),
    "power_usage_mw": lambda n, h: int(n.nvmlDeviceGetPowerUsage(h)),
    "power_limit_mw": lambda n, h: int(n.nvmlDeviceGetEnforcedPowerLimit(h)),
    "clock_mhz": lambda n, h, domain: int(
        n.nvmlDeviceGetClockInfo(h, {"graphics": 0, "sm": 1, "memory": 2}[domain])
    ),
    "max_clock_mhz": lambda n, h, domain: int(
        n.nvmlDeviceGetMaxClockInfo(h, {"graphics": 0, "sm": 1, "memory": 2}[domain])
    ),
    "clock_event_reasons": _clock_reasons,
    "violation_ns": lambda n, h, policy: _violation(n, h, PERF_POLICIES[policy]),
    "utilization": _utilization,
    "memory": _memory,
    "ecc_mode": lambda n, h: _pair(n.nvmlDeviceGetEccMode(h)),
    # error type 0 corrected, 1 uncorrected; counter type 0 volatile, 1 aggregate
    "ecc_errors": lambda n, h, kind, counter: int(
        n.nvmlDeviceGetTotalEccErrors(
            h, {"corrected": 0, "uncorrected": 1}[kind], {"volatile": 0, "aggregate": 1}[counter]
        )
    ),
    "retired_pages": lambda n, h, cause: _retired_pages(n, h, {"sbe": 0, "dbe": 1}[cause]),
    "retired_pages_pending": lambda n, h: bool(n.nvmlDeviceGetRetiredPagesPendingStatus(h)),
    "remapped_rows": _remapped_rows,
    "remapper_histogram": _remapper_histogram,
    "sram_ecc_status": _sram_status,
    "repair_status": _repair_status,
    "pcie_link_gen": lambda n, h: int(n.nvmlDeviceGetCurrPcieLinkGeneration(h)),
    "pcie_link_width": lambda n, h: int(n.nvmlDeviceGetCurrPcieLinkWidth(h)),
    "pcie_max_link_gen": lambda n, h: int(n.nvmlDeviceGetMaxPcieLinkGeneration(h)),
    "pcie_max_link_width": lambda n, h: int(n.nvmlDeviceGetMaxPcieLinkWidth(h)),
    "pcie_gpu_max_link_gen": lambda n, h: int(n.nvmlDeviceGetGpuMaxPcieLinkGeneration(h)),
    "pcie_replay_counter": lambda n, h: int(n.nvmlDeviceGetPcieReplayCounter(h)),
    "nvlink_state": _nvlink_state,
    "nvlink_errors": _nvlink_errors,
    "fabric": _fabric,
    "mig_mode": lambda n, h: _pair(n.nvmlDeviceGetMigMode(h)),
    "mig_devices": _mig_devices,
    "recovery_action": lambda n, h: int(_field(n, h, "NVML_FI_DEV_GET_GPU_RECOVERY_ACTION")),
}

# Which argument sets the recorder captures for readings that take arguments.
DEVICE_ARGS: dict[str, list[tuple[Any, ...]]] = {
    "temperature_threshold_c": [(k,) for k in THRESHOLDS],
    "clock_mhz": [("graphics",), ("sm",), ("memory",)],
    "max_clock_mhz": [("graphics",), ("sm",), ("memory",)],
    "violation_ns": [(p,) for p in PERF_POLICIES],
    "ecc_errors": [(k, c) for k in ("corrected", "uncorrected") for c in ("volatile", "aggregate")],
    "retired_pages": [("sbe",), ("dbe",)],
    "nvlink_state": [(i,) for i in range(NVLINK_MAX_LINKS)],
    "nvlink_errors": [(i,) for i in range(NVLINK_MAX_LINKS)],
}

SYSTEM: dict[str, Callable[[Any], Any]] = {
    "driver_version": lambda n: _s(n.nvmlSystemGetDriverVersion()),
    "nvml_version": lambda n: _s(n.nvmlSystemGetNVMLVersion()),
    "cuda_driver_version": lambda n: int(n.nvmlSystemGetCudaDriverVersion_v2()),
}


def key(name: str, args: tuple[Any, ...]) -> str:
    """The recording key of a reading: ``name`` or ``name(arg,arg)``."""
    if not args:
        return name
    return f"{name}({','.join(str(a) for a in args)})"
