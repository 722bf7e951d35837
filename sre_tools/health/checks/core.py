"""NVML initialisation, GPU discovery and count (NVML and the PCI bus), lost GPUs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sre_tools.gpu.errors import InitFailure
from sre_tools.health.model import Action, Finding, Severity
from sre_tools.health.registry import Context, check

NVIDIA_VENDOR = "0x10de"
# PCI classes of GPUs: 0x0300 VGA, 0x0302 3D controller (NVSwitches are bridges, 0x0680).
GPU_CLASSES = ("0x0300", "0x0302")


@check("nvml.init", needs_nvml=False)
def nvml_init(ctx: Context) -> Iterator[Finding]:
    err = ctx.init_error
    if err is None:
        yield Finding("nvml.init", Severity.OK, "NVML initialised")
        return
    kind = err.kind
    if kind is InitFailure.DRIVER_NOT_LOADED:
        yield Finding(
            "nvml.init",
            Severity.CRIT,
            "NVIDIA driver is not loaded",
            Action.REBOOT,
            evidence={"error": str(err)},
        )
    elif kind is InitFailure.LIBRARY_NOT_FOUND:
        yield Finding(
            "nvml.init",
            Severity.CRIT,
            "NVML library (libnvidia-ml) not found",
            Action.CONTACT_SUPPORT,
            evidence={"error": str(err)},
        )
    elif kind is InitFailure.VERSION_MISMATCH:
        yield Finding(
            "nvml.init",
            Severity.CRIT,
            "driver/library version mismatch (user-space upgraded, kernel module not reloaded)",
            Action.REBOOT,
            evidence={"error": str(err)},
        )
    elif kind is InitFailure.NO_PERMISSION:
        yield Finding(
            "nvml.init",
            Severity.UNKNOWN,
            "no permission to open the NVIDIA devices",
            evidence={"error": str(err)},
        )
    else:
        yield Finding(
            "nvml.init", Severity.UNKNOWN, "NVML failed to initialise", evidence={"error": str(err)}
        )


@check("policy.profile", needs_nvml=False)
def policy_profile(ctx: Context) -> Iterator[Finding]:
    """Which profile judged this node, and why (named, or picked from the node)."""
    chosen = ctx.policy.data.get("profile_from")
    if chosen is None:
        chosen = "no NVML answer: generic" if ctx.policy.auto else "named (--profile or site file)"
    yield Finding(
        "policy.profile",
        Severity.OK,
        f"profile {ctx.policy.name} ({chosen})",
        evidence={"profile": ctx.policy.name, "chosen": chosen},
    )


def pci_gpus(sysfs: Path) -> list[str]:
    """Bus ids of NVIDIA GPUs on the PCI bus, from sysfs (sees GPUs NVML cannot)."""
    found = []
    root = sysfs / "bus" / "pci" / "devices"
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    for dev in entries:
        try:
            vendor = (dev / "vendor").read_text().strip().lower()
            klass = (dev / "class").read_text().strip().lower()
        except OSError:
            continue
        if vendor == NVIDIA_VENDOR and klass[:6] in GPU_CLASSES:
            found.append(dev.name)
    return found


def _norm_bus(bus_id: str) -> str:
    """NVML says 00000000:18:00.0, sysfs 0000:18:00.0: compare the last 12 characters."""
    return bus_id.lower()[-12:]


@check("gpu.count", needs_nvml=False)
def gpu_count(ctx: Context) -> Iterator[Finding]:
    expected = ctx.policy.get("expected_gpus")
    on_bus = pci_gpus(ctx.sysfs)
    if ctx.discovery_failed:
        return  # the runner reported why; "0 GPUs present" would be a guess
    seen = len(ctx.gpus) if ctx.init_error is None else None
    evidence = {"nvml": seen, "pci_bus": len(on_bus), "expected": expected}
    if seen is not None and on_bus:
        nvml_bus = {_norm_bus(g.pci_bus_id) for g in ctx.gpus}
        missing = [b for b in on_bus if _norm_bus(b) not in nvml_bus]
        if missing:
            evidence["missing_from_nvml"] = missing
            yield Finding(
                "gpu.count",
                Severity.CRIT,
                f"{len(missing)} GPU(s) on the PCI bus are invisible to NVML",
                Action.POWER_CYCLE,
                evidence=evidence,
            )
            return
    have = seen if seen is not None else len(on_bus)
    if expected is not None and have < expected:
        yield Finding(
            "gpu.count",
            Severity.CRIT,
            f"{have} of {expected} expected GPUs present",
            Action.POWER_CYCLE,
            evidence=evidence,
        )
    elif expected is not None and have > expected:
        yield Finding(
            "gpu.count",
            Severity.WARN,
            f"{have} GPUs present, policy expects {expected}",
            evidence=evidence,
        )
    elif seen is not None:
        yield Finding("gpu.count", Severity.OK, f"{have} GPU(s) present", evidence=evidence)
