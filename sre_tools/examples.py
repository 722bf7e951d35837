"""The bundled example: SLO specs, SLI data and an incident log for a small H100 fleet.

The quick start seeds a store with them so that ``sre report`` has something real to show. SLI
data is generated deterministically (fixed seed) for the 30 days before the seeding time and goes
through the same CSV import as user data; the incident log is the shipped CSV, shifted so that
its newest incident is recent. Seeding happens once per store (recorded in its ``meta`` table).
"""

from __future__ import annotations

import io
import math
import random
from importlib import resources
from pathlib import Path

from sre_tools.store import Store

SEED = 20261123
MINUTE = 60
DAY = 86400
META_KEY = "examples_seeded_at"


def data_dir() -> Path:
    return Path(str(resources.files("sre_tools") / "data" / "examples"))


def slo_files() -> list[str]:
    return sorted(str(p) for p in (data_dir() / "slos").glob("*.yaml"))


def incidents_file() -> Path:
    return data_dir() / "incidents.csv"


def _diurnal(t: int) -> float:
    """Load shape: busier in the working day (UTC), quieter at night."""
    hour = (t % DAY) / 3600
    return 1.0 + 0.35 * math.sin((hour - 8) / 24 * 2 * math.pi)


def generate_sli_csv(end: int, days: int = 30) -> str:
    """Per-minute good/total counts for the four example SLOs, ending at ``end`` (exclusive).

    The story: Slurm job launches fail at 10 % for the last 50 minutes (a node fell off the bus
    and jobs land on it: page); the training API has run at 0.4 % errors for 30 hours (a slow
    burn: ticket); GPU node availability and checkpoint writes are within budget.
    """
    rng = random.Random(SEED)  # noqa: S311 - reproducible example data, not security
    end -= end % MINUTE
    start = end - days * DAY
    out = io.StringIO()
    out.write("timestamp,slo,good,total\n")
    for t in range(start, end, MINUTE):
        age = end - t
        shape = _diurnal(t)
        stamp = f"@{t}"
        # Job launches: ~40/min, 0.1 % failing; 10 % in the last 50 minutes; a 3-hour 2 % burst
        # twelve days ago.
        total = max(1, round(40 * shape + rng.gauss(0, 3)))
        p_fail = 0.001
        if age <= 50 * MINUTE:
            p_fail = 0.10
        elif 12 * DAY - 3 * 3600 <= age <= 12 * DAY:
            p_fail = 0.02
        bad = sum(1 for _ in range(total) if rng.random() < p_fail)
        out.write(f"{stamp},slurm-scheduler-job-launch-success,{total - bad},{total}\n")
        # GPU node availability: 128 nodes; usually all healthy, now and then one drained.
        out_nodes = 0
        if rng.random() < 0.35:
            out_nodes = 1
        if 5 * DAY <= age <= 5 * DAY + 6 * 3600:
            out_nodes = 3  # a PSU failure took a rack row out for six hours
        out.write(f"{stamp},slurm-scheduler-gpu-node-availability,{128 - out_nodes},128\n")
        # Training API: ~600 req/min, 0.02 % errors; 0.4 % for the last 30 hours.
        total = max(1, round(600 * shape + rng.gauss(0, 20)))
        p_err = 0.004 if age <= 30 * 3600 else 0.0002
        bad = round(total * p_err + rng.gauss(0, math.sqrt(total * p_err)))
        bad = min(total, max(0, bad))
        out.write(f"{stamp},training-api-availability,{total - bad},{total}\n")
        # Checkpoint writes: 20/min; a failed write now and then makes a bad minute.
        bad = 1 if rng.random() < 0.003 else 0
        out.write(f"{stamp},training-api-checkpoint-writes,{20 - bad},20\n")
    return out.getvalue()


def seeded_at(store: Store) -> int | None:
    rows = store.query("SELECT value FROM meta WHERE key = ?", (META_KEY,))
    return int(str(rows[0][0])) if rows else None


def seed(store: Store, now: int) -> bool:
    """Seed ``store`` with the example SLI data and incidents; False if it already was."""
    from sre_tools.reliability.incidents import import_csv as import_incidents
    from sre_tools.sli.store import import_csv as import_sli

    if seeded_at(store) is not None:
        return False
    end = now - now % MINUTE
    import_sli(store, generate_sli_csv(end), "examples:sli", force=True)
    import_incidents(store, shifted_incidents(end), "examples:incidents.csv", force=True)
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (META_KEY, str(end)),
        )
    return True


def shifted_incidents(end: int) -> str:
    """The shipped incident CSV with every time moved so that it ends just before ``end``."""
    import csv
    from datetime import UTC, datetime

    text = incidents_file().read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    time_cols = [
        i for i, name in enumerate(header) if name.strip() in {"started", "resolved", "detected"}
    ]

    def parse(value: str) -> int:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())

    latest = max(parse(r[i]) for r in body for i in time_cols if i < len(r) and r[i].strip())
    shift = (end - 2 * 3600) - latest
    shift -= shift % MINUTE
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in body:
        row = list(r)
        for i in time_cols:
            if i < len(row) and row[i].strip():
                moved = datetime.fromtimestamp(parse(row[i]) + shift, tz=UTC)
                row[i] = moved.strftime("%Y-%m-%dT%H:%M:%SZ")
        writer.writerow(row)
    return out.getvalue()
