"""Counter snapshots across runs, so that counters become rates and survive restarts.

The state file is JSON, written atomically (temporary file + rename). A missing or corrupt file
starts fresh: the first run after it reports no rate ("unknown yet"), never a false alarm. A path
that is not a regular file (a device, a FIFO, a directory) or a file larger than
:data:`MAX_STATE_BYTES` is not ours: refused (:class:`StoreError`), never read whole nor replaced.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from sre_tools.exceptions import SreError, StoreError

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

STATE_VERSION = 1
MAX_SAMPLES = 64
# 64 samples of ~20 counters per GPU is ~30 KiB a GPU: 64 MiB is room for 2,000 GPUs.
MAX_STATE_BYTES = 64 * 1024 * 1024


def default_state_path() -> Path:
    explicit = os.environ.get("SRE_HEALTH_STATE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sre-tools" / "health-state.json"


class CounterState:
    """Per-key series of ``(timestamp, value)`` samples, pruned to the longest window asked."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.samples: dict[str, list[list[float]]] = {}
        self.meta: dict[str, Any] = {}
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        from sre_tools.inputs import load_json

        try:
            # O_NONBLOCK: a FIFO must not hang the check waiting for a writer.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return  # missing or unreadable: start fresh (saving says what is wrong)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(f"{path}: health state: not a regular file")
            try:
                raw = fh.read(MAX_STATE_BYTES + 1)
            except OSError:
                return
        if len(raw) > MAX_STATE_BYTES:
            raise StoreError(
                f"{path}: health state: larger than {MAX_STATE_BYTES >> 20} MiB, not a state "
                "file of ours (name another --state)"
            )
        try:
            # No duplicate keys, NaN or deep nesting (sre_tools.inputs); corrupt starts fresh.
            data = load_json(raw.decode("utf-8"), str(path))
        except (SreError, ValueError):
            return
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return
        raw = data.get("samples", {})
        if isinstance(raw, dict):
            for key, series in raw.items():
                if isinstance(series, list) and all(
                    isinstance(p, list)
                    and len(p) == 2
                    and all(isinstance(v, int | float) for v in p)
                    for p in series
                ):
                    self.samples[str(key)] = [[float(t), float(v)] for t, v in series]
        meta = data.get("meta", {})
        if isinstance(meta, dict):
            self.meta = meta

    def rate_per_hour(self, key: str, value: float, now: float, window: float) -> float | None:
        """Record ``value`` at ``now``; return its increase per hour over up to ``window`` seconds.

        None until there is an earlier sample. A counter that went down (driver reload, reset)
        restarts the series instead of producing a negative rate.
        """
        series = self.samples.setdefault(key, [])
        if series and value < series[-1][1]:
            series.clear()
        series.append([now, float(value)])
        while len(series) > 2 and now - series[1][0] >= window:
            series.pop(0)
        del series[:-MAX_SAMPLES]
        first_t, first_v = series[0]
        if now - first_t <= 0:
            return None
        return (value - first_v) * 3600.0 / (now - first_t)

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        import tempfile  # only when there is a file to write (a replay keeps none)

        fd, tmp = tempfile.mkstemp(prefix=".health-state.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(
                    {"version": STATE_VERSION, "samples": self.samples, "meta": self.meta}, fh
                )
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
