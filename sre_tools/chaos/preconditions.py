"""Preconditions of a drill run: what must hold on the fleet before a fault is injected.

Each builder returns a :data:`~sre_tools.chaos.safety.Precondition`: a callable that returns a
reason to refuse, or None. A precondition that cannot be evaluated (Prometheus unreachable, the
store missing) refuses too: :func:`sre_tools.chaos.safety.check_preconditions` fails closed.

- :func:`error_budget`: ``sre slo gate``'s verdict (:func:`sre_tools.slo.gate.evaluate`) on the
  given SLO reports: refused while an SLO pages or has less than ``min_budget_percent`` left.
- :func:`no_paging_alerts`: refused while Prometheus has a firing alert of a paging severity
  (:data:`PAGING_SEVERITIES`).
- :func:`drain_budget`: refused when the remediation engine has fewer free drains
  (``max_drained_nodes`` minus the drains it holds) than the drill's nodes that will be drained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sre_tools.chaos.model import Experiment
from sre_tools.chaos.safety import Precondition

# Drills leave the error budget a margin: a drill is optional risk, a rollout may be urgent
# (``sre slo gate`` defaults to 10 %).
DEFAULT_MIN_BUDGET_PERCENT = 25.0
# The SLO rules page with severity "page"; the GPU health rules with "critical". Either is a
# person being paged: no drill may add to that.
PAGING_SEVERITIES = ("page", "critical")
PAGING_ALERTS_QUERY = 'ALERTS{alertstate="firing",severity=~"' + "|".join(PAGING_SEVERITIES) + '"}'
DRAIN_ACTION = ("sre_tools.chaos.actions", "drain_node")


def error_budget(reports: Callable[[], Sequence[Any]], min_budget_percent: float) -> Precondition:
    """``reports`` builds the SLO reports (from the store or Prometheus) when the check runs."""
    from sre_tools.slo.gate import evaluate, validate_min_budget

    threshold = validate_min_budget(min_budget_percent)

    def check() -> str | None:
        result = evaluate(reports(), threshold)
        if result.passed:
            return None
        return "error budget: " + "; ".join(b.line() for b in result.blocks)

    return check


def no_paging_alerts(source: Any, clock: Callable[[], float]) -> Precondition:
    """``source`` is a :class:`sre_tools.sli.prometheus.PrometheusSource`."""

    def check() -> str | None:
        firing = source.query(PAGING_ALERTS_QUERY, clock())
        if not firing:
            return None
        names = sorted(
            {str((s.get("metric") or {}).get("alertname", "?")) for s in firing if s is not None}
        )
        return f"{len(firing)} paging alert(s) firing: {', '.join(names)}"

    return check


def drains(experiment: Experiment) -> bool:
    """Does the drill drain its nodes (the catalog's drain action, an ``scontrol ... State=DRAIN``
    process) or expect remediation to drain them (an expectation that ``measures: drain``)?"""
    for activity in experiment.method:
        provider = activity.provider
        if (provider.module, provider.func) == DRAIN_ACTION:
            return True
        scontrol = provider.type == "process" and Path(provider.path).name == "scontrol"
        if scontrol and any(str(a).upper() == "STATE=DRAIN" for a in provider.arguments or ()):
            return True
    return any(check.measures == "drain" for check in experiment.expect)


def drain_budget(state_path: Path | str, config_path: Path | None, needed: int) -> Precondition:
    """The remediation engine's state at ``state_path`` (a missing file holds no drains) and its
    configuration (``config_path``, else ``$SRE_REMEDIATION_CONFIG``, else the defaults)."""

    def check() -> str | None:
        from sre_tools.remediation.config import load_config
        from sre_tools.remediation.state import RemediationState

        config = load_config(config_path)
        from sre_tools.store import is_url

        if is_url(state_path) or Path(state_path).exists():
            state = RemediationState(state_path)
            try:
                held = state.usage()[0]
            finally:
                state.close()
        else:
            held = 0
        free = max(0, config.max_drained_nodes - held)
        if free >= needed:
            return None
        return (
            f"remediation drain budget: {free} free drain(s) (max_drained_nodes "
            f"{config.max_drained_nodes}, {held} held in {state_path}), the drill drains {needed}"
        )

    return check
