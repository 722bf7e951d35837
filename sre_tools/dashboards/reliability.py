"""The reliability and drills dashboard, over ``sre reliability metrics`` (names from
:mod:`sre_tools.reliability.exposition`)."""

from __future__ import annotations

from sre_tools.dashboards.builder import Dashboard, Panel, Row, Target, thresholds
from sre_tools.reliability import exposition as r

UID = "sre-reliability"


def _mean(summary: str) -> str:
    """Mean of a summary over everything recorded, per component (the store's own MTTD/MTTR)."""
    return (
        f"sum by ({r.LABEL_COMPONENT}) ({summary}_sum)"
        f" / sum by ({r.LABEL_COMPONENT}) ({summary}_count)"
    )


def dashboard() -> Dashboard:
    incidents = Row(
        "Incidents",
        [
            Panel(
                "stat",
                "Open incidents",
                [Target(f"sum by ({r.LABEL_COMPONENT}) ({r.INCIDENTS_OPEN})", "{{component}}")],
                thresholds=thresholds(("green", None), ("orange", 1), ("red", 3)),
                width=8,
                height=6,
            ),
            Panel(
                "timeseries",
                "Unplanned incidents started per day",
                [
                    Target(
                        f"sum by ({r.LABEL_COMPONENT}) "
                        f'(increase({r.INCIDENTS}_total{{{r.LABEL_PLANNED}="false"}}[1d]))',
                        "{{component}}",
                    )
                ],
                width=16,
                height=6,
            ),
            Panel(
                "stat",
                "Mean time to detect",
                [Target(_mean(r.INCIDENT_DETECT), "{{component}}")],
                description="Mean of detected - started over unplanned incidents in the store.",
                unit="s",
                thresholds=thresholds(("blue", None)),
                width=12,
                height=6,
            ),
            Panel(
                "stat",
                "Mean time to repair",
                [Target(_mean(r.INCIDENT_REPAIR), "{{component}}")],
                description="Mean of resolved - started over resolved unplanned incidents.",
                unit="s",
                thresholds=thresholds(("blue", None)),
                width=12,
                height=6,
            ),
        ],
    )
    drills = Row(
        "Chaos drills",
        [
            Panel(
                "table",
                "Latest run of each drill",
                [Target(f"{r.DRILL_LAST_RUN} * 1000", instant=True)],
                description="Start and final status of each drill's latest recorded run.",
                unit="dateTimeAsIso",
                transformations=[
                    {
                        "id": "organize",
                        "options": {
                            "excludeByName": {"Time": True, "instance": True, "job": True},
                            "indexByName": {"drill": 0, "status": 1, "Value": 2},
                            "renameByName": {"Value": "started"},
                        },
                    }
                ],
                width=12,
            ),
            Panel(
                "table",
                "Runs by status",
                [
                    Target(
                        f"sum by ({r.LABEL_DRILL}, {r.LABEL_STATUS}) ({r.DRILL_RUNS}_total)",
                        instant=True,
                    )
                ],
                transformations=[
                    {
                        "id": "organize",
                        "options": {
                            "excludeByName": {"Time": True},
                            "renameByName": {"Value": "runs"},
                        },
                    }
                ],
                width=12,
            ),
            Panel(
                "timeseries",
                "Time to detect, alert, drain and recover (median)",
                [Target(r.DRILL_MEDIAN, "{{drill}} {{measure}}")],
                description="What the drills measured from the fault in place to each step.",
                unit="s",
                width=12,
            ),
            Panel(
                "timeseries",
                "Time to detect, alert, drain and recover (worst)",
                [Target(r.DRILL_MAX, "{{drill}} {{measure}}")],
                unit="s",
                width=12,
            ),
        ],
    )
    return Dashboard(
        uid=UID,
        title="Reliability and drills",
        description="Incidents and chaos drill results from the sre_tools store "
        "(sre reliability metrics).",
        rows=[incidents, drills],
        time_from="now-30d",
        refresh="5m",
    )
