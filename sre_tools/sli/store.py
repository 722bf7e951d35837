"""SLI counts in the embedded store: record, import CSV, and read windows back.

A bucket holds the good and total event counts of one SLO over ``[start, start + bucket)``; a
window ``[at - W, at)`` sums the buckets that start inside it, so windows are exact when ``at`` and
``W`` are multiples of the bucket size (1 minute by default).

CSV import format (header required): ``timestamp,slo,good,total``; ``timestamp`` is ISO-8601 or
``@unix``; ``slo`` is the SLO id (``<service>-<name>``). Each import is one transaction, and the
file's sha256 is recorded so that the same file is not counted twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sre_tools.exceptions import ValidationError
from sre_tools.progress import EVERY, Progress, rows_in
from sre_tools.slo.model import SLO, BudgetingMethod
from sre_tools.slo.promql import slice_threshold
from sre_tools.store import Store
from sre_tools.text import printable
from sre_tools.timeutil import MAX_FUTURE_SECONDS, parse_time

DEFAULT_BUCKET_SECONDS = 60
CSV_HEADER = ("timestamp", "slo", "good", "total")
MAX_COUNT = 1e15
_UPSERT = (
    "INSERT INTO sli_buckets (slo, start, good, total) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (slo, start) DO UPDATE SET good = sli_buckets.good + excluded.good, "
    "total = sli_buckets.total + excluded.total"
)


@dataclass(frozen=True)
class Sample:
    slo: str
    start: int
    good: float
    total: float


def _count(text: object, field: str, source: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValidationError(
            f"expected a number, got {text!r}", source=source, field=field
        ) from None
    if not math.isfinite(value) or value < 0 or value > MAX_COUNT:
        raise ValidationError(
            f"must be a finite number between 0 and {MAX_COUNT:g}, got {text!r}",
            source=source,
            field=field,
        )
    return value


def make_sample(
    slo: str, at: float, good: float, total: float, *, bucket: int, source: str, field: str = ""
) -> Sample:
    prefix = f"{field}: " if field else ""
    for name, count in (("good", good), ("total", total)):
        if not math.isfinite(count) or count < 0 or count > MAX_COUNT:
            raise ValidationError(
                f"{prefix}must be a finite number between 0 and {MAX_COUNT:g}, got {count!r}",
                source=source,
                field=name,
            )
    # No spaces, no control or bidi characters: the id is shown in tables, lines and labels.
    if not slo or len(slo) > 256 or any(c.isspace() for c in slo) or printable(slo) != slo:
        raise ValidationError(f"{prefix}invalid SLO id {slo!r}", source=source, field="slo")
    if good > total:
        raise ValidationError(
            f"{prefix}good ({good:g}) is greater than total ({total:g})",
            source=source,
            field="good",
        )
    ahead = at - time.time()
    if ahead > MAX_FUTURE_SECONDS:
        # A typo (9999-12-31) would sit in every window from now on and never age out.
        raise ValidationError(
            f"{prefix}{ahead:.0f} s in the future: not a time of these events",
            source=source,
            field="timestamp",
        )
    start = int(at) - int(at) % bucket
    return Sample(slo, start, good, total)


def parse_csv(
    text: str,
    source: str,
    *,
    bucket: int = DEFAULT_BUCKET_SECONDS,
    progress: Progress | None = None,
) -> list[Sample]:
    """Validate a whole CSV text; raise ValidationError naming file, row and field."""
    text = text.removeprefix("\ufeff")  # a byte-order mark, as spreadsheets write it
    lines = rows_in(text) if progress is not None else 0
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ValidationError(f"row 1: {exc}", source=source) from None
    if header is None:
        raise ValidationError(
            "empty file (expected header timestamp,slo,good,total)", source=source
        )
    names = tuple(h.strip() for h in header)
    if names != CSV_HEADER:
        raise ValidationError(
            f"row 1: header must be {','.join(CSV_HEADER)}, got {','.join(names)[:80]!r}",
            source=source,
            field="header",
        )
    samples: list[Sample] = []
    try:
        for row in reader:
            line = reader.line_num
            if progress is not None and line % EVERY == 0:
                progress(line, lines, "reading rows")
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(CSV_HEADER):
                raise ValidationError(
                    f"row {line}: expected {len(CSV_HEADER)} columns, got {len(row)}", source=source
                )
            try:
                at = parse_time(row[0]).timestamp()
                good = _count(row[2], "good", source)
                total = _count(row[3], "total", source)
                samples.append(
                    make_sample(row[1].strip(), at, good, total, bucket=bucket, source=source)
                )
            except ValidationError as exc:
                field = exc.field or "timestamp"
                raise ValidationError(f"row {line}: {field}: {exc.reason}", source=source) from None
    except csv.Error as exc:
        raise ValidationError(f"row {reader.line_num}: {exc}", source=source) from None
    return samples


def _upsert(store: Store, samples: Iterable[Sample]) -> int:
    count = 0
    with store.transaction() as cur:
        for s in samples:
            cur.execute(
                _UPSERT,
                (s.slo, s.start, s.good, s.total),
            )
            count += 1
    return count


def _merged(samples: Iterable[Sample]) -> list[tuple[str, int, float, float]]:
    """One row per bucket, counts added (what one upsert per sample would store): a file may
    hold several samples of one bucket, and a bulk upsert takes each key once."""
    buckets: dict[tuple[str, int], list[float]] = {}
    for s in samples:
        counts = buckets.setdefault((s.slo, s.start), [0.0, 0.0])
        counts[0] += s.good
        counts[1] += s.total
    return [(slo, start, good, total) for (slo, start), (good, total) in buckets.items()]


def record(store: Store, samples: Sequence[Sample]) -> int:
    """Add counts to their buckets (counts accumulate: record is additive)."""
    return _upsert(store, samples)


def import_csv(
    store: Store,
    text: str,
    source: str,
    *,
    force: bool = False,
    bucket: int = DEFAULT_BUCKET_SECONDS,
    progress: Progress | None = None,
) -> int:
    """Validate the whole file, then add it in one transaction; refuse a second import.
    ``progress`` hears the rows read, then the write (a spinner: one statement)."""
    samples = parse_csv(text, source, bucket=bucket, progress=progress)
    if progress is not None:
        progress(0, None, f"storing {len(samples)} samples")
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    with store.transaction() as cur:
        seen = cur.execute(
            "SELECT path, imported FROM imports WHERE sha256 = ? AND kind = 'sli'", (digest,)
        ).fetchone()
        if seen is not None and not force:
            raise ValidationError(
                f"already imported (same content as {seen[0]}); use --force to add it again",
                source=source,
            )
        cur.execute(
            "INSERT INTO imports (sha256, kind, path, rows, imported) "
            "VALUES (?, 'sli', ?, ?, ?) ON CONFLICT (sha256, kind) DO UPDATE SET "
            "path = excluded.path, rows = excluded.rows, imported = excluded.imported",
            (digest, source, len(samples), int(time.time())),
        )
        cur.insert_many(_UPSERT, _merged(samples))
    return len(samples)


def known_slos(store: Store) -> list[tuple[str, int, int, int]]:
    """(slo id, buckets, first start, last start) for every SLO with data."""
    rows = store.query(
        "SELECT slo, COUNT(*), MIN(start), MAX(start) FROM sli_buckets GROUP BY slo ORDER BY slo"
    )
    return [(str(r[0]), int(str(r[1])), int(str(r[2])), int(str(r[3]))) for r in rows]


class StoreSource:
    """SLI source backed by the embedded store."""

    def __init__(self, store: Store):
        self.store = store

    def error_ratios(
        self, slo: SLO, windows: Sequence[float], at: float
    ) -> dict[float, float | None]:
        out: dict[float, float | None] = {}
        end = int(at)
        for window in windows:
            begin = end - int(window)
            if slo.budgeting is BudgetingMethod.OCCURRENCES:
                row = self.store.query(
                    "SELECT SUM(total - good), SUM(total) FROM sli_buckets "
                    "WHERE slo = ? AND start >= ? AND start < ?",
                    (slo.id, begin, end),
                )[0]
                bad, total = row
                if total is None or float(str(total)) <= 0:
                    out[window] = None
                else:
                    out[window] = max(0.0, min(1.0, float(str(bad)) / float(str(total))))
                continue
            assert slo.time_slice_seconds is not None
            step = int(slo.time_slice_seconds)
            per_slice = (
                "SELECT SUM(total - good) / SUM(total) AS ratio FROM sli_buckets "
                "WHERE slo = ? AND start >= ? AND start < ? "
                "GROUP BY (start - ?) / ? HAVING SUM(total) > 0"
            )
            if slo.budgeting is BudgetingMethod.TIMESLICES:
                sql = (
                    "SELECT SUM(CASE WHEN ratio > ? THEN 1 ELSE 0 END), COUNT(*) "
                    f"FROM ({per_slice}) AS slices"
                )
                params: tuple[object, ...] = (slice_threshold(slo), slo.id, begin, end, begin, step)
                bad_slices, slices = self.store.query(sql, params)[0]
                n = int(str(slices))
                out[window] = None if n == 0 else float(str(bad_slices)) / n
            else:
                sql = f"SELECT AVG(ratio), COUNT(*) FROM ({per_slice}) AS slices"
                mean, slices = self.store.query(sql, (slo.id, begin, end, begin, step))[0]
                out[window] = None if int(str(slices)) == 0 else float(str(mean))
        return out
