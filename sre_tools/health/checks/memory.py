"""GPU memory health: ECC mode and counters, row remapping, page retirement, SRAM, RAS repair.

Follows NVIDIA's "GPU Memory Error Management" application note (Ampere and later) and the
"Dynamic Page Retirement" note (earlier GPUs):

- Ampere+ contain uncorrectable HBM errors (only the application that touched the row dies) and
  mark the row for remapping; the remap takes effect at the next GPU reset. So a volatile
  uncorrectable error, or a pending remap, means "reset this GPU when it is drained".
- A row-remapping failure (a bank that already had 8 uncorrectable remaps, a row remapped twice,
  or 512 remaps in all) is NVIDIA's RMA criterion, to be confirmed by the field diagnostic.
- The remapper histogram tells how many spare rows each bank still has: it predicts a failure, it
  is not one.
- Pre-Ampere GPUs retire pages instead (a DBE, or two SBEs on one page); retirement takes effect
  at the next reset, and 60 retired pages is DCGM's limit (the field diagnostic's RMA threshold).
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.gpu.errors import NotSupported
from sre_tools.health.model import Action, Finding, GpuRef, Severity
from sre_tools.health.registry import Context, gpu_check

AMPERE = 7  # nvmlDeviceArchitecture_t: Ampere and later remap rows instead of retiring pages
RETIRED_PAGES_RMA = 60  # DBE + SBE retired pages (DCGM_LIMIT_MAX_RETIRED_PAGES)
RETIRED_DBE_SOFT = 15  # DCGM_LIMIT_MAX_RETIRED_PAGES_SOFT_LIMIT (DCGM: per week; here lifetime)


def _key(gpu: GpuRef) -> str:
    return gpu.uuid or f"index{gpu.index}"


@gpu_check("ecc.mode")
def ecc_mode(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    current, pending = ctx.read(gpu, "ecc_mode")
    ev = {"current": bool(current), "pending": bool(pending)}
    if current != pending:
        yield Finding(
            "ecc.mode",
            Severity.WARN,
            f"ECC mode change pending ({'on' if current else 'off'} -> "
            f"{'on' if pending else 'off'}): reset or reboot pending",
            Action.REBOOT,
            gpu,
            ev,
        )
    elif not current:
        yield Finding("ecc.mode", Severity.WARN, "ECC is disabled", Action.NONE, gpu, ev)
    else:
        yield Finding("ecc.mode", Severity.OK, "ECC is enabled", gpu=gpu, evidence=ev)


@gpu_check("ecc.uncorrected_volatile")
def ecc_uncorrected_volatile(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    count = int(ctx.read(gpu, "ecc_errors", "uncorrected", "volatile"))
    ev: dict[str, object] = {"uncorrected_volatile": count}
    if count == 0:
        yield Finding(
            "ecc.uncorrected_volatile",
            Severity.OK,
            "no uncorrectable ECC errors since the last reset",
            gpu=gpu,
            evidence=ev,
        )
        return
    rows = ctx.optional(gpu, "remapped_rows")
    if isinstance(rows, dict):
        ev["remap_pending"] = bool(rows.get("pending"))
    aggregate = ctx.optional(gpu, "ecc_errors", "uncorrected", "aggregate")
    if aggregate is not None:
        ev["uncorrected_aggregate"] = int(aggregate)
    # Ampere+: the error was contained and its row is marked for remapping (or the page offlined);
    # a reset applies the remap and clears the volatile count. Pre-Ampere: the page retirement
    # takes effect at the next reset. Either way: drain, then reset this GPU.
    yield Finding(
        "ecc.uncorrected_volatile",
        Severity.CRIT,
        f"{count} uncorrectable ECC error(s) since the last reset: reset the GPU once drained",
        Action.RESET_GPU,
        gpu,
        ev,
    )


@gpu_check("ecc.corrected_rate")
def ecc_corrected_rate(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    count = int(ctx.read(gpu, "ecc_errors", "corrected", "volatile"))
    limit = float(ctx.policy.get("ecc.corrected_rate_warn_per_hour"))
    window = float(ctx.policy.get("ecc.rate_window_seconds"))
    rate = ctx.state.rate_per_hour(f"ecc.corrected_volatile:{_key(gpu)}", count, ctx.now, window)
    ev: dict[str, object] = {"corrected_volatile": count, "warn_per_hour": limit}
    if rate is None:
        ev["rate_per_hour"] = None
        yield Finding(
            "ecc.corrected_rate",
            Severity.OK,
            "corrected ECC rate unknown yet (first sample)",
            gpu=gpu,
            evidence={**ev, "note": "rate unknown yet"},
        )
        return
    ev["rate_per_hour"] = round(rate, 3)
    if rate > limit:
        yield Finding(
            "ecc.corrected_rate",
            Severity.WARN,
            f"corrected ECC errors at {rate:.0f}/h (warn above {limit:g}/h)",
            Action.NONE,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "ecc.corrected_rate",
            Severity.OK,
            f"corrected ECC errors at {rate:.1f}/h",
            gpu=gpu,
            evidence=ev,
        )


@gpu_check("remap.pending")
def remap_pending(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    rows = ctx.read(gpu, "remapped_rows")
    ev = {
        "correctable": int(rows["correctable"]),
        "uncorrectable": int(rows["uncorrectable"]),
        "pending": bool(rows["pending"]),
    }
    if rows["pending"]:
        yield Finding(
            "remap.pending",
            Severity.CRIT,
            "row remapping pending: reset the GPU to apply it",
            Action.RESET_GPU,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "remap.pending", Severity.OK, "no row remapping pending", gpu=gpu, evidence=ev
        )


@gpu_check("remap.failure")
def remap_failure(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    rows = ctx.read(gpu, "remapped_rows")
    ev = {"uncorrectable": int(rows["uncorrectable"]), "failure": bool(rows["failure"])}
    if rows["failure"]:
        yield Finding(
            "remap.failure",
            Severity.CRIT,
            "row remapping failed: RMA candidate (confirm with the NVIDIA field diagnostic)",
            Action.RMA_CANDIDATE,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "remap.failure", Severity.OK, "no row remapping failure", gpu=gpu, evidence=ev
        )


@gpu_check("remap.histogram")
def remap_histogram(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    hist = {k: int(v) for k, v in ctx.read(gpu, "remapper_histogram").items()}
    if hist.get("none", 0) > 0:
        # The next uncorrectable error in such a bank cannot be remapped (a remap failure, the
        # RMA criterion). Nothing is broken yet, so WARN: plan the RMA, don't drain for it.
        yield Finding(
            "remap.histogram",
            Severity.WARN,
            f"{hist['none']} DRAM bank(s) have no spare rows left: RMA candidate",
            Action.RMA_CANDIDATE,
            gpu,
            hist,
        )
    elif hist.get("low", 0) > 0:
        yield Finding(
            "remap.histogram",
            Severity.WARN,
            f"{hist['low']} DRAM bank(s) are low on spare rows",
            Action.NONE,
            gpu,
            hist,
        )
    else:
        yield Finding(
            "remap.histogram",
            Severity.OK,
            "spare rows available in every bank",
            gpu=gpu,
            evidence=hist,
        )


@gpu_check("retired_pages")
def retired_pages(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    arch = ctx.optional(gpu, "architecture")
    if arch is not None and int(arch) >= AMPERE:
        raise NotSupported("row remapping replaces page retirement on Ampere and later")
    sbe = int(ctx.read(gpu, "retired_pages", "sbe"))
    dbe = int(ctx.read(gpu, "retired_pages", "dbe"))
    pending = bool(ctx.read(gpu, "retired_pages_pending"))
    ev = {"sbe": sbe, "dbe": dbe, "total": sbe + dbe, "pending": pending}
    if sbe + dbe >= RETIRED_PAGES_RMA:
        yield Finding(
            "retired_pages",
            Severity.CRIT,
            f"{sbe + dbe} retired pages (limit {RETIRED_PAGES_RMA}): RMA candidate",
            Action.RMA_CANDIDATE,
            gpu,
            ev,
        )
    elif pending:
        yield Finding(
            "retired_pages",
            Severity.CRIT,
            "page retirement pending: reset the GPU to apply it",
            Action.RESET_GPU,
            gpu,
            ev,
        )
    elif dbe >= RETIRED_DBE_SOFT:
        yield Finding(
            "retired_pages",
            Severity.WARN,
            f"{dbe} pages retired for double-bit errors (soft limit {RETIRED_DBE_SOFT})",
            Action.CONTACT_SUPPORT,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "retired_pages", Severity.OK, f"{sbe + dbe} retired page(s)", gpu=gpu, evidence=ev
        )


@gpu_check("sram.threshold")
def sram_threshold(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    st = ctx.read(gpu, "sram_ecc_status")
    ev = {k: (bool(v) if isinstance(v, bool) else int(v)) for k, v in st.items()}
    if st.get("threshold_exceeded"):
        # XID 48/94/95 workflow for SRAM: the threshold flag means "run the field diagnostic";
        # whether it is an RMA is NVIDIA's call on its result.
        yield Finding(
            "sram.threshold",
            Severity.CRIT,
            "SRAM uncorrectable-error threshold exceeded: run the field diagnostic, then "
            "contact support",
            Action.CONTACT_SUPPORT,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "sram.threshold",
            Severity.OK,
            "SRAM error threshold not exceeded",
            gpu=gpu,
            evidence=ev,
        )


@gpu_check("repair.status")
def repair_status(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    st = ctx.read(gpu, "repair_status")
    ev = {k: bool(v) for k, v in st.items()}
    pending = [k.removesuffix("_repair_pending") for k, v in ev.items() if v]
    if pending:
        yield Finding(
            "repair.status",
            Severity.CRIT,
            f"{' and '.join(pending)} repair pending: reset the GPU to apply it",
            Action.RESET_GPU,
            gpu,
            ev,
        )
    else:
        yield Finding("repair.status", Severity.OK, "no repair pending", gpu=gpu, evidence=ev)
