"""Slurm through its commands: ``scontrol`` to drain, resume and read a node, ``sinfo`` for
partition membership and drained counts.

argv lists only; every call has a timeout that becomes :class:`SlurmError`. The commands run
where the engine runs (on the Slurm controller, or any host with the cluster's ``slurm.conf``
and munge key), or on ``controller`` through ssh. ``slurm_conf`` sets ``SLURM_CONF`` for them.

Parsing notes (Slurm 22.05):

- ``scontrol show node -o NAME`` prints one line of ``Key=Value`` pairs. Values may contain
  spaces (``OS=Linux 6.1 #1 SMP ...``), and ``Reason=`` comes last and runs to the end of the
  line, followed by `` [user@time]``. So a key is a word of letters at the start of the line or
  after a space, followed by ``=``; ``Reason`` takes the rest of the line.
- ``State=`` is a base state and ``+``-joined flags: ``IDLE+DRAIN`` is drained, ``MIXED+DRAIN``
  is draining (jobs still running), ``DOWN+DRAIN+NOT_RESPONDING`` ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sre_tools.remediation.errors import CommandError, SlurmError, UnknownNodeError
from sre_tools.remediation.model import validate_node, validate_text
from sre_tools.remediation.runner import CommandResult, LocalRunner, Runner, SshRunner

_KEY = re.compile(r"(?:^|(?<= ))([A-Za-z][A-Za-z0-9_:]*)=")
_REASON_SUFFIX = re.compile(r"\s*\[[^\[\]@]*@[^\[\]]*\]\s*$")
BUSY_STATES = frozenset({"ALLOCATED", "MIXED", "COMPLETING"})
SINFO_SEP = "|"
LOCAL_CONTROLLERS = frozenset({"", "local", "localhost", "127.0.0.1", "::1"})
# scontrol about a node it does not know: "Node gpu99 not found" (show), "slurm_update error:
# Invalid node name specified" (update). Not "scontrol: command not found": that is no answer.
_UNKNOWN_NODE = re.compile(r"\bNode \S+ not found|Invalid node name", re.IGNORECASE)


@dataclass(frozen=True)
class NodeInfo:
    name: str
    state: str  # base state, upper case: IDLE, MIXED, ALLOCATED, DOWN, UNKNOWN, ...
    flags: frozenset[str]  # DRAIN, NOT_RESPONDING, COMPLETING, ...
    reason: str | None
    partitions: tuple[str, ...] = ()

    @property
    def drained(self) -> bool:
        """Drain requested: DRAINED (idle) or DRAINING (jobs still running)."""
        return "DRAIN" in self.flags or self.state in ("DRAINED", "DRAINING")

    @property
    def down(self) -> bool:
        return self.state in ("DOWN", "FAIL") or "FAIL" in self.flags

    @property
    def idle(self) -> bool:
        """No job runs on the node (a drained node is then DRAINED, not DRAINING)."""
        return (
            self.state not in BUSY_STATES
            and "COMPLETING" not in self.flags
            and self.state != "DRAINING"
        )

    @property
    def state_text(self) -> str:
        return "+".join([self.state, *sorted(self.flags)])


def scontrol_error(result: CommandResult, what: str, node: str) -> SlurmError:
    """The error for a failed ``scontrol <what> <node>``: :class:`UnknownNodeError` when Slurm
    does not know the node, else :class:`SlurmError` with the end of its output."""
    text = f"{result.stdout}\n{result.stderr}"
    if _UNKNOWN_NODE.search(text):
        return UnknownNodeError(
            f"Slurm does not know node {node}", argv=result.argv, returncode=result.returncode
        )
    return SlurmError(
        f"scontrol {what} {node} failed: {result.brief()}",
        argv=result.argv,
        returncode=result.returncode,
    )


def parse_fields(line: str) -> dict[str, str]:
    """``Key=Value`` pairs of one ``scontrol show -o`` line (see the module notes)."""
    line = line.strip()
    fields: dict[str, str] = {}
    reason_at = line.find(" Reason=")
    if line.startswith("Reason="):
        reason_at = 0
    head, reason = (line, None) if reason_at < 0 else (line[:reason_at], line[reason_at:].strip())
    matches = list(_KEY.finditer(head))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(head)
        fields[m.group(1)] = head[m.end() : end].strip()
    if reason is not None:
        fields["Reason"] = _REASON_SUFFIX.sub("", reason[len("Reason=") :]).strip()
    return fields


def parse_state(text: str) -> tuple[str, frozenset[str]]:
    parts = [p for p in text.upper().split("+") if p]
    if not parts:
        return "UNKNOWN", frozenset()
    base = parts[0].rstrip("*~#%$@^-!")
    return base, frozenset(parts[1:])


def parse_show_node(text: str, name: str) -> NodeInfo:
    for line in text.splitlines():
        fields = parse_fields(line)
        if fields.get("NodeName") == name:
            state, flags = parse_state(fields.get("State", ""))
            reason = fields.get("Reason") or None
            parts = fields.get("Partitions", "")
            partitions = tuple(p for p in parts.split(",") if p and p != "(null)")
            return NodeInfo(name, state, flags, reason, partitions)
    raise SlurmError(f"scontrol show node {name}: no NodeName={name} line in the output")


@dataclass(frozen=True)
class SinfoRow:
    node: str
    partition: str
    state: str  # sinfo's long state: idle, drained, draining, down*, ...
    reason: str | None

    @property
    def drained(self) -> bool:
        return "drain" in self.state


def parse_sinfo(text: str) -> list[SinfoRow]:
    rows: list[SinfoRow] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split(SINFO_SEP, 3)
        if len(parts) != 4:
            raise SlurmError(f"sinfo: unexpected line {line[:200]!r}")
        node, partition, state, reason = (p.strip() for p in parts)
        rows.append(
            SinfoRow(node, partition, state.lower(), None if reason in ("", "none") else reason)
        )
    return rows


class SlurmClient:
    """Drain, resume and read nodes with scontrol and sinfo."""

    def __init__(
        self,
        runner: Runner | None = None,
        *,
        timeout: float = 15.0,
        slurm_conf: Path | str | None = None,
        controller: str | None = None,
        scontrol: str = "scontrol",
        sinfo: str = "sinfo",
    ):
        base: Runner = runner or LocalRunner()
        if controller is not None and controller.lower() not in LOCAL_CONTROLLERS:
            base = SshRunner(controller, base=base)
        self.runner = base
        self.timeout = timeout
        self.env: Mapping[str, str] | None = (
            None if slurm_conf is None else {"SLURM_CONF": str(slurm_conf)}
        )
        self.scontrol = scontrol
        self.sinfo = sinfo

    def _run(self, argv: Sequence[str]) -> CommandResult:
        try:
            result = self.runner(argv, timeout=self.timeout, env=self.env)
        except SlurmError:
            raise
        except CommandError as exc:
            raise SlurmError(str(exc), argv=exc.argv, returncode=exc.returncode) from None
        return result

    # --- reads ---

    def show_node_argv(self, node: str) -> list[str]:
        return [self.scontrol, "show", "node", "-o", validate_node(node)]

    def show_node(self, node: str) -> NodeInfo:
        result = self._run(self.show_node_argv(node))
        if not result.ok:
            raise scontrol_error(result, "show node", node)
        return parse_show_node(result.stdout, node)

    def sinfo_argv(self) -> list[str]:
        fmt = SINFO_SEP.join(["%N", "%R", "%T", "%E"])
        return [self.sinfo, "--noheader", "--Node", "--format", fmt]

    def sinfo_rows(self) -> list[SinfoRow]:
        argv = self.sinfo_argv()
        result = self._run(argv)
        if not result.ok:
            raise SlurmError(
                f"sinfo failed: {result.brief()}", argv=tuple(argv), returncode=result.returncode
            )
        return parse_sinfo(result.stdout)

    def partitions(self) -> dict[str, tuple[str, ...]]:
        """Partition name to its nodes (a node may be in several partitions)."""
        out: dict[str, list[str]] = {}
        for row in self.sinfo_rows():
            members = out.setdefault(row.partition, [])
            if row.node not in members:
                members.append(row.node)
        return {p: tuple(sorted(n)) for p, n in out.items()}

    def drained(self) -> dict[str, str | None]:
        """Every drained or draining node and its reason."""
        return {row.node: row.reason for row in self.sinfo_rows() if row.drained}

    def drained_count(self) -> dict[str, int]:
        """Drained (or draining) nodes per partition, whoever drained them."""
        out: dict[str, int] = {}
        for row in self.sinfo_rows():
            out.setdefault(row.partition, 0)
            if row.drained:
                out[row.partition] += 1
        return out

    # --- writes ---

    def drain_argv(self, node: str, reason: str) -> list[str]:
        validate_text(reason, field="reason", limit=512)
        if not reason.strip():
            raise SlurmError("a drain needs a reason")
        return [
            self.scontrol,
            "update",
            f"nodename={validate_node(node)}",
            "state=drain",
            f"reason={reason}",
        ]

    def resume_argv(self, node: str) -> list[str]:
        return [self.scontrol, "update", f"nodename={validate_node(node)}", "state=resume"]

    def _update(self, argv: list[str], what: str, node: str) -> None:
        result = self._run(argv)
        if not result.ok:
            raise scontrol_error(result, what, node)

    def drain(self, node: str, reason: str) -> list[str]:
        argv = self.drain_argv(node, reason)
        self._update(argv, "drain", node)
        return argv

    def resume(self, node: str) -> list[str]:
        argv = self.resume_argv(node)
        self._update(argv, "resume", node)
        return argv
