"""Text shown to people, in every output format (terminal, HTML): stored text made safe, and the
words and colours of statuses.

Text that comes from a file, the store, a peer or the command line (an incident cause, a host, an
SLO id) is shown as it is, with control characters (ESC, OSC, NUL, other C0/C1, bidi overrides,
line separators, lone surrogates) written as escapes such as ``\\x1b`` or ``\\u202e``, so stored
text can neither break the output nor rewrite the terminal. No I/O here.
"""

from __future__ import annotations

import math
import re

TYPE_CHECKING = False  # not typing's: `sre health --format nhc` prints through printable()
if TYPE_CHECKING:
    from typing import Any

# C0 and C1 controls (tab and newline too: a cell is one line), DEL, the bidi controls (LRM, RLM,
# ALM, embeddings, overrides, isolates), line and paragraph separators, and lone surrogates.
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any) -> str:
    """``value`` as one line of text safe for a terminal: control characters escaped."""
    return _UNPRINTABLE.sub(_escape_char, str(value))


# The styled words of every table (severity, SLO status, outcome): one table, used by all front
# ends. The style is a rich style; the HTML report maps its colour word to a CSS colour.
LABEL_STYLES: dict[str, tuple[str, str]] = {
    "crit": ("CRIT", "bold red"),
    "warn": ("WARN", "yellow"),
    "unknown": ("UNKNOWN", "magenta"),
    "ok": ("ok", "green"),
    "skipped": ("skipped", "dim"),
    "page": ("PAGE", "bold red"),
    "ticket": ("TICKET", "yellow"),
    "exhausted": ("EXHAUSTED", "red"),
    "no_data": ("no data", "dim"),
    "failed": ("failed", "bold red"),
    "unreachable": ("unreachable", "bold red"),
    "not run": ("not run", "dim"),
    "acted": ("ACTED", "bold green"),
    "refused": ("REFUSED", "yellow"),
    "dry_run": ("DRY RUN", "cyan"),
}


def pct(value: float | None, digits: int = 3) -> str:
    """A ratio as a percentage (``0.9995`` -> ``99.950%``); ``-`` for None, NaN or infinity."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * 100:.{digits}f}%"


def num(value: float | None, digits: int = 2) -> str:
    """A number with ``digits`` decimals; ``-`` for None, ``inf`` for infinity."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"
