"""Metric and label names of the GPU exporter: the one place they are spelled.

Prometheus conventions: base units in the name (``_celsius``, ``_watts``, ``_hertz``, ``_bytes``,
``_seconds``, ``_ratio`` for 0..1), counters end in ``_total``, and every per-GPU series carries
``uuid`` (stable across reboots and slot moves) plus ``gpu`` (NVML index, what ``nvidia-smi``
shows) and ``pci_bus_id`` (what the kernel log and the chassis map use). Node-level series carry
no GPU labels; ``instance`` and ``job`` come from the scrape.

The alert rules (``sre_tools/data/alerts/gpu-health.rules.yml``), the exporter and
``docs/exporter.md`` all use these names; ``tests/exporter`` checks that they agree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# --- labels -------------------------------------------------------------------------------------

LABEL_GPU = "gpu"  # NVML index, as a string ("0".."7")
LABEL_UUID = "uuid"  # GPU-xxxxxxxx-...
LABEL_PCI_BUS_ID = "pci_bus_id"  # 00000000:18:00.0
GPU_LABELS: tuple[str, ...] = (LABEL_GPU, LABEL_UUID, LABEL_PCI_BUS_ID)

LABEL_NAME = "name"
LABEL_SERIAL = "serial"
LABEL_VBIOS_VERSION = "vbios_version"
LABEL_DRIVER_VERSION = "driver_version"
LABEL_CLOCK = "clock"  # sm | memory | graphics
LABEL_THRESHOLD = "threshold"  # slowdown | shutdown | gpu_max | mem_max
LABEL_ERROR_TYPE = "error_type"  # corrected | uncorrected
LABEL_COUNTER = "counter"  # volatile (since driver load) | aggregate (lifetime)
LABEL_CAUSE = "cause"  # correctable | uncorrectable
LABEL_REASON = "reason"
LABEL_ERROR = "error"  # NVLink error counter: replay | recovery | crc_flit | crc_data | ecc_data
LABEL_XID = "xid"
LABEL_CHECK = "check"
LABEL_ACTION = "action"
LABEL_VERSION = "version"
LABEL_MIG_UUID = "mig_uuid"  # MIG-xxxxxxxx-...: the instance's own UUID (CUDA_VISIBLE_DEVICES)
LABEL_GPU_INSTANCE = "gpu_instance_id"
LABEL_COMPUTE_INSTANCE = "compute_instance_id"
LABEL_MIG_NAME = "mig_name"  # NVML's name of the instance, with its profile (... MIG 1g.10gb)

# The Prometheus job name the alert rules expect for this exporter (scrape config `job_name`).
SCRAPE_JOB = "sre-gpu-exporter"
DEFAULT_PORT = 9835
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"


class Kind(enum.StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the exposed name (counters with their _total)
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


def _gpu(name: str, kind: Kind, help_: str, *extra: str) -> MetricSpec:
    return MetricSpec(name, kind, help_, (*GPU_LABELS, *extra))


_G, _C = Kind.GAUGE, Kind.COUNTER

# --- identity and presence ----------------------------------------------------------------------
GPU_INFO = "gpu_info"
GPU_UP = "gpu_up"
GPU_COUNT = "gpu_count"
GPU_EXPECTED_COUNT = "gpu_expected_count"
# --- telemetry ----------------------------------------------------------------------------------
GPU_TEMPERATURE = "gpu_temperature_celsius"
GPU_MEMORY_TEMPERATURE = "gpu_memory_temperature_celsius"
GPU_TEMPERATURE_THRESHOLD = "gpu_temperature_threshold_celsius"
GPU_POWER_USAGE = "gpu_power_usage_watts"
GPU_POWER_LIMIT = "gpu_power_limit_watts"
GPU_CLOCK = "gpu_clock_hertz"
GPU_CLOCK_THROTTLE = "gpu_clock_throttle_seconds_total"
GPU_UTILIZATION = "gpu_utilization_ratio"
GPU_MEMORY_UTILIZATION = "gpu_memory_utilization_ratio"
GPU_MEMORY_USED = "gpu_memory_used_bytes"
GPU_MEMORY_TOTAL = "gpu_memory_total_bytes"
GPU_MEMORY_RESERVED = "gpu_memory_reserved_bytes"
GPU_ECC_ERRORS = "gpu_ecc_errors_total"
GPU_REMAPPED_ROWS = "gpu_remapped_rows_total"
GPU_ROW_REMAP_PENDING = "gpu_row_remap_pending"
GPU_ROW_REMAP_FAILURE = "gpu_row_remap_failure"
GPU_PCIE_REPLAYS = "gpu_pcie_replays_total"
GPU_PCIE_LINK_WIDTH = "gpu_pcie_link_width"
GPU_PCIE_LINK_MAX_WIDTH = "gpu_pcie_link_max_width"
GPU_PCIE_LINK_GENERATION = "gpu_pcie_link_generation"
GPU_PCIE_LINK_MAX_GENERATION = "gpu_pcie_link_max_generation"
GPU_NVLINK_LINKS_ACTIVE = "gpu_nvlink_links_active"
GPU_NVLINK_ERRORS = "gpu_nvlink_errors_total"
GPU_FABRIC_STATE = "gpu_fabric_state"
GPU_FABRIC_STATUS = "gpu_fabric_status"
# --- MIG ----------------------------------------------------------------------------------------
GPU_MIG_MODE = "gpu_mig_mode"
GPU_MIG_INSTANCE_INFO = "gpu_mig_instance_info"
# --- XID ----------------------------------------------------------------------------------------
GPU_XID_EVENTS = "gpu_xid_events_total"
GPU_XID_LAST_EVENT = "gpu_xid_last_event_timestamp_seconds"
# --- health -------------------------------------------------------------------------------------
GPU_HEALTH_CHECK_STATUS = "gpu_health_check_status"
GPU_HEALTH_STATUS = "gpu_health_status"
GPU_HEALTH_REQUIRED_ACTION = "gpu_health_required_action"
# --- the exporter itself ------------------------------------------------------------------------
EXPORTER_COLLECTION_DURATION = "gpu_exporter_collection_duration_seconds"
EXPORTER_COLLECTION_ERRORS = "gpu_exporter_collection_errors_total"
EXPORTER_LAST_COLLECTION = "gpu_exporter_last_collection_timestamp_seconds"
EXPORTER_COLLECTIONS = "gpu_exporter_collections_total"
EXPORTER_BUILD_INFO = "gpu_exporter_build_info"

# Health status values (gpu_health_check_status, gpu_health_status): ordered so that max() over
# checks or GPUs is the worst one. SKIPPED findings ("not applicable here") are not exported.
STATUS_OK = 0
STATUS_UNKNOWN = 1
STATUS_WARN = 2
STATUS_CRIT = 3
STATUS_VALUES: dict[str, int] = {
    "ok": STATUS_OK,
    "unknown": STATUS_UNKNOWN,
    "warn": STATUS_WARN,
    "crit": STATUS_CRIT,
}

# NVML fabric states (nvmlGpuFabricState_t), the value of gpu_fabric_state.
FABRIC_STATES: dict[int, str] = {
    0: "not_supported",
    1: "not_started",
    2: "in_progress",
    3: "completed",
}


# gpu_exporter_collection_errors_total{reason}: a fixed set, so the label stays bounded.
class ErrorReason(enum.StrEnum):
    NVML_INIT = "nvml_init"  # NVML did not start (driver not loaded, library missing)
    DEVICE_LOST = "device_lost"  # a GPU failed with GPU_IS_LOST/RESET_REQUIRED: its samples dropped
    READ_ERROR = "read_error"  # one reading failed with another NVML error: that sample dropped
    TIMEOUT = "timeout"  # a collection phase overran collection.timeout_seconds (hung NVML?)
    BUSY = "busy"  # the previous collection is still hung in NVML: this cycle was skipped
    HEALTH = "health"  # the health engine raised (a bug): no findings this cycle
    XID = "xid"  # the XID event source failed: counters kept, no new events this cycle


METRICS: tuple[MetricSpec, ...] = (
    _gpu(
        GPU_INFO,
        _G,
        "GPU identity; always 1.",
        LABEL_NAME,
        LABEL_SERIAL,
        LABEL_VBIOS_VERSION,
        LABEL_DRIVER_VERSION,
    ),
    _gpu(GPU_UP, _G, "1 if the GPU answered NVML in the last collection, 0 if it is lost."),
    MetricSpec(GPU_COUNT, _G, "GPUs NVML enumerates (absent while NVML cannot start)."),
    MetricSpec(GPU_EXPECTED_COUNT, _G, "GPUs the health policy expects (expected_gpus)."),
    _gpu(GPU_TEMPERATURE, _G, "GPU die temperature."),
    _gpu(GPU_MEMORY_TEMPERATURE, _G, "HBM temperature."),
    _gpu(GPU_TEMPERATURE_THRESHOLD, _G, "NVML temperature thresholds.", LABEL_THRESHOLD),
    _gpu(GPU_POWER_USAGE, _G, "Power draw."),
    _gpu(GPU_POWER_LIMIT, _G, "Enforced power limit."),
    _gpu(GPU_CLOCK, _G, "Current clock.", LABEL_CLOCK),
    _gpu(
        GPU_CLOCK_THROTTLE,
        _C,
        "Time clocks were held below target, by perf policy (NVML violation time).",
        LABEL_REASON,
    ),
    _gpu(GPU_UTILIZATION, _G, "Fraction of the last sample period a kernel was running."),
    _gpu(GPU_MEMORY_UTILIZATION, _G, "Fraction of the last sample period memory was read/written."),
    _gpu(GPU_MEMORY_USED, _G, "Frame buffer memory in use, as nvidia-smi shows it (NVML v2)."),
    _gpu(GPU_MEMORY_TOTAL, _G, "Frame buffer memory installed."),
    _gpu(GPU_MEMORY_RESERVED, _G, "Frame buffer memory the driver reserves (not in used)."),
    _gpu(
        GPU_ECC_ERRORS,
        _C,
        "ECC errors; counter=volatile since the driver loaded, aggregate over the GPU's life.",
        LABEL_ERROR_TYPE,
        LABEL_COUNTER,
    ),
    _gpu(GPU_REMAPPED_ROWS, _C, "HBM rows remapped, by the error that caused it.", LABEL_CAUSE),
    _gpu(GPU_ROW_REMAP_PENDING, _G, "1 if a row remap waits for a GPU reset."),
    _gpu(GPU_ROW_REMAP_FAILURE, _G, "1 if a row remap failed (no spare rows left)."),
    _gpu(GPU_PCIE_REPLAYS, _C, "PCIe replays (link-level retransmissions)."),
    _gpu(GPU_PCIE_LINK_WIDTH, _G, "Current PCIe link width (lanes)."),
    _gpu(GPU_PCIE_LINK_MAX_WIDTH, _G, "Maximum PCIe link width of the device and slot."),
    _gpu(GPU_PCIE_LINK_GENERATION, _G, "Current PCIe generation (drops at idle to save power)."),
    _gpu(GPU_PCIE_LINK_MAX_GENERATION, _G, "Maximum PCIe generation of the device and slot."),
    _gpu(GPU_NVLINK_LINKS_ACTIVE, _G, "NVLinks in the active state."),
    _gpu(GPU_NVLINK_ERRORS, _C, "NVLink errors summed over the GPU's links.", LABEL_ERROR),
    _gpu(
        GPU_FABRIC_STATE,
        _G,
        "NVSwitch fabric registration: 0 not supported, 1 not started, 2 in progress, 3 completed.",
    ),
    _gpu(GPU_FABRIC_STATUS, _G, "NVML return code of the fabric registration (0 = success)."),
    _gpu(
        GPU_MIG_MODE,
        _G,
        "1 if MIG mode is enabled (current mode; a pending change shows in checks).",
    ),
    _gpu(
        GPU_MIG_INSTANCE_INFO,
        _G,
        "One series per MIG instance of the GPU; always 1.",
        LABEL_MIG_UUID,
        LABEL_GPU_INSTANCE,
        LABEL_COMPUTE_INSTANCE,
        LABEL_MIG_NAME,
    ),
    _gpu(GPU_XID_EVENTS, _C, "XID events seen by this exporter.", LABEL_XID),
    _gpu(GPU_XID_LAST_EVENT, _G, "Unix time of the latest XID event of this kind.", LABEL_XID),
    _gpu(
        GPU_HEALTH_CHECK_STATUS,
        _G,
        "Worst finding of a health check: 0 ok, 1 unknown, 2 warn, 3 crit (skipped: absent); "
        "action is what the check asks for.",
        LABEL_CHECK,
        LABEL_ACTION,
    ),
    MetricSpec(
        GPU_HEALTH_STATUS, _G, "Node GPU health: 0 ok, 1 unknown, 2 warn, 3 crit (worst finding)."
    ),
    MetricSpec(
        GPU_HEALTH_REQUIRED_ACTION,
        _G,
        "1 for the action the node needs now (most disruptive of its warn/crit findings), "
        "0 for every other action.",
        (LABEL_ACTION,),
    ),
    MetricSpec(
        EXPORTER_COLLECTION_DURATION, _G, "Wall time of the last collection (health + telemetry)."
    ),
    MetricSpec(
        EXPORTER_COLLECTION_ERRORS,
        _C,
        "Collection errors by reason; a failing device drops its samples and counts here.",
        (LABEL_REASON,),
    ),
    MetricSpec(EXPORTER_LAST_COLLECTION, _G, "Unix time the last collection finished."),
    MetricSpec(EXPORTER_COLLECTIONS, _C, "Collections finished (including failed ones)."),
    MetricSpec(EXPORTER_BUILD_INFO, _G, "Exporter version; always 1.", (LABEL_VERSION,)),
)

SPECS: dict[str, MetricSpec] = {m.name: m for m in METRICS}
