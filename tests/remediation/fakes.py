"""Fakes for the remediation engine: a Slurm that answers scontrol/sinfo argv like 22.05 does,
a node runner that records commands (never runs them), a settable clock, a notifier."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sre_tools.remediation.errors import CommandTimeout
from sre_tools.remediation.runner import CommandResult

SHOW_NODE_TEMPLATE = (
    "NodeName={name} Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 CPUEfctv=1 CPUTot=1 CPULoad=0.10 "
    "AvailableFeatures=(null) ActiveFeatures=(null) Gres=(null) NodeAddr=127.0.0.1 "
    "NodeHostName=localhost Port=16901 Version=22.05.8 OS=Linux 6.1.0-13-amd64 #1 SMP "
    "PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)  RealMemory=100 AllocMem=0 FreeMem=23240 "
    "Sockets=1 Boards=1 State={state} ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A "
    "MCS_label=N/A Partitions={partitions}  BootTime=2026-11-23T18:00:23 "
    "SlurmdStartTime=2026-11-23T18:59:16 LastBusyTime=2026-11-23T18:59:16 "
    "CfgTRES=cpu=1,mem=100M,billing=1 AllocTRES= CapWatts=n/a CurrentWatts=0 AveWatts=0 "
    "ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s{reason}"
)


@dataclass
class FakeNode:
    name: str
    partitions: list[str]
    state: str = "IDLE"  # base state
    drain: bool = False
    reason: str | None = None

    @property
    def state_text(self) -> str:
        return self.state + ("+DRAIN" if self.drain else "")

    @property
    def sinfo_state(self) -> str:
        if self.drain:
            return "drained" if self.state == "IDLE" else "draining"
        return self.state.lower()


@dataclass
class FakeSlurm:
    """A runner that plays scontrol and sinfo over an in-memory cluster (thread-safe)."""

    nodes: dict[str, FakeNode] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail: dict[str, str] = field(default_factory=dict)  # "drain"/"show"/"sinfo" -> "timeout"|msg
    # Re-entrant: a test hook inside one answer may run another engine against the same cluster.
    lock: threading.RLock = field(default_factory=threading.RLock)
    on_sinfo: Callable[[], None] | None = None  # runs after sinfo's snapshot, before it returns

    @classmethod
    def cluster(cls, partitions: Mapping[str, Sequence[str]]) -> FakeSlurm:
        fake = cls()
        for part, members in partitions.items():
            for name in members:
                node = fake.nodes.setdefault(name, FakeNode(name, []))
                node.partitions.append(part)
        return fake

    def updates(self, kind: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[:2] == ("scontrol", "update") and f"state={kind}" in c]

    def _fail(self, what: str, argv: tuple[str, ...]) -> CommandResult | None:
        how = self.fail.get(what)
        if how is None:
            return None
        if how == "timeout":
            raise CommandTimeout(f"{argv[0]} timed out after 1s", argv=argv)
        return CommandResult(argv, 1, "", how)

    def __call__(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        args = tuple(argv)
        assert not isinstance(argv, str)
        with self.lock:
            self.calls.append(args)
            if args[:3] == ("scontrol", "show", "node"):
                return self._fail("show", args) or self._show(args)
            if args[:2] == ("scontrol", "update"):
                return self._fail("drain" if "state=drain" in args else "resume", args) or (
                    self._update(args)
                )
            if args[0] == "sinfo":
                result = self._fail("sinfo", args) or self._sinfo(args)
                if self.on_sinfo is not None:
                    hook, self.on_sinfo = self.on_sinfo, None
                    hook()
                return result
        raise AssertionError(f"unexpected command {args}")

    def _show(self, args: tuple[str, ...]) -> CommandResult:
        name = args[-1]
        node = self.nodes.get(name)
        if node is None:
            return CommandResult(args, 1, "", f"Node {name} not found")
        reason = "" if not node.reason else f" Reason={node.reason} [root@2026-11-23T18:59:29]"
        line = SHOW_NODE_TEMPLATE.format(
            name=name,
            state=node.state_text,
            partitions=",".join(node.partitions),
            reason=reason,
        )
        return CommandResult(args, 0, line + "\n", "")

    def _update(self, args: tuple[str, ...]) -> CommandResult:
        kv = dict(a.split("=", 1) for a in args[2:])
        node = self.nodes.get(kv["nodename"])
        if node is None:
            return CommandResult(args, 1, "", "slurm_update error: Invalid node name specified")
        if kv["state"] == "drain":
            node.drain = True
            node.reason = kv["reason"]
        elif kv["state"] == "resume":
            if not node.drain and node.state != "DOWN":
                return CommandResult(args, 1, "", "slurm_update error: Invalid node state")
            node.drain = False
            node.reason = None
            node.state = "IDLE" if node.state == "DOWN" else node.state
        return CommandResult(args, 0, "", "")

    def _sinfo(self, args: tuple[str, ...]) -> CommandResult:
        lines = []
        for node in self.nodes.values():
            for part in node.partitions:
                lines.append(f"{node.name}|{part}|{node.sinfo_state}|{node.reason or 'none'}")
        return CommandResult(args, 0, "\n".join(lines) + "\n", "")


@dataclass
class RecordingRunner:
    """Node-side runner: records argv, never runs anything. ``fail`` makes a command fail."""

    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)  # argv[0] -> return code
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        assert not isinstance(argv, str)
        args = tuple(argv)
        with self.lock:
            self.calls.append(args)
        code = self.fail.get(args[0], 0)
        return CommandResult(args, code, "", "boom" if code else "")


class Clock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


@dataclass
class Notes:
    """A notifier that keeps what it was told."""

    payloads: list[dict[str, Any]] = field(default_factory=list)
    error: Exception | None = None

    def __call__(self, payload: Mapping[str, Any]) -> None:
        if self.error is not None:
            raise self.error
        self.payloads.append(dict(payload))
