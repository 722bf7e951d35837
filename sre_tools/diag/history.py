"""Diagnostic results in the store: every SQL statement on ``diag_runs`` / ``diag_results``.

The tables are created with the rest of the schema (sre_tools/store.py). Statements here are
plain SQL with ``?`` parameters, nothing SQLite-only, so that a PostgreSQL store can run them with
its own parameter style.

:func:`latest` is the library call the remediation engine uses: "the newest level-2 DCGM result
for node n17 since the GPU reset", and :func:`passed` says whether it passed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sre_tools.diag.model import DiagRun, Kind
from sre_tools.health.model import Finding, Severity
from sre_tools.store import where

_INSERT_RUN = (
    "INSERT INTO diag_runs (run_id, node, kind, level, started, ended, status, exit_code, "
    "source, tool_version, driver_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RESULT = (
    "INSERT INTO diag_results (run_id, seq, check_id, severity, action, summary, gpu_index, "
    "gpu_uuid, gpu_serial, vbios_version, inforom_version, evidence) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RUN_COLUMNS = (
    "run_id, node, kind, level, started, ended, status, exit_code, source, tool_version, "
    "driver_version"
)


@dataclass(frozen=True)
class StoredRun:
    run_id: str
    node: str
    kind: str
    level: int
    started: float
    ended: float
    status: str
    exit_code: int | None
    source: str
    tool_version: str
    driver_version: str

    @property
    def passed(self) -> bool:
        """No finding worse than OK (skipped counts as not run, so a run of only skips fails)."""
        return self.status == Severity.OK.value

    def to_dict(self) -> dict[str, Any]:
        from sre_tools.timeutil import iso

        return {
            "run_id": self.run_id,
            "node": self.node,
            "kind": self.kind,
            "level": self.level,
            "started": iso(self.started),
            "ended": iso(self.ended),
            "status": self.status,
            "exit_code": self.exit_code,
            "source": self.source,
            "tool_version": self.tool_version,
            "driver_version": self.driver_version,
        }


def _status(run: DiagRun) -> str:
    report = run.report
    if all(f.severity is Severity.SKIPPED for f in run.findings):
        return Severity.SKIPPED.value
    return report.severity.value


def record(store: Any, runs: list[DiagRun]) -> list[str]:
    """Store ``runs`` in one transaction (all or none); their run ids."""
    ids = []
    with store.transaction() as cur:
        for run in runs:
            run_id = uuid.uuid4().hex
            ids.append(run_id)
            cur.execute(
                _INSERT_RUN,
                (
                    run_id,
                    run.node,
                    run.kind.value,
                    run.level,
                    run.started,
                    run.ended,
                    _status(run),
                    run.exit_code,
                    run.source,
                    run.tool_version,
                    run.inventory.driver_version,
                ),
            )
            for seq, f in enumerate(run.findings):
                info = run.inventory.gpu(f.gpu.index) if f.gpu is not None else None
                serial = str(f.evidence.get("serial", "")) or (info.serial if info else "")
                if info is not None and info.serial and serial and info.serial != serial:
                    # The finding's GPU (by the tool's serial) is not NVML's GPU at that index
                    # (diag.dcgm.identity): attach none of NVML's identity to it.
                    info = None
                cur.execute(
                    _INSERT_RESULT,
                    (
                        run_id,
                        seq,
                        f.check,
                        f.severity.value,
                        f.action.value,
                        f.summary,
                        None if f.gpu is None else f.gpu.index,
                        (f.gpu.uuid if f.gpu else "") or (info.uuid if info else ""),
                        serial,
                        info.vbios_version if info else "",
                        info.inforom_version if info else "",
                        json.dumps(f.evidence, sort_keys=True, default=str),
                    ),
                )
    return ids


def _run(row: tuple[Any, ...]) -> StoredRun:
    return StoredRun(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        int(row[3]),
        float(row[4]),
        float(row[5]),
        str(row[6]),
        None if row[7] is None else int(row[7]),
        str(row[8]),
        str(row[9]),
        str(row[10]),
    )


def latest(
    store: Any,
    node: str,
    *,
    kind: Kind | str = Kind.DCGM,
    level: int | None = None,
    since: float | None = None,
) -> StoredRun | None:
    """The newest run of ``kind`` on ``node`` that ended at or after ``since``; with ``level``,
    only runs of at least that level (a level-3 run covers what level 2 tests)."""
    filters, params = where(
        ("node = ?", node),
        ("kind = ?", str(Kind(kind).value)),
        ("level >= ?", level),
        ("ended >= ?", since),
    )
    rows = store.query(
        f"SELECT {_RUN_COLUMNS} FROM diag_runs{filters} ORDER BY ended DESC, run_id DESC LIMIT 1",
        params,
    )
    return _run(rows[0]) if rows else None


def passed(store: Any, node: str, *, level: int = 2, since: float | None = None) -> bool:
    """Whether the newest DCGM run of at least ``level`` since ``since`` passed."""
    run = latest(store, node, kind=Kind.DCGM, level=level, since=since)
    return run is not None and run.passed


def history(
    store: Any,
    *,
    node: str | None = None,
    serial: str | None = None,
    kind: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Per-GPU results, newest first: a GPU's trend by serial across nodes, replacements and
    reboots, or a node's by name."""
    sql = (
        "SELECT r.run_id, r.node, r.kind, r.level, r.ended, r.driver_version, d.check_id, "
        "d.severity, d.action, d.summary, d.gpu_index, d.gpu_serial, d.gpu_uuid, "
        "d.vbios_version, d.inforom_version FROM diag_runs r JOIN diag_results d "
        "ON d.run_id = r.run_id"
    )
    filters, params = where(
        ("r.node = ?", node), ("d.gpu_serial = ?", serial), ("r.kind = ?", kind)
    )
    from sre_tools.timeutil import iso

    keys = (
        "run_id", "node", "kind", "level", "ended", "driver_version", "check", "severity",
        "action", "summary", "gpu_index", "gpu_serial", "gpu_uuid", "vbios_version",
        "inforom_version",
    )  # fmt: skip
    out = []
    ordered = f"{sql}{filters} ORDER BY r.ended DESC, r.run_id, d.seq LIMIT ?"
    for row in store.query(ordered, (*params, int(limit))):
        item: dict[str, Any] = dict(zip(keys, row, strict=True))
        item["ended"] = iso(float(item["ended"]))
        out.append(item)
    return out


def runs(store: Any, *, node: str | None = None, limit: int = 20) -> list[StoredRun]:
    filters, params = where(("node = ?", node))
    sql = f"SELECT {_RUN_COLUMNS} FROM diag_runs{filters} ORDER BY ended DESC, run_id DESC LIMIT ?"
    return [_run(r) for r in store.query(sql, (*params, int(limit)))]


def run_findings(store: Any, run_id: str) -> tuple[Finding, ...]:
    """The findings of one stored run, in their order (the remediation engine judges a stored
    run as it judges one given on the command line)."""
    from sre_tools.health.model import Action, GpuRef

    rows = store.query(
        "SELECT check_id, severity, action, summary, gpu_index, gpu_uuid, evidence "
        "FROM diag_results WHERE run_id = ? ORDER BY seq",
        (run_id,),
    )
    out = []
    for check, severity, action, summary, gpu_index, gpu_uuid, evidence in rows:
        try:
            extra = json.loads(str(evidence)) if evidence else {}
        except ValueError:
            extra = {}
        out.append(
            Finding(
                str(check),
                Severity(str(severity)),
                str(summary),
                Action(str(action)),
                None if gpu_index is None else GpuRef(int(str(gpu_index)), str(gpu_uuid or "")),
                extra if isinstance(extra, dict) else {},
            )
        )
    return tuple(out)
