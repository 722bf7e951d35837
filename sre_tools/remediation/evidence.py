"""Diagnostic evidence from the store: the newest DCGM run of a node that a resume may lean on.

The remediation engine takes diagnostics offered with a resume (``--diag FILE``); with a store
(``--diag-store``: the same store ``sre diag run`` wrote, e.g. a PostgreSQL store shared by the
nodes and the controller) it also looks up the newest DCGM run of at least the level it needs,
finished since the GPU reset, through ``sre_tools.diag.history``, and judges it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sre_tools.remediation.model import DiagEvidence

# (node, minimum DCGM level, since) -> the newest such run, or None.
DiagLookup = Callable[[str, int, float | None], DiagEvidence | None]


def store_lookup(store: Any) -> DiagLookup:
    """A :data:`DiagLookup` over an open :class:`sre_tools.store.Store`."""
    from sre_tools.diag import history
    from sre_tools.diag.model import Kind
    from sre_tools.health.model import HealthReport

    def lookup(node: str, level: int, since: float | None) -> DiagEvidence | None:
        run = history.latest(store, node, kind=Kind.DCGM, level=level, since=since)
        if run is None:
            return None
        report = HealthReport(
            host=run.node,
            at=run.ended,
            findings=history.run_findings(store, run.run_id),
            source=f"store: {run.source}",
        )
        return DiagEvidence(
            node=run.node, kind=run.kind, level=run.level, at=run.ended, report=report
        )

    return lookup
