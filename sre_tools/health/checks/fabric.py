"""NVSwitch fabric registration (``nvmlDeviceGetGpuFabricInfoV``).

On NVSwitch systems a GPU cannot run CUDA work until the fabric manager has registered it with
the fabric: state COMPLETED (3) with status SUCCESS (0). Anything else means the fabric manager
is not running, not done, or failed: restart it (``systemctl restart nvidia-fabricmanager``).
The health mask (2-bit fields: 1 TRUE, 2 FALSE, 0 not supported) flags degraded bandwidth (a
trunk or access link lost) and unhealthy routes: WARN, the GPU works at reduced bandwidth.

``nvswitch`` in the policy: ``false`` skips the check; ``auto`` judges every GPU that reports
fabric info (a GPU without it is SKIPPED); ``true`` (the HGX profiles) expects a fabric, so a GPU
whose fabric info is NotSupported or "not supported" is CRIT, not skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.gpu.errors import NotSupported
from sre_tools.health.model import Action, Finding, GpuRef, Severity
from sre_tools.health.registry import Context, gpu_check

STATES = {0: "not_supported", 1: "not_started", 2: "in_progress", 3: "completed"}
COMPLETED = 3
# (name, shift, width mask) of the health mask's fields.
HEALTH_FIELDS = (
    ("degraded_bandwidth", 0, 0x3),
    ("route_recovery", 2, 0x3),
    ("route_unhealthy", 4, 0x3),
    ("access_timeout_recovery", 6, 0x3),
)
INCORRECT_CONFIGURATION = {
    0: "not_supported",
    1: "none",
    2: "incorrect_sysguid",
    3: "incorrect_chassis_serial",
    4: "no_partition",
    5: "insufficient_nvlinks",
}
WARN_FIELDS = ("degraded_bandwidth", "route_unhealthy")


def decode_health(mask: int) -> dict[str, object]:
    """Health mask -> {field: True/False/None (not supported)} plus the configuration verdict."""
    out: dict[str, object] = {}
    for name, shift, width in HEALTH_FIELDS:
        value = (mask >> shift) & width
        out[name] = {1: True, 2: False}.get(value)
    conf = (mask >> 8) & 0xF
    out["incorrect_configuration"] = INCORRECT_CONFIGURATION.get(conf, f"unknown_{conf}")
    return out


def _missing(ctx: Context, gpu: GpuRef, why: str) -> Finding:
    return Finding(
        "fabric.state",
        Severity.CRIT,
        f"GPU reports no NVSwitch fabric ({why}); profile {ctx.policy.name} expects one",
        Action.RESTART_FABRIC_MANAGER,
        gpu,
        {"nvswitch": True, "nvml": why},
    )


@gpu_check("fabric.state")
def fabric_state(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    if ctx.policy.get("nvswitch") is False:
        yield Finding(
            "fabric.state",
            Severity.SKIPPED,
            "no NVSwitch fabric (policy nvswitch: false)",
            gpu=gpu,
        )
        return
    expected = ctx.policy.get("nvswitch") is True
    try:
        info = ctx.read(gpu, "fabric")
    except NotSupported as exc:
        if not expected:
            raise
        yield _missing(ctx, gpu, f"NVML: {exc}")
        return
    state = int(info["state"])
    status = int(info["status"])
    health = decode_health(int(info.get("health_mask", 0)))
    ev = {
        "state": STATES.get(state, str(state)),
        "status": status,
        "clique_id": info.get("clique_id"),
        "health": health,
    }
    if state == 0 and expected:
        yield _missing(ctx, gpu, "fabric state not supported")
    elif state == 0:
        yield Finding(
            "fabric.state",
            Severity.SKIPPED,
            "GPU is not part of an NVSwitch fabric",
            gpu=gpu,
            evidence=ev,
        )
    elif state != COMPLETED:
        yield Finding(
            "fabric.state",
            Severity.CRIT,
            f"fabric registration {STATES.get(state, state)}: restart the fabric manager",
            Action.RESTART_FABRIC_MANAGER,
            gpu,
            ev,
        )
    elif status != 0:
        yield Finding(
            "fabric.state",
            Severity.CRIT,
            f"fabric registration failed (NVML status {status}): restart the fabric manager",
            Action.RESTART_FABRIC_MANAGER,
            gpu,
            ev,
        )
    elif any(health.get(name) is True for name in WARN_FIELDS):
        bad = [name.replace("_", " ") for name in WARN_FIELDS if health.get(name) is True]
        yield Finding(
            "fabric.state",
            Severity.WARN,
            f"fabric registered with {' and '.join(bad)}",
            Action.NONE,
            gpu,
            ev,
        )
    else:
        yield Finding("fabric.state", Severity.OK, "fabric registered", gpu=gpu, evidence=ev)
