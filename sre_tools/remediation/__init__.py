"""Remediation: act on what the health engine decided, within guardrails, and audit it all.

One module for every front end (the ``sre remediation`` CLI, the Ansible playbook, the Salt
reactor). See docs/remediation.md.
"""

from __future__ import annotations

from sre_tools.remediation.config import RemediationConfig, load_config
from sre_tools.remediation.engine import Remediator
from sre_tools.remediation.model import (
    Decision,
    Outcome,
    RemediationRequest,
    parse_event_json,
    parse_report_json,
    request_from_event,
    request_from_report,
)
from sre_tools.remediation.slurm import SlurmClient

__all__ = [
    "Decision",
    "Outcome",
    "RemediationConfig",
    "RemediationRequest",
    "Remediator",
    "SlurmClient",
    "load_config",
    "parse_event_json",
    "parse_report_json",
    "request_from_event",
    "request_from_report",
]
