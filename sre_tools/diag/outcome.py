"""How a tool ended, before its output is read: missing, timed out, killed, or exited.

Shared by the three kinds. A tool that is missing gives a ``skipped`` finding; one that timed out
is CRIT (a diagnostic that does not finish in its time is not a pass, and a hung GPU looks like
this); one killed by a signal is UNKNOWN (the result is unknown, not bad).
"""

from __future__ import annotations

from sre_tools.diag.model import Kind
from sre_tools.health.model import Action, Finding, Severity


def check_id(kind: Kind, name: str) -> str:
    """``diag.<kind>.<name>``: the stable id of a diagnostic finding."""
    return f"diag.{kind.value}.{name}"


def missing(kind: Kind, tool: str, reason: str) -> Finding:
    return Finding(
        check_id(kind, "tool"),
        Severity.SKIPPED,
        f"{tool} not run: {reason}",
        evidence={"tool": tool, "reason": reason},
    )


def disabled(kind: Kind) -> Finding:
    return Finding(
        check_id(kind, "tool"),
        Severity.SKIPPED,
        f"{kind.value} diagnostics are turned off (diag.{kind.value}.enabled: false)",
        evidence={"reason": "disabled in the site file"},
    )


def timed_out(kind: Kind, tool: str, seconds: float) -> Finding:
    return Finding(
        check_id(kind, "timeout"),
        Severity.CRIT,
        f"{tool} did not finish within {seconds:g} s (killed); treat the node as failed until a "
        "rerun passes",
        Action.DRAIN_AND_RESET,
        evidence={"tool": tool, "timeout_seconds": seconds},
    )


def killed(kind: Kind, tool: str, signal: int) -> Finding:
    return Finding(
        check_id(kind, "killed"),
        Severity.UNKNOWN,
        f"{tool} was killed by signal {signal}: no result",
        evidence={"tool": tool, "signal": signal},
    )


def signal_of(rc: int, kind: Kind) -> int | None:
    """The signal that ended a process: a negative return code (Popen), or 128+N where a
    wrapper script passed it on. Not for dcgmi: its own statuses (an 8-bit ``dcgmReturn_t``)
    fill that range."""
    if rc < 0:
        return -rc
    if kind is not Kind.DCGM and 128 < rc < 128 + 65:
        return rc - 128
    return None


# dcgmi exits with its dcgmReturn_t (negative) as an 8-bit status: -30 is 226. From
# dcgmlib/dcgm_structs.h and dcgmi/Diag.cpp (tests/fixtures/diag/README.md). Each code: what it
# means, and whether the JSON on stdout still holds test results to judge.
_DCGM_CODES: dict[int, tuple[str, bool]] = {
    256 - 30: ("DCGM_ST_NVVS_ERROR: the diagnostic ran and reported a failure", True),
    256 - 51: ("DCGM_ST_NVVS_ISOLATE_ERROR: the diagnostic asks to isolate a GPU", True),
    256 - 53: ("DCGM_ST_NVVS_KILLED: nvvs was killed by a signal", False),
    256 - 52: ("DCGM_ST_NVVS_BINARY_NOT_FOUND: nvvs is not installed where DCGM looks", False),
    256 - 11: ("DCGM_ST_TIMEOUT: the diagnostic timed out", False),
    256 - 39: ("DCGM_ST_DIAG_ALREADY_RUNNING: another diagnostic is running", False),
    256 - 40: ("DCGM_ST_DIAG_BAD_JSON: nvvs returned JSON that DCGM cannot parse", False),
    256 - 41: ("DCGM_ST_DIAG_BAD_LAUNCH: nvvs could not be launched", False),
    256 - 21: ("DCGM_ST_CONNECTION_NOT_VALID: nv-hostengine is not reachable", False),
    256 - 3: ("DCGM_ST_GENERIC_ERROR", False),
    256 - 6: ("DCGM_ST_NOT_SUPPORTED: this GPU or driver does not support the diagnostic", False),
    256 - 44: ("DCGM_ST_INSUFFICIENT_DRIVER_VERSION", False),
}
DCGM_TIMEOUT_RC = 256 - 11
DCGM_KILLED_RC = 256 - 53


def dcgm_code(rc: int) -> tuple[str, bool]:
    """``(meaning, results_follow)`` of a dcgmi exit status."""
    if rc == 0:
        return "success", True
    return _DCGM_CODES.get(rc, (f"dcgmi exited with status {rc}", False))
