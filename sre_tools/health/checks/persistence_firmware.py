"""Persistence mode and firmware: persistence, one firmware across the node, InfoROM validity.

- ``persistence``: without persistence mode the driver tears GPU state down whenever no client
  holds it, which costs seconds per job start and loses state between health runs.
- ``versions.consistency``: GPUs of one node should run one VBIOS and one InfoROM image (mixed
  firmware after a partial update behaves differently under the same driver). One node finding.
- ``inforom.valid``: ``nvmlDeviceValidateInforom`` checksums the InfoROM, which is slow, so it runs
  only on cycles the runner marks ``expensive`` (every ``inforom.validate_interval_seconds``),
  and on the first cycle that sees a GPU without a stored result. Other cycles repeat the last
  result from the state file (marked ``cached``), whatever it was: valid, corrupted, a failed
  validation (UNKNOWN with NVML's error) or NotSupported, until the next validation.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.gpu.errors import NotRecorded, NotSupported, ReadError
from sre_tools.health.model import Action, Finding, GpuRef, Severity
from sre_tools.health.registry import Context, check, gpu_check

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

INFOROM_META = "inforom_results"


@gpu_check("persistence")
def persistence(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    mode = bool(ctx.read(gpu, "persistence_mode"))
    wanted = bool(ctx.policy.get("persistence_mode"))
    ev = {"persistence_mode": mode, "policy": wanted}
    if wanted and not mode:
        yield Finding(
            "persistence",
            Severity.WARN,
            "persistence mode is off (enable nvidia-persistenced)",
            Action.NONE,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "persistence",
            Severity.OK,
            f"persistence mode {'on' if mode else 'off'}",
            gpu=gpu,
            evidence=ev,
        )


@check("versions.consistency")
def versions_consistency(ctx: Context) -> Iterator[Finding]:
    found: dict[str, dict[str, list[int]]] = {"vbios_version": {}, "inforom_image_version": {}}
    for gpu in ctx.gpus:
        if gpu.index in ctx.lost:
            continue
        for name, seen in found.items():
            try:
                value = str(ctx.read(gpu, name))
            except (NotSupported, ReadError):
                continue
            seen.setdefault(value, []).append(gpu.index)
    try:
        driver = str(ctx.backend.system("driver_version"))
    except (NotSupported, ReadError):
        driver = None
    ev: dict[str, object] = {"driver_version": driver}
    ev.update({name: seen for name, seen in found.items()})
    if not any(found.values()):
        yield Finding(
            "versions.consistency", Severity.SKIPPED, "no firmware versions readable", evidence=ev
        )
        return
    mixed = [name for name, seen in found.items() if len(seen) > 1]
    if mixed:
        what = "; ".join(
            f"{name}: " + ", ".join(f"{v} on GPU {','.join(map(str, g))}" for v, g in seen.items())
            for name, seen in found.items()
            if name in mixed
        )
        yield Finding(
            "versions.consistency",
            Severity.WARN,
            f"mixed firmware across the node's GPUs ({what})",
            Action.NONE,
            evidence=ev,
        )
    else:
        yield Finding(
            "versions.consistency",
            Severity.OK,
            "one VBIOS and InfoROM image across the node's GPUs",
            evidence=ev,
        )


def _inforom_finding(gpu: GpuRef, valid: bool, ev: dict[str, object]) -> Finding:
    if valid:
        return Finding("inforom.valid", Severity.OK, "InfoROM is valid", gpu=gpu, evidence=ev)
    return Finding(
        "inforom.valid",
        Severity.CRIT,
        "InfoROM is corrupted: contact support (reflash or RMA)",
        Action.CONTACT_SUPPORT,
        gpu,
        ev,
    )


def _cached_finding(gpu: GpuRef, last: Any) -> Finding | None:
    """The finding a stored result stands for; None when nothing usable is stored."""
    if isinstance(last, list) and len(last) == 2:  # written before failures were kept
        last = {"valid": bool(last[0]), "at": last[1]}
    if not isinstance(last, dict) or "at" not in last:
        return None
    ev: dict[str, object] = {"validated_at": last["at"], "cached": True}
    if last.get("error"):
        ev["nvml_error"] = last["error"]
    if isinstance(last.get("valid"), bool):
        return _inforom_finding(gpu, last["valid"], ev)
    if last.get("not_supported"):
        return Finding(
            "inforom.valid",
            Severity.SKIPPED,
            f"not applicable here ({last['not_supported']})",
            gpu=gpu,
            evidence=ev,
        )
    return Finding(
        "inforom.valid",
        Severity.UNKNOWN,
        f"last InfoROM validation failed (NVML: {last.get('error')}); repeated until the next",
        gpu=gpu,
        evidence=ev,
    )


@gpu_check("inforom.valid")
def inforom_valid(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    results = ctx.state.meta.setdefault(INFOROM_META, {})
    if not isinstance(results, dict):
        results = ctx.state.meta[INFOROM_META] = {}
    key = gpu.uuid or f"index{gpu.index}"
    if not ctx.expensive:
        cached = _cached_finding(gpu, results.get(key))
        if cached is not None:
            yield cached
            return
        # No stored result for this GPU (new, or a state file from before): validate now.
    ev: dict[str, object] = {"validated_at": ctx.now, "cached": False}
    try:
        valid = bool(ctx.read(gpu, "inforom_valid"))
    except NotRecorded:
        raise
    except NotSupported as exc:
        results[key] = {"valid": None, "at": ctx.now, "not_supported": str(exc)}
        raise
    except ReadError as exc:
        if exc.gpu_lost or exc.reset_required:
            raise
        if exc.code != "CORRUPTED_INFOROM":
            results[key] = {"valid": None, "at": ctx.now, "error": exc.code}
            yield Finding(
                "inforom.valid",
                Severity.UNKNOWN,
                f"InfoROM validation failed (NVML: {exc.code})",
                gpu=gpu,
                evidence={**ev, "nvml_error": exc.code},
            )
            return
        valid = False
        ev["nvml_error"] = exc.code
    results[key] = {"valid": valid, "at": ctx.now}
    yield _inforom_finding(gpu, valid, ev)
