"""The SLO dashboard: one row per SLO (the ``slo`` variable, repeated), built on the recording and
alert rules :mod:`sre_tools.slo.rules` generates (names from :mod:`sre_tools.slo.promql`)."""

from __future__ import annotations

from sre_tools.dashboards.builder import (
    Dashboard,
    Panel,
    Row,
    Target,
    Variable,
    thresholds,
    value_mappings,
)
from sre_tools.slo import promql as q
from sre_tools.slo.windows import DEFAULT_WINDOWS

UID = "sre-slos"
SEL = f'{q.LABEL_ID}=~"$slo"'
# Every SLI recording: slo:sli_error:ratio_rate<window>, one series per window (sre_window label).
SLI_ANY_WINDOW = f'{{__name__=~"{q.SLI_ERROR_RATIO.format(window=".+")}", {SEL}}}'
SHORTEST = q.window_name(min(w.short_seconds for w in DEFAULT_WINDOWS.windows))
LEGEND = "{{sre_service}} {{sre_slo}}"


def _factors(period_seconds: float = 30 * 86400) -> str:
    return ", ".join(
        f"{w.severity} {q.window_name(w.long_seconds)}/{q.window_name(w.short_seconds)} "
        f"above {w.factor(period_seconds):.3g}"
        for w in DEFAULT_WINDOWS.windows
    )


def _page_factor(period_seconds: float = 30 * 86400, *, lowest: bool = False) -> float:
    factors = [w.factor(period_seconds) for w in DEFAULT_WINDOWS.for_severity("page")]
    return round(min(factors) if lowest else max(factors), 3)


def _alert_state(severity: str) -> Target:
    # 1 while the SLO's alert of this severity fires, 0 otherwise (`or vector(0)`: never "no data").
    return Target(
        f'max(ALERTS{{{SEL}, severity="{severity}", alertstate="firing"}}) or on() vector(0)',
        severity,
    )


def dashboard() -> Dashboard:
    rows = [
        Row(
            "SLO $slo",
            [
                Panel(
                    "stat",
                    "Objective",
                    [Target(f"{q.OBJECTIVE}{{{SEL}}}", LEGEND)],
                    unit="percentunit",
                    thresholds=thresholds(("blue", None)),
                    options={
                        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value",
                        "graphMode": "none",
                        "textMode": "value",
                    },
                    width=4,
                    height=5,
                ),
                Panel(
                    "stat",
                    "Error budget remaining",
                    [Target(f"{q.PERIOD_BUDGET_REMAINING}{{{SEL}}}", LEGEND)],
                    description="Share of the period's error budget left (negative: overspent).",
                    unit="percentunit",
                    thresholds=thresholds(("red", None), ("orange", 0.25), ("green", 0.5)),
                    width=4,
                    height=5,
                ),
                Panel(
                    "stat",
                    "Alert state",
                    [_alert_state("page"), _alert_state("ticket")],
                    description="Whether the SLO's page and ticket burn-rate alerts fire now.",
                    mappings=value_mappings((0, "quiet", "green"), (1, "FIRING", "red")),
                    thresholds=thresholds(("green", None), ("red", 1)),
                    width=6,
                    height=5,
                ),
                Panel(
                    "stat",
                    "Burn rate now",
                    [Target(f"{q.CURRENT_BURN_RATE}{{{SEL}}}", LEGEND)],
                    description="Error ratio over the shortest alert window (default "
                    f"{SHORTEST}) divided by the error budget: 1 spends the budget exactly over "
                    "the period; red from the lowest page factor of a 30d period.",
                    thresholds=thresholds(
                        ("green", None), ("orange", 1), ("red", _page_factor(lowest=True))
                    ),
                    width=5,
                    height=5,
                ),
                Panel(
                    "stat",
                    "Burn rate over the period",
                    [Target(f"{q.PERIOD_BURN_RATE}{{{SEL}}}", LEGEND)],
                    thresholds=thresholds(("green", None), ("red", 1)),
                    width=5,
                    height=5,
                ),
                Panel(
                    "timeseries",
                    "SLI against objective",
                    [
                        # The SLI over the shortest alert window of the SLO's own window set,
                        # from the meta recordings (no window name assumed).
                        Target(
                            f"1 - {q.CURRENT_BURN_RATE}{{{SEL}}} * {q.ERROR_BUDGET}{{{SEL}}}",
                            "SLI",
                        ),
                        Target(f"{q.OBJECTIVE}{{{SEL}}}", "objective"),
                    ],
                    unit="percentunit",
                    width=12,
                ),
                Panel(
                    "timeseries",
                    "Error budget remaining, with the ideal burn",
                    [
                        Target(f"{q.PERIOD_BUDGET_REMAINING}{{{SEL}}}", "remaining"),
                        # Spending the budget evenly: a straight line from 100 % at the start of
                        # each period (periods counted from the Unix epoch) to 0 at its end.
                        Target(
                            f"1 - (time() % ({q.TIME_PERIOD_DAYS}{{{SEL}}} * 86400))"
                            f" / ({q.TIME_PERIOD_DAYS}{{{SEL}}} * 86400)",
                            "ideal",
                        ),
                    ],
                    description="Budget left over the SLO's rolling period; the ideal line is an "
                    "even burn across a period aligned on the Unix epoch.",
                    unit="percentunit",
                    width=12,
                ),
                Panel(
                    "timeseries",
                    "Burn rate per alert window",
                    [
                        Target(
                            f"{SLI_ANY_WINDOW} / on({q.LABEL_ID}) group_left "
                            f"{q.ERROR_BUDGET}{{{SEL}}}",
                            "{{sre_window}}",
                        )
                    ],
                    description="Error ratio over each recorded window divided by the budget. "
                    "An alert fires when a long window and its short window both burn faster "
                    f"than the pair's factor; for a 30d period: {_factors()}.",
                    custom={"thresholdsStyle": {"mode": "line"}},
                    thresholds=thresholds(("green", None), ("orange", 1), ("red", _page_factor())),
                    width=24,
                ),
            ],
            repeat="slo",
        )
    ]
    return Dashboard(
        uid=UID,
        title="SLOs",
        description="Service level objectives: SLI, error budget and burn-rate alerts "
        "(rules from sre slo generate).",
        rows=rows,
        variables=[
            Variable("slo", "SLO", f"label_values({q.SLO_INFO}, {q.LABEL_ID})"),
        ],
        time_from="now-7d",
        refresh="5m",
    )
