"""Node-side actions and notifications.

The engine calls these only for a node that Slurm shows drained with our reason and idle (no
job left), and only when not in a dry run. The argv builders are pure, so tests check exactly
what would run without ever running it (a GPU reset in a test would be a real reset).

- GPU reset: ``nvidia-smi --gpu-reset -i <index>``, one call per GPU.
- Reboot: ``systemctl reboot``.
- Fabric manager: ``systemctl restart nvidia-fabricmanager``.

Hands-on actions (power cycle, mechanics, support, RMA) are never run: a :class:`Notifier` tells
a person (the log, or a webhook: an HTTP POST of JSON with a timeout).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sre_tools.health.model import Action
from sre_tools.remediation.config import validate_webhook
from sre_tools.remediation.errors import ActionError, CommandError, NotifyError
from sre_tools.remediation.model import MAX_GPU_INDEX
from sre_tools.remediation.runner import LocalRunner, Runner

_log = logging.getLogger("sre_tools.remediation")

FABRIC_MANAGER_UNIT = "nvidia-fabricmanager"


def gpu_reset_argv(index: int) -> list[str]:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_GPU_INDEX:
        raise ValueError(f"invalid GPU index {index!r}")
    return ["nvidia-smi", "--gpu-reset", "-i", str(index)]


def reboot_argv() -> list[str]:
    return ["systemctl", "reboot"]


def restart_fabric_manager_argv() -> list[str]:
    return ["systemctl", "restart", FABRIC_MANAGER_UNIT]


def action_argvs(action: Action, gpus: Sequence[int]) -> list[list[str]]:
    """Every command that ``action`` runs on the node, in order (empty when none applies)."""
    if action in (Action.RESET_GPU, Action.DRAIN_AND_RESET):
        return [gpu_reset_argv(i) for i in sorted(set(gpus))]
    if action is Action.REBOOT:
        return [reboot_argv()]
    if action is Action.RESTART_FABRIC_MANAGER:
        return [restart_fabric_manager_argv()]
    return []


class NodeActions:
    """Run the commands of an action through a runner (local, or ssh to the node)."""

    def __init__(self, runner: Runner | None = None, *, timeout: float = 180.0):
        self.runner: Runner = runner or LocalRunner()
        self.timeout = timeout

    def run(self, node: str, action: Action, gpus: Sequence[int]) -> list[list[str]]:
        """Run every command of ``action``; stop at the first failure (:class:`ActionError`)."""
        done: list[list[str]] = []
        for argv in action_argvs(action, gpus):
            try:
                result = self.runner(argv, timeout=self.timeout)
            except CommandError as exc:
                # Including ssh's own failure (255): whether the command ran is unknown, so it
                # counts as failed; the node stays drained and the attempt stays counted.
                raise ActionError(
                    f"{node}: {' '.join(argv)}: {exc}", argv=tuple(argv), returncode=exc.returncode
                ) from None
            if not result.ok:
                raise ActionError(
                    f"{node}: {' '.join(argv)} exited {result.returncode}: {result.brief()}",
                    argv=tuple(argv),
                    returncode=result.returncode,
                )
            done.append(argv)
        return done


# --- notification -------------------------------------------------------------------------------


class Notifier(Protocol):
    def __call__(self, payload: Mapping[str, Any]) -> None: ...


class LogNotifier:
    """Write the notification to the ``sre_tools.remediation`` logger (WARNING)."""

    def __call__(self, payload: Mapping[str, Any]) -> None:
        _log.warning("remediation needs a person: %s", json.dumps(payload, sort_keys=True))


Opener = Callable[..., Any]


class WebhookNotifier:
    """POST the notification as JSON to ``url``; any failure or timeout is :class:`NotifyError`."""

    def __init__(self, url: str, *, timeout: float = 5.0, opener: Opener | None = None):
        self.url = validate_webhook(url)
        self.timeout = timeout
        self.opener: Opener = opener or urllib.request.urlopen

    def __call__(self, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=True, default=str).encode("ascii")
        req = urllib.request.Request(  # noqa: S310 (scheme checked: http or https only)
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "sre-tools-remediation"},
        )
        try:
            with self.opener(req, timeout=self.timeout) as resp:
                status = getattr(resp, "status", 200)
                if not 200 <= int(status) < 300:
                    raise NotifyError(f"webhook answered HTTP {status}")
        except NotifyError:
            raise
        except urllib.error.HTTPError as exc:
            raise NotifyError(f"webhook answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise NotifyError(f"webhook failed: {reason}") from None
