"""Shared helpers for the XID tests: small recordings, a context, sample lines."""

from __future__ import annotations

from typing import Any

from sre_tools.gpu.backend import RecordedBackend
from sre_tools.health.model import GpuRef
from sre_tools.health.policy import load_policy
from sre_tools.health.registry import Context
from sre_tools.health.state import CounterState

T0 = 1_795_168_800.0  # 2026-11-20T10:00:00Z
BOOT = T0 - 10_000.0  # the node booted 10 000 s before T0

BUS = {0: "00000000:18:00.0", 1: "00000000:3B:00.0", 2: "00000000:B7:00.0"}


def device(index: int, recovery_action: int | None = 0, **extra: Any) -> dict[str, Any]:
    readings: dict[str, Any] = {
        "uuid": {"value": f"GPU-0000000{index}-aaaa-bbbb-cccc-dddddddddddd"},
        "pci": {"value": {"bus_id": BUS[index]}},
    }
    if recovery_action is None:
        readings["recovery_action"] = {"error": "NOT_SUPPORTED"}
    else:
        readings["recovery_action"] = {"value": recovery_action}
    return {"index": index, "readings": readings, **extra}


def recording(
    gpus: int = 2, events: list[dict[str, Any]] | None = None, **recovery: int
) -> dict[str, Any]:
    """``recovery`` by ``gpu<N>=value`` sets that GPU's recovery-action reading."""
    return {
        "version": 1,
        "host": "node1",
        "devices": [device(i, recovery.get(f"gpu{i}", 0)) for i in range(gpus)],
        "events": events or [],
    }


def context(
    data: dict[str, Any] | None = None,
    *,
    kernel_log_lines: list[str] | None = None,
    config: str | None = None,
) -> Context:
    """A context as the runner builds it, GPUs discovered from the recording."""
    data = data or recording()
    backend = RecordedBackend(data, "<test>")
    ctx = Context(
        backend=backend,
        policy=load_policy(None, config),
        state=CounterState(),
        now=T0,
        host="node1",
        kernel_log_lines=kernel_log_lines,
    )
    for dev in data["devices"]:
        i = dev["index"]
        ctx.gpus.append(GpuRef(i, f"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd", BUS[i]))
    return ctx
