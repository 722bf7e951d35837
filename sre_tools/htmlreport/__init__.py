"""The self-contained HTML report (``--html FILE`` of ``sre report``, ``sre slo report``,
``sre reliability report``, ``sre drill report``): :func:`render`."""

from sre_tools.htmlreport.page import render

__all__ = ["render"]
