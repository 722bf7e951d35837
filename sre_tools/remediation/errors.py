"""Errors of the remediation engine, under the package's one hierarchy.

Bad input (an event, a report, a configuration) is :class:`sre_tools.exceptions.ValidationError`
(exit 2). Everything here is a runtime failure (exit 1): a command failed, timed out or could not
be started. A guardrail refusal is *not* an error: it is a normal :class:`Decision`.
"""

from __future__ import annotations

from sre_tools.exceptions import SreError


class RemediationError(SreError):
    """Base of the remediation engine's runtime failures."""


class CommandError(RemediationError):
    """A command (scontrol, sinfo, nvidia-smi, systemctl, ssh) failed or could not be started."""

    def __init__(self, message: str, *, argv: tuple[str, ...] = (), returncode: int | None = None):
        self.argv = argv
        self.returncode = returncode
        super().__init__(" ".join(message.split()))


class CommandTimeout(CommandError):
    """A command ran past its timeout and was killed."""


class SlurmError(CommandError):
    """``scontrol`` or ``sinfo`` failed or timed out."""


class UnknownNodeError(SlurmError):
    """Slurm does not know the node (``scontrol show node`` says it is not found)."""


class ActionError(CommandError):
    """A node-side action (GPU reset, reboot, fabric manager restart) failed."""


class NotifyError(RemediationError):
    """The notification webhook failed or timed out (the decision itself stands)."""
