"""The interface every SLI source implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sre_tools.slo.model import SLO


class SLISource(Protocol):
    """Reads an SLO's error ratio over windows ending at ``at`` (unix seconds).

    Returns one value per window: the error ratio in [0, 1], or None when the window had no
    traffic (an explicit "no data", never NaN).
    """

    def error_ratios(
        self, slo: SLO, windows: Sequence[float], at: float
    ) -> dict[float, float | None]: ...
