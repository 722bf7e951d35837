"""Small inline SVG charts for the HTML report: no library, no script, no external resource.

Each function takes plain numbers (already computed by the report) and returns one ``<svg>``
element as text. Every piece of text in it is escaped by the caller's :func:`esc`. The charts
scale with their container (``viewBox``, CSS ``width: 100%``); colours are SVG presentation
attributes, which a Content-Security-Policy without ``'unsafe-inline'`` still allows.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from sre_tools.text import printable
from sre_tools.timeutil import iso

WIDTH = 640
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 60, 52, 12, 30

ACTUAL = "#1565c0"
IDEAL = "#757575"
GRID = "#e0e0e0"
BAR = "#ef6c00"


def esc(value: object) -> str:
    """Any value as HTML text (element content or a quoted attribute): control characters
    escaped as in the terminal (:func:`sre_tools.text.printable`), then ``<>&"'`` as entities."""
    return html.escape(printable(value), quote=True)


def _f(value: float) -> str:
    return f"{value:.1f}"


def _day(ts: float) -> str:
    return (iso(ts) or "")[:10]


def _pct_label(value: float) -> str:
    return f"{value * 100:.0f}%" if abs(value * 100 - round(value * 100)) < 1e-9 else f"{value:.1%}"


def burn_down(
    points: Sequence[tuple[float, float | None]], *, start: float, end: float, label: str
) -> str:
    """Error budget remaining (1.0 = all of it) from ``start`` to ``end``: the measured points
    as a line (broken where a point is ``None``) and the ideal burn, a straight line from 100 %
    at the start to 0 % at the end of the period (burn rate 1)."""
    values = [v for _, v in points if v is not None and math.isfinite(v)]
    top = max([1.0, *values])
    bottom = min([0.0, *values])
    span_y = (top - bottom) or 1.0
    span_x = (end - start) or 1.0
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (min(max(t, start), end) - start) / span_x * plot_w

    def y(v: float) -> float:
        return TOP + (top - v) / span_y * plot_h

    parts = [
        f'<svg class="chart burn-down" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{esc(label)}" data-points="{len(values)}">',
        f"<title>{esc(label)}</title>",
    ]
    for v in sorted({1.0, 0.5, 0.0, bottom}):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_f(y(v))}" y2="{_f(y(v))}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{_f(y(v) + 4)}" text-anchor="end" font-size="11" '
            f'fill="#424242">{esc(_pct_label(v))}</text>'
        )
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 8}" font-size="11" fill="#424242">{esc(_day(start))}'
        f'</text><text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" font-size="11" text-anchor="end" '
        f'fill="#424242">{esc(_day(end))}</text>'
    )
    parts.append(
        f'<line class="ideal" x1="{_f(x(start))}" y1="{_f(y(1.0))}" x2="{_f(x(end))}" '
        f'y2="{_f(y(0.0))}" stroke="{IDEAL}" stroke-width="1.5" stroke-dasharray="6 4"/>'
    )
    segment: list[str] = []
    segments: list[list[str]] = []
    for t, value in points:
        if value is None or not math.isfinite(value):
            if segment:
                segments.append(segment)
            segment = []
            continue
        segment.append(f"{_f(x(t))},{_f(y(value))}")
    if segment:
        segments.append(segment)
    for seg in segments:
        if len(seg) == 1:
            cx, cy = seg[0].split(",")
            parts.append(f'<circle class="actual" cx="{cx}" cy="{cy}" r="3" fill="{ACTUAL}"/>')
        else:
            parts.append(
                f'<polyline class="actual" points="{" ".join(seg)}" fill="none" '
                f'stroke="{ACTUAL}" stroke-width="2.5"/>'
            )
    if not values:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="14" '
            f'fill="#616161">no SLI data in the period</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def failures_over_time(
    buckets: Sequence[tuple[float, float, int, float | None]], *, label: str
) -> str:
    """Per time bucket ``(since, until, failures, availability)``: failures as bars (left axis)
    and availability as a line (right axis, from the lowest bucket's value to 100 %)."""
    if not buckets:
        return ""
    start, end = buckets[0][0], buckets[-1][1]
    span_x = (end - start) or 1.0
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    most = max(1, *(b[2] for b in buckets))
    avails = [b[3] for b in buckets if b[3] is not None]
    low = min([*avails, 1.0])
    # A floor one notch below the lowest value, on a 10^k step (99.9 % -> 99.8 %).
    step = 10 ** math.floor(math.log10(max(1.0 - low, 1e-6)))
    floor = max(0.0, math.floor(low / step) * step - step) if low < 1.0 else 0.99
    span_a = (1.0 - floor) or 1.0

    def x(t: float) -> float:
        return LEFT + (t - start) / span_x * plot_w

    def y_fail(n: float) -> float:
        return TOP + (most - n) / most * plot_h

    def y_avail(a: float) -> float:
        return TOP + (1.0 - a) / span_a * plot_h

    parts = [
        f'<svg class="chart reliability" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{esc(label)}" data-buckets="{len(buckets)}">',
        f"<title>{esc(label)}</title>",
        f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" '
        f'y2="{TOP + plot_h}" stroke="{GRID}"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end" font-size="11" fill="{BAR}">'
        f"{most}</text>",
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" font-size="11" '
        f'fill="{BAR}">0</text>',
        f'<text x="{WIDTH - RIGHT + 6}" y="{TOP + 10}" font-size="11" fill="{ACTUAL}">100%</text>',
        f'<text x="{WIDTH - RIGHT + 6}" y="{TOP + plot_h}" font-size="11" fill="{ACTUAL}">'
        f"{esc(_pct_label(floor))}</text>",
        f'<text x="{LEFT}" y="{HEIGHT - 8}" font-size="11" fill="#424242">{esc(_day(start))}'
        f'</text><text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" font-size="11" text-anchor="end" '
        f'fill="#424242">{esc(_day(end))}</text>',
    ]
    line: list[str] = []
    for since, until, failures, avail in buckets:
        x0, x1 = x(since), x(until)
        gap = min(4.0, (x1 - x0) / 5)
        tip = f"{_day(since)} .. {_day(until)}: {failures} failure(s)"
        if avail is not None:
            tip += f", availability {avail:.3%}"
        if failures:
            parts.append(
                f'<rect class="bar" x="{_f(x0 + gap)}" y="{_f(y_fail(failures))}" '
                f'width="{_f(x1 - x0 - 2 * gap)}" height="{_f(TOP + plot_h - y_fail(failures))}" '
                f'fill="{BAR}"><title>{esc(tip)}</title></rect>'
            )
        if avail is not None:
            line.append(f"{_f((x0 + x1) / 2)},{_f(y_avail(avail))}")
    if len(line) > 1:
        parts.append(
            f'<polyline class="availability" points="{" ".join(line)}" fill="none" '
            f'stroke="{ACTUAL}" stroke-width="2"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
