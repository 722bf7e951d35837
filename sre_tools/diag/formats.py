"""Which tool wrote a file, and its judged run: ``sre diag import`` and the runner share this."""

from __future__ import annotations

from typing import Any

from sre_tools.diag import dcgm, nccl, nvbandwidth
from sre_tools.diag.model import DiagRun, Inventory, Kind
from sre_tools.exceptions import ValidationError
from sre_tools.health.policy import Policy

# The largest output read, from a file or a tool's stdout (a 4-level DCGM run on 8 GPUs is a few
# hundred KiB; a 500-row nccl-tests table about 100 KiB).
from sre_tools.inputs import MAX_REPORT_BYTES as MAX_OUTPUT_BYTES
from sre_tools.inputs import load_json

__all__ = ["MAX_OUTPUT_BYTES", "detect", "judge_text"]


def detect(text: str, source: str) -> tuple[Kind, Any]:
    """``(kind, parsed JSON or the text)``; an unrecognised file is a :class:`ValidationError`."""
    head = text.lstrip()[:1]
    if head in ("{", "["):
        data = load_json(text, source)
        if isinstance(data, dict) and dcgm.ROOT in data:
            return Kind.DCGM, data
        if isinstance(data, dict) and nvbandwidth.ROOT in data:
            return Kind.NVBANDWIDTH, data
        raise ValidationError(
            f"JSON that is neither 'dcgmi diag -j' ({dcgm.ROOT!r}) nor 'nvbandwidth -j' "
            f"({nvbandwidth.ROOT!r}) output",
            source=source,
            field="(top level)",
        )
    if "Avg bus bandwidth" in text or "nccl-tests" in text or "Collective test" in text:
        return Kind.NCCL, text
    raise ValidationError(
        "not a recognised diagnostic output (dcgmi diag -j, nvbandwidth -j, all_reduce_perf)",
        source=source,
    )


def judge_text(
    text: str,
    source: str,
    *,
    policy: Policy,
    inventory: Inventory,
    node: str,
    started: float,
    ended: float,
    label: str,
    rc: int | None = None,
    level: int | None = None,
    expect: Kind | None = None,
) -> DiagRun:
    """Parse and judge one output. ``expect``: the kind the runner ran (its output must match)."""
    kind, data = detect(text, source)
    if expect is not None and kind is not expect:
        raise ValidationError(f"expected {expect.value} output, found {kind.value}", source=source)
    common: dict[str, Any] = {
        "node": node,
        "started": started,
        "ended": ended,
        "source": label,
        "rc": rc,
    }
    if kind is Kind.DCGM:
        return dcgm.to_run(dcgm.parse(data, source), inventory, level=level, **common)
    if kind is Kind.NVBANDWIDTH:
        return nvbandwidth.to_run(
            nvbandwidth.parse(data, source),
            inventory,
            policy.get("diag.nvbandwidth"),
            policy.name,
            **common,
        )
    return nccl.to_run(
        nccl.parse(data, source),
        inventory,
        policy.get("diag.nccl"),
        policy.name,
        expected_gpus=policy.get("expected_gpus"),
        **common,
    )
