"""Fleet reliability: the incident log, MTBF/MTTR/MTTD/availability, and checkpoint planning.

- :mod:`~sre_tools.reliability.model`: the :class:`Incident` record (no I/O);
- :mod:`~sre_tools.reliability.loader`: the incident CSV format, parsed from text (no I/O);
- :mod:`~sre_tools.reliability.incidents`: open, resolve, list and import incidents in the store;
- :mod:`~sre_tools.reliability.metrics`: fleet and per-component reliability figures (pure math);
- :mod:`~sre_tools.reliability.plan`: job MTBF, Young and Daly checkpoint intervals, goodput;
- :mod:`~sre_tools.reliability.report`: the store-backed report used by ``sre reliability report``.
"""

from __future__ import annotations

from sre_tools.reliability.model import Incident

__all__ = ["Incident"]
