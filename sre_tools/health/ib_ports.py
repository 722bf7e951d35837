"""InfiniBand port reader: ports as the kernel shows them in sysfs, link flaps in the kernel log.

``/sys/class/infiniband/<dev>/ports/<n>/`` holds ``state`` (``4: ACTIVE``), ``phys_state``
(``5: LinkUp``), ``rate`` (``400 Gb/sec (4X NDR)``), ``link_layer`` (``InfiniBand`` or
``Ethernet`` for RoCE) and ``counters/<name>`` (plain integers). Parsing is pure; only
:func:`read_ports` touches the file system, under a root the caller passes (tests use a fake tree).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from sre_tools.record import Record

ACTIVE = 4  # ib_port_state: 1 DOWN, 2 INIT, 3 ARMED, 4 ACTIVE, 5 ACTIVE_DEFER
LINK_UP = 5  # phys_state: 2 Polling, 3 Disabled, 4 PortConfigurationTraining, 5 LinkUp, ...
# Error counters judged as rates (the kernel's names under ports/<n>/counters/).
ERROR_COUNTERS = ("symbol_error", "link_downed", "link_error_recovery", "port_rcv_errors")
# Saturation points of the IBA PortCounters these come from (they stop, they do not wrap).
COUNTER_MAX = {
    "symbol_error": 0xFFFF,
    "link_downed": 0xFF,
    "link_error_recovery": 0xFF,
    "port_rcv_errors": 0xFFFF,
}

_STATE = re.compile(r"^\s*(\d+)\s*:\s*(\S.*?)\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*Gb/sec", re.IGNORECASE)
# mlx5 carrier changes, e.g. "mlx5_core 0000:ca:00.0 ibp202s0: Link down" (one per flap).
_FLAP = re.compile(
    r"mlx5_core\s+(?P<pci>[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\b.*?\blink down\b", re.I
)


class IbPort(Record):
    __slots__ = (
        "counters",
        "device",
        "link_layer",
        "phys_state",
        "phys_state_code",
        "port",
        "rate_gbps",
        "rate_text",
        "state",
        "state_code",
    )
    device: str
    port: int
    state_code: int | None
    state: str
    phys_state_code: int | None
    phys_state: str
    rate_text: str
    rate_gbps: float | None
    link_layer: str
    counters: dict[str, int]

    def __init__(
        self,
        device: str,
        port: int,
        state_code: int | None,
        state: str,
        phys_state_code: int | None,
        phys_state: str,
        rate_text: str,
        rate_gbps: float | None,
        link_layer: str,
        counters: dict[str, int] | None = None,
    ) -> None:
        self._init(
            device=device,
            port=port,
            state_code=state_code,
            state=state,
            phys_state_code=phys_state_code,
            phys_state=phys_state,
            rate_text=rate_text,
            rate_gbps=rate_gbps,
            link_layer=link_layer,
            counters={} if counters is None else counters,
        )

    @property
    def name(self) -> str:
        return f"{self.device}/{self.port}"

    @property
    def up(self) -> bool:
        return self.state_code == ACTIVE and self.phys_state_code == LINK_UP


def parse_state(text: str) -> tuple[int | None, str]:
    """``"4: ACTIVE"`` -> ``(4, "ACTIVE")``; anything else -> ``(None, text)``."""
    m = _STATE.match(text)
    if not m:
        return None, text.strip()
    return int(m.group(1)), m.group(2)


def parse_rate(text: str) -> float | None:
    """``"400 Gb/sec (4X NDR)"`` -> ``400.0``; ``"2.5 Gb/sec (1X SDR)"`` -> ``2.5``."""
    m = _RATE.match(text)
    return float(m.group(1)) if m else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def read_ports(sysfs: Path) -> list[IbPort]:
    """Every port of every RDMA device under ``sysfs/class/infiniband`` (empty when none)."""
    root = sysfs / "class" / "infiniband"
    try:
        devices = sorted(p for p in root.iterdir())
    except OSError:
        return []
    ports: list[IbPort] = []
    for dev in devices:
        try:
            port_dirs = sorted(
                (p for p in (dev / "ports").iterdir() if p.name.isdigit()),
                key=lambda p: int(p.name),
            )
        except OSError:
            continue
        for pdir in port_dirs:
            state_code, state = parse_state(_read(pdir / "state") or "")
            phys_code, phys = parse_state(_read(pdir / "phys_state") or "")
            rate_text = _read(pdir / "rate") or ""
            counters: dict[str, int] = {}
            for name in ERROR_COUNTERS:
                raw = _read(pdir / "counters" / name)
                if raw is not None and raw.isdigit():
                    counters[name] = int(raw)
            ports.append(
                IbPort(
                    device=dev.name,
                    port=int(pdir.name),
                    state_code=state_code,
                    state=state,
                    phys_state_code=phys_code,
                    phys_state=phys,
                    rate_text=rate_text,
                    rate_gbps=parse_rate(rate_text),
                    link_layer=_read(pdir / "link_layer") or "InfiniBand",
                    counters=counters,
                )
            )
    return ports


def count_link_flaps(lines: Iterable[str]) -> dict[str, int]:
    """Link-down messages from mlx5 in ``lines``, per PCI address of the adapter."""
    counts: dict[str, int] = {}
    for line in lines:
        m = _FLAP.search(line)
        if m:
            pci = m.group("pci").lower()
            counts[pci] = counts.get(pci, 0) + 1
    return counts
