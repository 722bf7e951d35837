"""Turn an ``nvidia-smi -q -x`` capture into a recording the health engine plays back.

``nvidia-smi -q -x`` is what a machine without ``sre`` installed can give: this converter makes
it a recording (the format of :func:`sre_tools.gpu.backend.capture`) in which every reading says
where its value came from:

- ``"source": "real"``: read from the XML as printed (units converted only);
- ``"source": "derived"`` with ``"from"``: computed from fields of the XML (a sum, a bit mask
  built from named flags, MiB rounded to bytes);
- ``"source": "not_supported"`` with ``"from"``: the XML prints ``N/A`` (or omits the section) and
  NVML answers NotSupported there: played back as NotSupported;
- ``{"not_recorded": "why"}``: ``nvidia-smi -q`` does not show it; played back as not recorded,
  so the check using it is SKIPPED, never judged on a made-up value.

Loaders take text: :func:`convert` reads the XML as a string; the command line
(``python -m sre_tools.gpu.smi_xml CAPTURE.xml [KERNEL_LOG]``) reads files and prints JSON.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from sre_tools.exceptions import ValidationError
from sre_tools.gpu import readings

RECORDING_VERSION = 1
# nvmlDeviceArchitecture_t by nvidia-smi's product_architecture.
ARCHITECTURES = {
    "Kepler": 2,
    "Maxwell": 3,
    "Pascal": 4,
    "Volta": 5,
    "Turing": 6,
    "Ampere": 7,
    "Ada Lovelace": 8,
    "Hopper": 9,
    "Blackwell": 10,
}
# nvmlClocksEventReasons bits by nvidia-smi's clocks_event_reasons element.
CLOCK_EVENT_BITS = {
    "clocks_event_reason_gpu_idle": 0x1,
    "clocks_event_reason_applications_clocks_setting": 0x2,
    "clocks_event_reason_sw_power_cap": 0x4,
    "clocks_event_reason_hw_slowdown": 0x8,
    "clocks_event_reason_sync_boost": 0x10,
    "clocks_event_reason_sw_thermal_slowdown": 0x20,
    "clocks_event_reason_hw_thermal_slowdown": 0x40,
    "clocks_event_reason_hw_power_brake_slowdown": 0x80,
    "clocks_event_reason_display_clocks_setting": 0x100,
}
# nvidia-smi's violation counters (microseconds) for NVML's perf policies they stand for.
VIOLATION_COUNTERS = {
    "power": ("clocks_event_reasons_counters_sw_power_cap",),
    "thermal": (
        "clocks_event_reasons_counters_sw_therm_slowdown",
        "clocks_event_reasons_counters_hw_therm_slowdown",
    ),
    "sync_boost": ("clocks_event_reasons_counters_sync_boost",),
}
# Absolute thresholds as older drivers print them.
THRESHOLD_TAGS = {
    "shutdown": "gpu_temp_max_threshold",
    "slowdown": "gpu_temp_slow_threshold",
    "mem_max": "mem_max_temp_threshold",
    "gpu_max": "gpu_max_temp_threshold",
}
RECOVERY_ACTIONS = {"None": 0, "Reset": 1, "Reboot": 2, "Drain P2P": 3, "Drain and Reset": 4}
MIB = 1024 * 1024
NA = {"N/A", "", "Not Supported", "[N/A]", "Unknown Error"}


def real(value: Any) -> dict[str, Any]:
    return {"value": value, "source": "real"}


def derived(value: Any, source: str) -> dict[str, Any]:
    return {"value": value, "source": "derived", "from": source}


def not_supported(source: str) -> dict[str, Any]:
    return {"error": "NOT_SUPPORTED", "source": "not_supported", "from": source}


def not_recorded(why: str) -> dict[str, Any]:
    return {"not_recorded": why}


class _Gpu:
    """Text of the elements below one ``<gpu>``, by slash-separated path."""

    def __init__(self, elem: ET.Element, where: str):
        self.elem = elem
        self.where = where

    def text(self, path: str) -> str | None:
        node = self.elem.find(path)
        if node is None or node.text is None:
            return None
        value = node.text.strip()
        return None if value in NA else value

    def number(self, path: str) -> float | None:
        """The leading number of ``"124.58 W"``, ``"16x"``, ``"2560 bank(s)"``; hex as ``0x..``."""
        value = self.text(path)
        if value is None:
            return None
        match = re.match(r"-?\d+(\.\d+)?", value)
        if match is None:
            raise ValidationError(f"expected a number, got {value!r}", field=f"{self.where}/{path}")
        return float(match.group(0))

    def integer(self, path: str) -> int | None:
        value = self.number(path)
        return None if value is None else int(value)

    def hex(self, path: str) -> int | None:
        value = self.text(path)
        if value is None:
            return None
        try:
            return int(value, 16)
        except ValueError:
            raise ValidationError(
                f"expected hex, got {value!r}", field=f"{self.where}/{path}"
            ) from None

    def flag(self, path: str, yes: str = "Yes") -> bool | None:
        value = self.text(path)
        return None if value is None else value == yes


def _entry(value: Any, path: str) -> dict[str, Any]:
    return real(value) if value is not None else not_supported(f"{path}: N/A")


def _temperatures(g: _Gpu, out: dict[str, Any]) -> None:
    temp = g.integer("temperature/gpu_temp")
    out["temperature_c"] = _entry(temp, "temperature/gpu_temp")
    tlimit = g.integer("temperature/gpu_temp_tlimit")
    for kind in readings.THRESHOLDS:
        tag = THRESHOLD_TAGS[kind]
        value = g.integer(f"temperature/{tag}")
        if value is not None:
            out[f"temperature_threshold_c({kind})"] = real(value)
        elif tlimit is not None:
            out[f"temperature_threshold_c({kind})"] = not_supported(
                f"temperature/{tag} absent: this driver prints only offsets to T.Limit"
            )
        else:
            out[f"temperature_threshold_c({kind})"] = not_recorded(f"temperature/{tag} absent")
    out["margin_temperature_c"] = (
        real(tlimit)
        if tlimit is not None
        else not_recorded("temperature/gpu_temp_tlimit absent (driver without T.Limit)")
    )
    mem = g.integer("temperature/memory_temp")
    out["memory_temperature_c"] = _entry(mem, "temperature/memory_temp")


def _clocks(g: _Gpu, out: dict[str, Any]) -> None:
    for domain, tag in (
        ("graphics", "graphics_clock"),
        ("sm", "sm_clock"),
        ("memory", "mem_clock"),
    ):
        out[f"clock_mhz({domain})"] = _entry(g.integer(f"clocks/{tag}"), f"clocks/{tag}")
        out[f"max_clock_mhz({domain})"] = _entry(
            g.integer(f"max_clocks/{tag}"), f"max_clocks/{tag}"
        )
    mask = 0
    seen = False
    for tag, bit in CLOCK_EVENT_BITS.items():
        value = g.text(f"clocks_event_reasons/{tag}")
        if value is None:
            continue
        seen = True
        if value == "Active":
            mask |= bit
    out["clock_event_reasons"] = (
        derived(mask, "clocks_event_reasons/* (Active flags as nvmlClocksEventReasons bits)")
        if seen
        else not_recorded("clocks_event_reasons absent")
    )
    for policy in readings.PERF_POLICIES:
        tags = VIOLATION_COUNTERS.get(policy)
        if tags is None:
            out[f"violation_ns({policy})"] = not_recorded(
                f"nvidia-smi -q has no counter for the {policy} perf policy"
            )
            continue
        values = [g.number(f"clocks_event_reasons_counters/{t}") for t in tags]
        if any(v is None for v in values):
            out[f"violation_ns({policy})"] = not_recorded(f"{'/'.join(tags)} absent")
            continue
        total_us = sum(v for v in values if v is not None)
        out[f"violation_ns({policy})"] = derived(
            int(total_us * 1000),
            " + ".join(f"clocks_event_reasons_counters/{t}" for t in tags) + " (us -> ns)",
        )


def _memory(g: _Gpu, out: dict[str, Any]) -> None:
    parts = {k: g.integer(f"fb_memory_usage/{k}") for k in ("total", "reserved", "used", "free")}
    if parts["total"] is None or parts["used"] is None or parts["free"] is None:
        out["memory"] = not_recorded("fb_memory_usage incomplete")
        return
    value = {f"{k}_bytes": v * MIB for k, v in parts.items() if v is not None}
    out["memory"] = derived(value, "fb_memory_usage (MiB x 1048576; nvmlDeviceGetMemoryInfo_v2)")


def _ecc(g: _Gpu, out: dict[str, Any]) -> None:
    current = g.text("ecc_mode/current_ecc")
    pending = g.text("ecc_mode/pending_ecc")
    out["ecc_mode"] = (
        real([int(current == "Enabled"), int(pending == "Enabled")])
        if current is not None and pending is not None
        else not_supported("ecc_mode: N/A")
    )
    kinds = {
        "corrected": ("sram_correctable", "dram_correctable"),
        "uncorrected": (
            "sram_uncorrectable_parity",
            "sram_uncorrectable_secded",
            "dram_uncorrectable",
        ),
    }
    for kind, tags in kinds.items():
        for counter in ("volatile", "aggregate"):
            values = [g.integer(f"ecc_errors/{counter}/{t}") for t in tags]
            key = f"ecc_errors({kind},{counter})"
            if any(v is None for v in values):
                out[key] = not_supported(f"ecc_errors/{counter}: N/A")
            else:
                out[key] = derived(
                    sum(v for v in values if v is not None),
                    " + ".join(f"ecc_errors/{counter}/{t}" for t in tags),
                )
    sram = {
        "threshold_exceeded": g.flag("ecc_errors/aggregate/sram_threshold_exceeded"),
        "aggregate_uncorrectable_parity": g.integer(
            "ecc_errors/aggregate/sram_uncorrectable_parity"
        ),
        "aggregate_uncorrectable_sec_ded": g.integer(
            "ecc_errors/aggregate/sram_uncorrectable_secded"
        ),
        "aggregate_correctable": g.integer("ecc_errors/aggregate/sram_correctable"),
        "volatile_uncorrectable_parity": g.integer("ecc_errors/volatile/sram_uncorrectable_parity"),
        "volatile_uncorrectable_sec_ded": g.integer(
            "ecc_errors/volatile/sram_uncorrectable_secded"
        ),
        "volatile_correctable": g.integer("ecc_errors/volatile/sram_correctable"),
    }
    out["sram_ecc_status"] = (
        not_supported("ecc_errors/*/sram_*: N/A")
        if any(v is None for v in sram.values())
        else derived(sram, "ecc_errors/{volatile,aggregate}/sram_*")
    )
    repair = {
        "channel_repair_pending": g.flag("ecc_errors/channel_repair_pending"),
        "tpc_repair_pending": g.flag("ecc_errors/tpc_repair_pending"),
    }
    out["repair_status"] = (
        not_supported("ecc_errors/*_repair_pending: N/A")
        if any(v is None for v in repair.values())
        else real(repair)
    )
    sbe = g.integer("retired_pages/multiple_single_bit_retirement/retired_count")
    dbe = g.integer("retired_pages/double_bit_retirement/retired_count")
    pending_retire = g.flag("retired_pages/pending_retirement")
    out["retired_pages(sbe)"] = _entry(sbe, "retired_pages/multiple_single_bit_retirement")
    out["retired_pages(dbe)"] = _entry(dbe, "retired_pages/double_bit_retirement")
    out["retired_pages_pending"] = _entry(pending_retire, "retired_pages/pending_retirement")
    rows = {
        "correctable": g.integer("remapped_rows/remapped_row_corr"),
        "uncorrectable": g.integer("remapped_rows/remapped_row_unc"),
        "pending": g.flag("remapped_rows/remapped_row_pending"),
        "failure": g.flag("remapped_rows/remapped_row_failure"),
    }
    out["remapped_rows"] = (
        not_supported("remapped_rows: N/A") if any(v is None for v in rows.values()) else real(rows)
    )
    hist = {
        k: g.integer(f"remapped_rows/row_remapper_histogram/row_remapper_histogram_{k}")
        for k in ("max", "high", "partial", "low", "none")
    }
    out["remapper_histogram"] = (
        not_supported("remapped_rows/row_remapper_histogram: N/A")
        if any(v is None for v in hist.values())
        else real(hist)
    )


def _pcie(g: _Gpu, out: dict[str, Any]) -> None:
    link = "pci/pci_gpu_link_info"
    pairs = {
        "pcie_link_gen": f"{link}/pcie_gen/current_link_gen",
        "pcie_link_width": f"{link}/link_widths/current_link_width",
        "pcie_max_link_gen": f"{link}/pcie_gen/max_link_gen",
        "pcie_max_link_width": f"{link}/link_widths/max_link_width",
        "pcie_gpu_max_link_gen": f"{link}/pcie_gen/max_device_link_gen",
        "pcie_replay_counter": "pci/replay_counter",
    }
    for name, path in pairs.items():
        out[name] = _entry(g.integer(path), path)


def _device(elem: ET.Element, index: int) -> dict[str, Any]:
    g = _Gpu(elem, f"gpu[{index}]")
    out: dict[str, Any] = {}
    out["name"] = _entry(g.text("product_name"), "product_name")
    out["uuid"] = _entry(g.text("uuid"), "uuid")
    out["serial"] = _entry(g.text("serial"), "serial")
    bus_id = g.text("pci/pci_bus_id") or elem.get("id")
    out["pci"] = real(
        {
            "bus_id": bus_id,
            "domain": g.hex("pci/pci_domain"),
            "bus": g.hex("pci/pci_bus"),
            "device": g.hex("pci/pci_device"),
            "pci_device_id": g.hex("pci/pci_device_id"),
            "pci_subsystem_id": g.hex("pci/pci_sub_system_id"),
        }
    )
    out["minor_number"] = _entry(g.integer("minor_number"), "minor_number")
    arch = g.text("product_architecture")
    out["architecture"] = (
        derived(ARCHITECTURES[arch], f"product_architecture {arch!r}")
        if arch in ARCHITECTURES
        else not_recorded(f"unknown product_architecture {arch!r}")
    )
    out["vbios_version"] = _entry(g.text("vbios_version"), "vbios_version")
    out["inforom_image_version"] = _entry(
        g.text("inforom_version/img_version"), "inforom_version/img_version"
    )
    out["inforom_valid"] = not_recorded("nvidia-smi -q does not validate the InfoROM")
    mode = g.text("persistence_mode")
    out["persistence_mode"] = _entry(
        None if mode is None else int(mode == "Enabled"), "persistence_mode"
    )
    _temperatures(g, out)
    power = g.number("gpu_power_readings/instant_power_draw")
    if power is None:
        power = g.number("gpu_power_readings/power_draw")
    out["power_usage_mw"] = _entry(
        None if power is None else round(power * 1000), "gpu_power_readings/instant_power_draw"
    )
    limit = g.number("gpu_power_readings/current_power_limit")
    out["power_limit_mw"] = _entry(
        None if limit is None else round(limit * 1000), "gpu_power_readings/current_power_limit"
    )
    _clocks(g, out)
    util = {
        "gpu_percent": g.integer("utilization/gpu_util"),
        "memory_percent": g.integer("utilization/memory_util"),
    }
    out["utilization"] = not_supported("utilization: N/A") if None in util.values() else real(util)
    _memory(g, out)
    _ecc(g, out)
    _pcie(g, out)
    for link in range(readings.NVLINK_MAX_LINKS):
        why = "no nvlink section in nvidia-smi -q -x; NVML NotSupported on this GPU"
        out[f"nvlink_state({link})"] = not_supported(why)
        out[f"nvlink_errors({link})"] = not_supported(why)
    state = g.text("fabric/state")
    out["fabric"] = (
        not_supported("fabric/state: N/A")
        if state is None
        else not_recorded(f"fabric/state {state!r}: nvidia-smi shows names, not NVML's codes")
    )
    current_mig = g.text("mig_mode/current_mig")
    pending_mig = g.text("mig_mode/pending_mig")
    out["mig_mode"] = (
        real([int(current_mig == "Enabled"), int(pending_mig == "Enabled")])
        if current_mig is not None and pending_mig is not None
        else not_supported("mig_mode: N/A")
    )
    mig_devices = g.text("mig_devices")
    out["mig_devices"] = (
        real([])
        if mig_devices == "None"
        else not_recorded("mig_devices listed: convert with sre gpu capture instead")
    )
    action = g.text("gpu_recovery_action")
    out["recovery_action"] = (
        derived(RECOVERY_ACTIONS[action], f"gpu_recovery_action {action!r}")
        if action in RECOVERY_ACTIONS
        else not_recorded(f"gpu_recovery_action {action!r}")
    )
    missing = set(readings.DEVICE) - {k.split("(")[0] for k in out}
    for name in sorted(missing):
        for args in readings.DEVICE_ARGS.get(name, [()]):
            out[readings.key(name, args)] = not_recorded("nvidia-smi -q does not show it")
    return out


def _captured_at(text: str | None) -> str:
    if not text:
        return ""
    try:
        return datetime.strptime(text, "%a %b %d %H:%M:%S %Y").isoformat()
    except ValueError:
        return ""


def convert(
    xml_text: str,
    *,
    host: str = "",
    source: str = "<nvidia-smi -q -x>",
    kernel_log: list[str] | None = None,
    note: str = "",
) -> dict[str, Any]:
    """The recording for the ``nvidia-smi -q -x`` output ``xml_text``."""
    try:
        # An operator's own capture. ElementTree never fetches external entities or DTDs, and
        # the expat it uses (>= 2.4) refuses exponential entity expansion.
        root = ET.fromstring(xml_text)  # noqa: S314
    except ET.ParseError as exc:
        raise ValidationError(f"invalid XML: {exc}", source=source) from None
    if root.tag != "nvidia_smi_log":
        raise ValidationError(f"expected <nvidia_smi_log>, got <{root.tag}>", source=source)
    try:
        devices = [
            {"index": i, "readings": _device(elem, i)} for i, elem in enumerate(root.findall("gpu"))
        ]
    except ValidationError as exc:
        raise exc.at(source) from None
    driver = (root.findtext("driver_version") or "").strip()
    cuda = (root.findtext("cuda_version") or "").strip()
    system: dict[str, Any] = {
        "driver_version": real(driver) if driver else not_recorded("driver_version absent"),
        "nvml_version": not_recorded("nvidia-smi -q does not print the NVML version"),
    }
    match = re.fullmatch(r"(\d+)\.(\d+)", cuda)
    system["cuda_driver_version"] = (
        derived(int(match.group(1)) * 1000 + int(match.group(2)) * 10, f"cuda_version {cuda!r}")
        if match
        else not_recorded("cuda_version absent")
    )
    out: dict[str, Any] = {
        "version": RECORDING_VERSION,
        "synthetic": False,
        "note": note or f"Converted from nvidia-smi -q -x ({source}) by sre_tools.gpu.smi_xml.",
        "host": host,
        "captured_at": _captured_at(root.findtext("timestamp")),
        "system": system,
        "devices": devices,
        "events": [],
    }
    if kernel_log is not None:
        out["kernel_log"] = list(kernel_log)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m sre_tools.gpu.smi_xml CAPTURE.xml [KERNEL_LOG]", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as fh:
        text = fh.read()
    lines = None
    if len(args) == 2:
        with open(args[1], encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    data = convert(text, source=args[0], kernel_log=lines)
    json.dump(data, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
