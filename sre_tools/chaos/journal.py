"""The journal of a drill run: append-only JSON lines, each event fsync'd before the run goes on.

Event types follow AWS FIS's experiment log (``run-start``, ``targets-resolved``, ``action-start``,
``action-end``, ``action-error``, ``probe-result``, ``stop-condition``, ``rollback-start``,
``rollback-end``, ``run-end``), plus ``hypothesis``, ``expectation``, ``abort`` and ``recover``.
Every line is ``{"ts", "run_id", "event", ...details}``. Because each event reaches the disk
before the next step, a run killed with SIGKILL leaves a journal that says which rollbacks are
outstanding (:func:`sre_tools.chaos.runner.recover`). :func:`to_ctk_journal` turns a journal into
a Chaos Toolkit journal document.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sre_tools.exceptions import StoreError, ValidationError
from sre_tools.inputs import MAX_REPORT_BYTES, read_text_capped
from sre_tools.timeutil import iso

EVENT_TYPES = frozenset(
    {
        "run-start",
        "targets-resolved",
        "action-start",
        "action-end",
        "action-error",
        "probe-result",
        "hypothesis",
        "expectation",
        "stop-condition",
        "abort",
        "rollback-start",
        "rollback-end",
        "recover",
        "run-end",
    }
)


def default_journal_dir() -> Path:
    """``$SRE_DRILL_DIR``, else ``$XDG_STATE_HOME/sre-tools/drills`` (``~/.local/state``)."""
    explicit = os.environ.get("SRE_DRILL_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sre-tools" / "drills"


def journal_path(directory: Path, run_id: str) -> Path:
    return directory / f"{run_id}.jsonl"


class Journal:
    """An open journal; :meth:`event` appends one line and fsyncs it."""

    def __init__(self, path: Path, run_id: str, *, clock: Callable[[], float] = time.time):
        self.path = path
        self.run_id = run_id
        self.clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open drill journal: {exc.strerror or exc}") from None

    def event(self, event: str, **details: Any) -> dict[str, Any]:
        if event not in EVENT_TYPES:
            raise ValueError(f"unknown journal event {event!r}")
        record = {"ts": iso(self.clock()), "run_id": self.run_id, "event": event, **details}
        line = json.dumps(record, sort_keys=False, default=str, allow_nan=False) + "\n"
        try:
            os.write(self._fd, line.encode())
            os.fsync(self._fd)
        except OSError as exc:
            raise StoreError(
                f"{self.path}: cannot write drill journal: {exc.strerror or exc}"
            ) from None
        return record

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_events(text: str, source: str) -> list[dict[str, Any]]:
    """Events of a journal text. A last line without its newline (the process died while writing
    it) is ignored; any other bad line is a validation error naming the line."""
    lines = text.split("\n")
    complete, tail = lines[:-1], lines[-1]
    events = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"line {number}: not valid JSON: {exc.msg}", source=source
            ) from None
        if not isinstance(record, dict) or record.get("event") not in EVENT_TYPES:
            raise ValidationError(f"line {number}: not a drill journal event", source=source)
        problem = _shape_problem(record)
        if problem:
            raise ValidationError(f"line {number}: {problem}", source=source)
        events.append(record)
    del tail  # a torn write: the event never completed
    if not events or events[0]["event"] != "run-start":
        raise ValidationError("not a drill journal (no run-start event)", source=source)
    return events


# The fields the readers (status, report, Chaos Toolkit journal) use, and their JSON types.
_FIELDS: dict[str, type] = {
    "ts": str,
    "run_id": str,
    "experiment": dict,
    "status": str,
    "nodes": list,
}


def _shape_problem(record: dict[str, Any]) -> str | None:
    """Why an event is not shaped as this module writes it (a journal edited or damaged)."""
    for key in ("ts", "run_id"):
        if key not in record:
            return f"no {key!r}"
    for key, kind in _FIELDS.items():
        if key in record and record[key] is not None and not isinstance(record[key], kind):
            return f"{key}: expected a JSON {'object' if kind is dict else kind.__name__}"
    if "nodes" in record and not all(isinstance(n, str) for n in record["nodes"]):
        return "nodes: expected a list of names"
    return None


def read_events(path: Path) -> list[dict[str, Any]]:
    text, source = read_text_capped(str(path), MAX_REPORT_BYTES, what="drill journal")
    return parse_events(text, source)


def of_type(events: list[dict[str, Any]], *types: str) -> Iterator[dict[str, Any]]:
    return (e for e in events if e["event"] in types)


def _activity_runs(
    events: list[dict[str, Any]], start: str, ends: tuple[str, ...]
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    open_runs: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in events:
        key = (e.get("phase"), e.get("index"), e.get("node"))
        if e["event"] == start:
            open_runs[key] = e
        elif e["event"] in ends and key in open_runs:
            begun = open_runs.pop(key)
            run: dict[str, Any] = {
                "activity": e.get("activity") or begun.get("activity"),
                "status": e.get("status", "failed"),
                "start": begun["ts"],
                "end": e["ts"],
                "node": e.get("node"),
            }
            if "output" in e:
                run["output"] = e["output"]
            if e.get("error"):
                run["exception"] = [e["error"]]
            runs.append(run)
    for begun in open_runs.values():  # started, never ended: the run was killed
        runs.append(
            {
                "activity": begun.get("activity"),
                "status": "failed",
                "start": begun["ts"],
                "end": None,
                "node": begun.get("node"),
                "exception": ["interrupted"],
            }
        )
    return runs


def to_ctk_journal(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A Chaos Toolkit journal (``experiment``, ``status``, ``deviated``, ``steady_states``,
    ``run``, ``rollbacks``, ``start``, ``end``) built from our events. Each activity run also
    carries the ``node`` it ran on."""
    start = events[0]
    end = next(of_type(events, "run-end"), None)
    hypotheses: dict[str, Any] = {}
    for e in of_type(events, "hypothesis"):
        hypotheses[e["when"]] = {"steady_state_met": e.get("met"), "probes": e.get("probes", [])}
    status = end["status"] if end else "interrupted"
    ctk_status = {"passed": "completed", "dry-run": "completed", "error": "failed"}.get(
        status, status
    )
    return {
        "chaoslib-version": None,
        "platform": start.get("host"),
        "node": start.get("host"),
        "experiment": start.get("experiment"),
        "start": start["ts"],
        "end": end["ts"] if end else None,
        "status": ctk_status,
        "deviated": bool(end and end.get("deviated")),
        "steady_states": {
            "before": hypotheses.get("before"),
            "after": hypotheses.get("after-rollback"),
            "during": [],
        },
        "run": _activity_runs(events, "action-start", ("action-end", "action-error")),
        "rollbacks": _activity_runs(events, "rollback-start", ("rollback-end",)),
        "x-sre": {
            "run_id": start["run_id"],
            "status": status,
            "execute": start.get("execute"),
            "operator": start.get("operator"),
            "reason": start.get("reason"),
            "targets": next((e["nodes"] for e in of_type(events, "targets-resolved")), []),
        },
    }


def summary(events: list[dict[str, Any]]) -> Mapping[str, Any]:
    start = events[0]
    end = next(of_type(events, "run-end"), None)
    return {
        "run_id": start["run_id"],
        "title": (start.get("experiment") or {}).get("title"),
        "started": start["ts"],
        "ended": end["ts"] if end else None,
        "status": end["status"] if end else "unfinished",
        "execute": start.get("execute"),
        "operator": start.get("operator"),
        "targets": next((e["nodes"] for e in of_type(events, "targets-resolved")), []),
    }
