"""nccl-tests ``all_reduce_perf``: parse its text output and judge the bus bandwidth.

The format (src/util.cu of nccl-tests, cited in tests/fixtures/diag/README.md): ``#`` comment
lines (the version, the options, one ``#  Rank N Group G Pid P on HOST device D [BUS] NAME`` line
per rank, the column headers), one row per message size (``size count type redop root`` then
``time algbw busbw #wrong`` out of place and again in place), and a footer ``# Out of bounds
values : N OK|FAILED`` and ``# Avg bus bandwidth : X``. A failure prints ``HOST: Test NCCL
failure FILE:LINE 'reason'`` (or ``Test CUDA failure``) and ends the run early.

Which sizes count: rows of at least ``diag.nccl.large_message_bytes`` (16 GiB for H100, as
Azure's acceptance runs it); the judged value is the best bus bandwidth among them, out of place
or in place. Small messages cannot reach the fabric's bandwidth and are never judged.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from sre_tools.diag.model import DiagRun, Inventory, Kind
from sre_tools.diag.outcome import check_id
from sre_tools.exceptions import ValidationError
from sre_tools.health.model import Action, Finding, Severity

CHECK = check_id(Kind.NCCL, "all_reduce")
_RANK = re.compile(r"^#\s+Rank\s+(\d+)\s+Group\s+(\d+)\s+Pid\s+(\d+)\s+on\s+(\S+)\s+device\s+(\d+)")
_AVG = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*(\S+)")
_OOB = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)")
_FAILURE = re.compile(r"Test (?:NCCL|CUDA) failure|Test failure")
_VERSION = re.compile(r"^#\s*nccl-tests version (\S+)")
MAX_LINE_CHARS = 4096


@dataclass(frozen=True)
class Row:
    size: int
    count: int
    type: str
    redop: str
    oop_busbw: float
    ip_busbw: float
    oop_wrong: int | None
    ip_wrong: int | None

    @property
    def busbw(self) -> float:
        return max(self.oop_busbw, self.ip_busbw)


@dataclass(frozen=True)
class NcclOutput:
    rows: tuple[Row, ...]
    hosts: tuple[str, ...]  # one per rank line, in rank order
    avg_busbw: float | None
    out_of_bounds: int | None
    failures: tuple[str, ...]
    version: str = ""
    collective: str = ""

    @property
    def ranks(self) -> int:
        return len(self.hosts)


def _num(text: str, source: str, line: int, column: str, kind: type = float) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise ValidationError(
            f"line {line}: {column} is not a number: {text[:40]!r}", source=source, field=column
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"line {line}: {column} is not finite", source=source, field=column)
    return value


def _wrong(text: str, source: str, line: int) -> int | None:
    if text == "N/A":
        return None
    return int(_num(text, source, line, "#wrong", float))


def parse(text: str, source: str) -> NcclOutput:
    rows: list[Row] = []
    hosts: list[str] = []
    failures: list[str] = []
    avg: float | None = None
    oob: int | None = None
    version = ""
    collective = ""
    per_iter = False
    for number, line in enumerate(text.splitlines(), 1):
        if len(line) > MAX_LINE_CHARS:
            raise ValidationError(
                f"line {number}: longer than {MAX_LINE_CHARS} characters", source=source
            )
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if m := _RANK.match(stripped):
                hosts.append(m.group(4))
            elif m := _AVG.match(stripped):
                avg = _num(m.group(1), source, number, "Avg bus bandwidth")
            elif m := _OOB.match(stripped):
                oob = int(m.group(1))
            elif m := _VERSION.match(stripped):
                version = m.group(1)
            elif "Collective test starting:" in stripped:
                collective = stripped.split(":", 1)[1].strip()
            elif "i_min" in stripped:
                per_iter = True
            continue
        if _FAILURE.search(stripped):
            failures.append(stripped[:500])
            continue
        cols = stripped.split()
        if not cols[0].isdigit():
            continue  # NCCL INFO/WARN lines (NCCL_DEBUG), "rank=N #wrong=M", MPI chatter
        need = 21 if per_iter else 13
        if len(cols) < need:
            raise ValidationError(
                f"line {number}: a result row needs {need} columns, found {len(cols)}",
                source=source,
                field="row",
            )
        ip = 13 if per_iter else 9
        rows.append(
            Row(
                _num(cols[0], source, number, "size", int),
                _num(cols[1], source, number, "count", int),
                cols[2],
                cols[3],
                _num(cols[7], source, number, "busbw"),
                _num(cols[ip + 2], source, number, "busbw"),
                _wrong(cols[8], source, number),
                _wrong(cols[ip + 3], source, number),
            )
        )
    if not rows and not failures and avg is None and not hosts:
        raise ValidationError(
            "not nccl-tests output (no result rows, rank lines or 'Avg bus bandwidth')",
            source=source,
        )
    return NcclOutput(tuple(rows), tuple(hosts), avg, oob, tuple(failures), version, collective)


def judge(
    out: NcclOutput, limits: dict[str, Any], profile: str, expected_gpus: int | None = None
) -> list[Finding]:
    """``limits``: the profile's ``diag.nccl``; ``expected_gpus``: the profile's GPUs per node
    (the one-node floor holds for that many ranks only)."""
    findings: list[Finding] = []
    nodes = sorted(set(out.hosts))
    multinode = len(nodes) > 1
    base: dict[str, Any] = {
        "ranks": out.ranks,
        "nodes": nodes,
        "avg_busbw_gbps": out.avg_busbw,
        "rows": len(out.rows),
    }
    for failure in out.failures:
        findings.append(
            Finding(
                check_id(Kind.NCCL, "error"),
                Severity.UNKNOWN,
                f"all_reduce_perf failed: {' '.join(failure.split())}",
                evidence=dict(base, line=failure),
            )
        )
    wrong = [r for r in out.rows if (r.oop_wrong or 0) > 0 or (r.ip_wrong or 0) > 0]
    if wrong or (out.out_of_bounds or 0) > 0:
        sizes = [r.size for r in wrong]
        findings.append(
            Finding(
                check_id(Kind.NCCL, "correctness"),
                Severity.CRIT,
                f"all_reduce results were wrong (out of bounds values: {out.out_of_bounds}, "
                f"sizes with wrong elements: {sizes[:5]})",
                Action.DRAIN_AND_RESET,
                evidence=dict(base, wrong_sizes=sizes, out_of_bounds=out.out_of_bounds),
            )
        )
    if out.avg_busbw is None and not out.failures:
        findings.append(
            Finding(
                check_id(Kind.NCCL, "incomplete"),
                Severity.UNKNOWN,
                f"all_reduce_perf output ends without its summary ({len(out.rows)} rows): "
                "the run was cut short",
                evidence=base,
            )
        )
    large = int(limits.get("large_message_bytes", 0) or 0)
    judged = [r for r in out.rows if r.size >= large]
    if multinode:
        per_nic = float(limits.get("multinode_busbw_per_nic_min_gbps", 0) or 0)
        nics = int(limits.get("nics_per_node", 0) or 0)
        floor = per_nic * nics
        basis = f"{len(nodes)} nodes: {per_nic:g} GB/s per NIC x {nics} NICs"
    else:
        floor = float(limits.get("busbw_min_gbps", 0) or 0)
        basis = f"one node, {out.ranks} GPUs"
        if floor and expected_gpus is not None and out.ranks != expected_gpus:
            # The floor is for the whole node; a run on fewer GPUs is recorded, not judged.
            floor = 0.0
            basis += f" (the floor is for {expected_gpus})"
    band = float(limits.get("warn_band_percent", 5))
    if out.failures or (out.avg_busbw is None and out.rows and not judged):
        pass  # the run did not finish: the findings above say why, not a missing size
    elif out.rows and not judged:
        findings.append(
            Finding(
                CHECK,
                Severity.UNKNOWN,
                f"no message of at least {large} bytes (largest {max(r.size for r in out.rows)}):"
                " run all_reduce_perf with a larger -e",
                evidence=dict(base, large_message_bytes=large),
            )
        )
    elif judged:
        best = max(judged, key=lambda r: r.busbw)
        evidence = dict(
            base,
            busbw_gbps=best.busbw,
            size_bytes=best.size,
            floor_gbps=floor or None,
            basis=basis,
            profile=profile,
        )
        if not floor:
            findings.append(
                Finding(
                    CHECK,
                    Severity.SKIPPED,
                    f"all_reduce bus bandwidth {best.busbw:.1f} GB/s at {best.size} bytes "
                    f"({basis}): no floor in profile {profile}",
                    evidence=evidence,
                )
            )
        else:
            severity = Severity.OK
            verb = "at or above"
            if best.busbw < floor:
                severity, verb = Severity.CRIT, "below the floor of"
            elif best.busbw < floor * (1 + band / 100.0):
                severity, verb = Severity.WARN, f"within {band:g} % of the floor of"
            findings.append(
                Finding(
                    CHECK,
                    severity,
                    f"all_reduce bus bandwidth {best.busbw:.1f} GB/s at {best.size} bytes "
                    f"({basis}), {verb} {floor:g} GB/s",
                    # A node that cannot reach its NVLink (or NIC) bandwidth: support case.
                    Action.CONTACT_SUPPORT if severity is Severity.CRIT else Action.NONE,
                    evidence=evidence,
                )
            )
    if not findings:
        findings.append(
            Finding(
                CHECK, Severity.UNKNOWN, "all_reduce_perf printed no result rows", evidence=base
            )
        )
    return findings


def to_run(
    out: NcclOutput,
    inventory: Inventory,
    limits: dict[str, Any],
    profile: str,
    *,
    expected_gpus: int | None = None,
    node: str,
    started: float,
    ended: float,
    source: str,
    rc: int | None = None,
) -> DiagRun:
    findings = judge(out, limits, profile, expected_gpus)
    if rc not in (None, 0) and not any(f.severity is Severity.CRIT for f in findings):
        findings.append(
            Finding(
                check_id(Kind.NCCL, "exit_status"),
                Severity.UNKNOWN,
                f"all_reduce_perf exited with status {rc}",
                evidence={"exit_code": rc},
            )
        )
    return DiagRun(
        Kind.NCCL, 0, node, started, ended, tuple(findings), source, rc, out.version, inventory
    )
