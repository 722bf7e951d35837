"""A small SLO spec and store for ``sre slo gate``: three SLOs of one Sloth spec (service
``jobs``, 99 %, 30 days), judged at :data:`AT` or the time given: ``jobs-paging`` burns fast
(both page pairs fire, the budget is nearly untouched), ``jobs-healthy``, ``jobs-spent`` (95 %
of its budget spent early in the period, nothing burning now)."""

from __future__ import annotations

from pathlib import Path

from sre_tools.sli.store import import_csv
from sre_tools.store import Store
from sre_tools.timeutil import parse_time

AT = "2026-11-20T12:00:00Z"
EARLY, HALF_HOUR, NOW = -19 * 86400, -30 * 60, -2 * 60  # seconds before the time judged
ROWS = {
    "paging": [(EARLY, 1_000_000, 1_000_000), (HALF_HOUR, 50, 100), (NOW, 50, 100)],
    "healthy": [(EARLY, 1_000_000, 1_000_000), (NOW, 100, 100)],
    "spent": [(EARLY, 990_500, 1_000_000), (NOW, 100, 100)],
}
SLO = """\
  - name: {name}
    objective: 99
    sli: {{events: {{error_query: 'sum(rate(bad[{{{{.window}}}}]))',
                    total_query: 'sum(rate(all[{{{{.window}}}}]))'}}}}
    alerting: {{name: Jobs{title}}}
"""


def write_gate_data(root: Path, at: float | None = None) -> tuple[str, str]:
    """Write ``jobs.yaml`` and ``store.db`` under ``root``, the rows before ``at`` (epoch
    seconds; default :data:`AT`); return their paths."""
    end = int(parse_time(AT).timestamp() if at is None else at) // 60 * 60
    spec = root / "jobs.yaml"
    slos = "".join(SLO.format(name=n, title=n.title()) for n in ROWS)
    spec.write_text(f"version: prometheus/v1\nservice: jobs\nslos:\n{slos}", encoding="utf-8")
    lines = ["timestamp,slo,good,total"] + [
        f"@{end + ts},jobs-{name},{good},{total}"
        for name, rows in ROWS.items()
        for ts, good, total in rows
    ]
    with Store(root / "store.db") as store:
        import_csv(store, "\n".join(lines) + "\n", "rows.csv")
    return str(spec), str(root / "store.db")
