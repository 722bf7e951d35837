"""Drill results in the store: one row per run and per expectation, and the report over them.

:func:`record_run` turns a run's journal into rows (a dry run is not recorded; a recovered run
is written again with its final status). The times are the journal's: an expectation's
``elapsed`` (from the fault in place to its first satisfied probe) under the name its check
``measures`` (detect, alert, drain, recover), and the run's ``recover_seconds`` (from the first
rollback to the steady state restored). :func:`drill_report` aggregates them per drill;
:func:`measured_times` gives ``sre reliability report`` its MTTD and MTTR from drills, kept apart
from incidents.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sre_tools.chaos.model import MEASURES
from sre_tools.exceptions import StoreError
from sre_tools.store import Store, where
from sre_tools.timeutil import iso, parse_time

_TABLES = ("drill_runs", "drill_expectations")

# How a run's final status reads in a report: the status word whose colour it takes
# (sre_tools.text.LABEL_STYLES): passed green, failed or in error red, stopped yellow, not run grey.
STATUS_LABEL = {
    "passed": "ok",
    "recovered": "ok",
    "nothing-to-recover": "ok",
    "failed": "failed",
    "error": "failed",
    "aborted": "warn",
    "interrupted": "warn",
    "skipped": "skipped",
    "dry-run": "skipped",
}


def _ts(value: Any) -> float | None:
    return None if value is None else parse_time(str(value)).timestamp()


def drill_name(start: Mapping[str, Any]) -> str:
    """The catalog name or file stem a run came from, else its title."""
    source = str(start.get("source") or "")
    if source:
        return Path(source).stem
    return str((start.get("experiment") or {}).get("title") or "?")


def record_run(store: Store, events: Sequence[Mapping[str, Any]]) -> bool:
    """Write (or rewrite) a run's rows from its journal; False for a dry run or a run that has
    not ended."""
    start = events[0]
    ends = [e for e in events if e["event"] == "run-end"]
    if not start.get("execute") or not ends:
        return False
    end = ends[-1]
    run_id = str(start["run_id"])
    nodes = next((list(e["nodes"]) for e in events if e["event"] == "targets-resolved"), [])
    recover_seconds = next(
        (e["recover_seconds"] for e in reversed(ends) if e.get("recover_seconds") is not None),
        None,
    )
    expectations = {}
    for e in events:
        if e["event"] == "expectation" and e.get("status") != "skipped":
            expectations[(str(e["name"]), str(e["node"]))] = e
    try:
        _write(store, run_id, start, end, nodes, recover_seconds, expectations)
    except StoreError as exc:
        detail = str(exc).removeprefix(f"{store.label}: ")
        raise StoreError(f"{store.label}: cannot record drill run {run_id}: {detail}") from None
    return True


def _write(
    store: Store,
    run_id: str,
    start: Mapping[str, Any],
    end: Mapping[str, Any],
    nodes: list[Any],
    recover_seconds: Any,
    expectations: Mapping[tuple[str, str], Mapping[str, Any]],
) -> None:
    with store.transaction() as cur:
        cur.execute("DELETE FROM drill_runs WHERE run_id = ?", (run_id,))
        cur.execute(
            "INSERT INTO drill_runs (run_id, drill, nodes, status, started, ended, "
            "recover_seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                drill_name(start),
                json.dumps(nodes),
                str(end["status"]),
                _ts(start["ts"]),
                _ts(end["ts"]),
                recover_seconds,
            ),
        )
        cur.executemany(
            "INSERT INTO drill_expectations (run_id, name, node, met, measures, seconds) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (run_id, name, node, int(bool(e.get("met"))), e.get("measures"), e.get("elapsed"))
                for (name, node), e in expectations.items()
            ],
        )


def _has_tables(store: Store) -> bool:
    return store.has_tables(*_TABLES)


@dataclass(frozen=True)
class RunRow:
    run_id: str
    drill: str
    nodes: tuple[str, ...]
    status: str
    started: float
    ended: float | None
    recover_seconds: float | None
    expectations: tuple[tuple[str, str, bool, str | None, float | None], ...]


def load_runs(
    store: Store,
    *,
    since: float | None = None,
    until: float | None = None,
    drill: str | None = None,
) -> list[RunRow]:
    """Recorded runs that started in ``[since, until)``, oldest first; none from a store that
    has no drill tables (written by an older sre_tools and opened read-only)."""
    if not _has_tables(store):
        return []
    filters, params = where(("started >= ?", since), ("started < ?", until), ("drill = ?", drill))
    sql = "SELECT run_id, drill, nodes, status, started, ended, recover_seconds FROM drill_runs"
    runs = []
    for run_id, name, nodes, status, started, ended, recover in store.query(
        f"{sql}{filters} ORDER BY started, run_id", params
    ):
        exp_rows = store.query(
            "SELECT name, node, met, measures, seconds FROM drill_expectations "
            "WHERE run_id = ? ORDER BY name, node",
            (run_id,),
        )
        runs.append(
            RunRow(
                str(run_id),
                str(name),
                tuple(json.loads(str(nodes))),
                str(status),
                float(str(started)),
                None if ended is None else float(str(ended)),
                None if recover is None else float(str(recover)),
                tuple(
                    (
                        str(n),
                        str(node),
                        bool(met),
                        None if m is None else str(m),
                        None if s is None else float(str(s)),
                    )
                    for n, node, met, m, s in exp_rows
                ),
            )
        )
    return runs


def _times(runs: Sequence[RunRow]) -> dict[str, list[float]]:
    """Measured seconds per kind. ``recover``: an expectation that ``measures: recover`` (a fault
    healed without rollback), else the run's rollback-to-steady-state time."""
    out: dict[str, list[float]] = {m: [] for m in MEASURES}
    for run in runs:
        own_recover = False
        for _, _, met, measures, seconds in run.expectations:
            if measures in out and met and seconds is not None:
                out[measures].append(seconds)
                own_recover = own_recover or measures == "recover"
        if not own_recover and run.recover_seconds is not None:
            out["recover"].append(run.recover_seconds)
    return out


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "median_seconds": None, "max_seconds": None, "mean_seconds": None}
    return {
        "count": len(values),
        "median_seconds": round(statistics.median(values), 3),
        "max_seconds": round(max(values), 3),
        "mean_seconds": round(statistics.fmean(values), 3),
    }


def drill_report(runs: Sequence[RunRow]) -> list[dict[str, Any]]:
    """Per drill: runs by status, pass/fail per expectation, and the measured times."""
    by_drill: dict[str, list[RunRow]] = {}
    for run in runs:
        by_drill.setdefault(run.drill, []).append(run)
    out = []
    for name, group in sorted(by_drill.items()):
        statuses: dict[str, int] = {}
        expectations: dict[str, dict[str, Any]] = {}
        for run in group:
            statuses[run.status] = statuses.get(run.status, 0) + 1
            for exp_name, _, met, measures, _ in run.expectations:
                row = expectations.setdefault(
                    exp_name, {"name": exp_name, "measures": measures, "passed": 0, "failed": 0}
                )
                row["passed" if met else "failed"] += 1
        out.append(
            {
                "drill": name,
                "runs": len(group),
                "statuses": dict(sorted(statuses.items())),
                "first": iso(group[0].started),
                "last": iso(group[-1].started),
                "expectations": list(expectations.values()),
                "times": {k: _stats(v) for k, v in _times(group).items()},
            }
        )
    return out


def measured_times(runs: Sequence[RunRow]) -> dict[str, Any]:
    """MTTD (mean time from the fault to detection) and MTTR (mean time to recover) measured by
    drills: a proof of the tooling, never mixed into the incident figures."""
    times = _times(runs)
    detect, recover = _stats(times["detect"]), _stats(times["recover"])
    return {
        "runs": len(runs),
        "mttd_seconds": detect["mean_seconds"],
        "mttr_seconds": recover["mean_seconds"],
        "detect": detect,
        "recover": recover,
        "alert": _stats(times["alert"]),
        "drain": _stats(times["drain"]),
    }
