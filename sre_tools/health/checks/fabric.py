"""NVSwitch fabric registration (``nvmlDeviceGetGpuFabricInfoV``).

On NVSwitch systems a GPU cannot run CUDA work until the fabric manager has registered it with
the fabric: state COMPLETED (3) with status SUCCESS (0). Anything else means the fabric manager
is not running, not done, or failed: restart it (``systemctl restart nvidia-fabricmanager``).
The health mask (2-bit fields: 1 TRUE, 2 FALSE, 0 not supported) flags degraded bandwidth (a
trunk or access link lost) and unhealthy routes: WARN, the GPU works at reduced bandwidth.

``nvswitch`` in the policy: ``false`` skips the check; ``auto`` judges every GPU that reports
fabric info (a GPU without it is SKIPPED); ``true`` (the HGX profiles) expects a fabric, so a GPU
whose fabric info is NotSupported or "not supported" is CRIT, not skipped.

``fabric.manager`` (node): where the profile expects a fabric (``nvswitch: true``), the fabric
manager's systemd unit (``fabric_manager.unit``) must be active. NVML's fabric info is the
registration the GPU last got, and whether it leaves COMPLETED when the daemon stops depends on the
NVSwitch generation and driver; with ``ABORT_CUDA_JOBS_ON_FM_EXIT=1`` (the default) the daemon's
exit also aborted the running CUDA jobs: the unit itself is what tells. A replay reads no unit
states unless a systemctl is given.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.gpu.errors import NotSupported
from sre_tools.health.model import SERVICE_UNIT_RE, Action, Finding, GpuRef, Severity
from sre_tools.health.registry import Context, check, gpu_check

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


UNIT_TIMEOUT_SECONDS = 5.0
# ActiveState values (systemctl show): the unit runs, is on its way, or does not run.
ACTIVE = "active"
STARTING = {"activating", "reloading", "refreshing"}


def unit_state(systemctl: str, unit: str, timeout: float) -> dict[str, str]:
    """``LoadState``, ``ActiveState`` and ``SubState`` of ``unit`` (``systemctl show``).

    Through the local transport: an argv, and on a timeout the whole process group is killed
    (a wrapper's children included), so a hung systemctl cannot outlive the check."""
    from sre_tools.transport.local import LocalTransport

    argv = [systemctl, "show", "--property=LoadState,ActiveState,SubState", "--", unit]
    done = LocalTransport(max_output=65536).run(argv, timeout)
    stdout = done.stdout.decode(errors="replace")
    if done.rc != 0:
        text = (done.stderr.decode(errors="replace") or stdout).strip()
        raise RuntimeError((text.splitlines() or [f"exit {done.rc}"])[0][:200])
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        key, eq, value = line.partition("=")
        if eq and key in ("LoadState", "ActiveState", "SubState"):
            out[key] = value.strip()[:64]
    if "ActiveState" not in out:
        raise RuntimeError(f"no ActiveState in the answer of {systemctl} show")
    return out


@check("fabric.manager", needs_nvml=False)
def fabric_manager(ctx: Context) -> Iterator[Finding]:
    unit = ctx.policy.get("fabric_manager.unit")
    nvswitch = ctx.policy.get("nvswitch")
    if nvswitch is not True:
        setting = str(nvswitch).lower()
        why = f"profile {ctx.policy.name} expects no NVSwitch fabric (nvswitch: {setting})"
        yield Finding("fabric.manager", Severity.SKIPPED, why)
        return
    if not unit:
        yield Finding("fabric.manager", Severity.SKIPPED, "fabric_manager.unit is empty")
        return
    if not isinstance(unit, str) or not SERVICE_UNIT_RE.fullmatch(unit):
        yield Finding(
            "fabric.manager", Severity.UNKNOWN, f"fabric_manager.unit {unit!r} is not a service"
        )
        return
    if ctx.systemctl is None:
        why = "unit states are not read on a replay (--systemctl reads them)"
        yield Finding("fabric.manager", Severity.SKIPPED, why, evidence={"unit": unit})
        return
    budget = float(ctx.policy.get("collection.timeout_seconds"))
    timeout = max(0.5, min(UNIT_TIMEOUT_SECONDS, 0.3 * budget))
    from sre_tools.transport.base import TransportError, TransportTimeout

    try:
        state = unit_state(ctx.systemctl, unit, timeout)
    except TransportTimeout:
        reason = f"{ctx.systemctl} show did not answer within {timeout:g} s"
    except TransportError as exc:
        reason = exc.reason
    except RuntimeError as exc:
        reason = str(exc)
    else:
        yield _manager_finding(unit, state)
        return
    yield Finding(
        "fabric.manager",
        Severity.UNKNOWN,
        f"state of {unit} unknown: {reason}",
        evidence={"unit": unit, "error": reason},
    )


def _manager_finding(unit: str, state: dict[str, str]) -> Finding:
    evidence: dict[str, object] = {"unit": unit, **state}
    active = state.get("ActiveState", "")
    if state.get("LoadState") == "not-found":
        return Finding(
            "fabric.manager",
            Severity.CRIT,
            f"{unit} is not installed; an NVSwitch node needs the fabric manager",
            Action.RESTART_FABRIC_MANAGER,
            evidence=evidence,
        )
    if active == ACTIVE:
        return Finding("fabric.manager", Severity.OK, f"{unit} is active", evidence=evidence)
    if active in STARTING:
        return Finding(
            "fabric.manager",
            Severity.WARN,
            f"{unit} is {active}",
            Action.NONE,
            evidence=evidence,
        )
    return Finding(
        "fabric.manager",
        Severity.CRIT,
        f"{unit} is {active or 'in no known state'} ({state.get('SubState', '?')}): "
        "restart the fabric manager",
        Action.RESTART_FABRIC_MANAGER,
        evidence=evidence,
    )
