"""MIG: a pending mode change (it only takes effect at the next GPU reset), and the layout
against the site's desired mig-parted configuration (read-only: nothing is changed here)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from sre_tools.exceptions import ValidationError
from sre_tools.gpu.errors import NotSupported
from sre_tools.health.model import Action, Finding, GpuRef, Severity
from sre_tools.health.registry import Context, check, gpu_check

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any


@gpu_check("mig.pending")
def mig_pending(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    current, pending = ctx.read(gpu, "mig_mode")
    ev = {"current": bool(current), "pending": bool(pending)}
    if current != pending:
        yield Finding(
            "mig.pending",
            Severity.WARN,
            f"MIG mode change pending ({'on' if current else 'off'} -> "
            f"{'on' if pending else 'off'}): reset the GPU to apply it",
            Action.RESET_GPU,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "mig.pending",
            Severity.OK,
            f"MIG {'enabled' if current else 'disabled'}, no change pending",
            gpu=gpu,
            evidence=ev,
        )


def _desired(ctx: Context, gpu: GpuRef) -> tuple[str, str, Any]:
    """(file, config name, parsed file) from the policy; cached for the cycle."""
    path = ctx.policy.get("mig.config_file")
    name = ctx.policy.get("mig.config_name")
    key = f"mig.config:{path}"
    if key not in ctx.cache:
        from sre_tools.inputs import MAX_SPEC_BYTES, read_text_capped

        # Capped, never waiting on a FIFO: the one reader of input files (sre_tools/inputs.py).
        text, _ = read_text_capped(str(path), MAX_SPEC_BYTES, what="MIG config")
        # Imported here: mig.config needs PyYAML, which a node without a MIG config never reads.
        from sre_tools.mig.config import memory_class, parse_mig_config

        memory = memory_class(str(ctx.optional(gpu, "name") or ""))
        ctx.cache[key] = parse_mig_config(text, str(path), memory=memory)
    parsed = ctx.cache[key]
    if name not in parsed.configs:
        known = ", ".join(sorted(parsed.configs))
        raise ValidationError(
            f"no config named {name!r} (known: {known})", source=str(path), field="mig-configs"
        )
    return str(path), str(name), parsed


@check("mig.layout")
def mig_layout(ctx: Context) -> Iterator[Finding]:
    if not ctx.policy.get("mig.config_file") or not ctx.policy.get("mig.config_name"):
        yield Finding(
            "mig.layout",
            Severity.SKIPPED,
            "no desired MIG layout configured (policy mig.config_file, mig.config_name)",
        )
        return
    for gpu in ctx.gpus:
        if gpu.index in ctx.lost:
            continue
        try:
            path, name, parsed = _desired(ctx, gpu)
        except ValidationError as exc:
            yield Finding("mig.layout", Severity.UNKNOWN, f"desired MIG layout unusable: {exc}")
            return
        want = parsed.layout_for(name, gpu.index)
        if want is None:
            yield Finding(
                "mig.layout",
                Severity.SKIPPED,
                f"config {name!r} does not cover GPU {gpu.index}",
                gpu=gpu,
            )
            continue
        try:
            current, _pending = ctx.read(gpu, "mig_mode")
            have_devices = ctx.read(gpu, "mig_devices") if current else []
        except NotSupported:
            yield Finding("mig.layout", Severity.SKIPPED, "MIG not supported here", gpu=gpu)
            continue
        from sre_tools.mig.config import profile_of

        have = Counter(p for d in have_devices if (p := profile_of(str(d.get("name", "")))))
        wanted = Counter({p: n for p, n in want.mig_devices if n})
        ev = {
            "config_file": path,
            "config": name,
            "mig_enabled_want": want.mig_enabled,
            "mig_enabled_have": bool(current),
            "want": dict(wanted),
            "have": dict(have),
        }
        if bool(current) != want.mig_enabled or (want.mig_enabled and have != wanted):
            yield Finding(
                "mig.layout",
                Severity.WARN,
                f"MIG layout differs from {name!r}: want {dict(wanted) or 'MIG off'}, "
                f"have {dict(have) if current else 'MIG off'}; apply it with mig-parted on a "
                "drained node",
                gpu=gpu,
                evidence=ev,
            )
        else:
            yield Finding(
                "mig.layout", Severity.OK, f"MIG layout matches {name!r}", gpu=gpu, evidence=ev
            )
