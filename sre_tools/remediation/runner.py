"""How commands run: an injectable runner, argv lists only, a timeout on every call.

Production uses :class:`LocalRunner` (``subprocess.run`` without a shell) or :class:`SshRunner`
(the same argv on another host). Tests pass a fake with the same call signature.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sre_tools.exceptions import ValidationError
from sre_tools.remediation.errors import CommandError, CommandTimeout

# Output kept from a command, so a chatty or hostile one cannot fill memory or the audit log.
MAX_OUTPUT_CHARS = 1_000_000


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def brief(self, limit: int = 300) -> str:
        """The last words of stderr (else stdout), on one line, for an error message."""
        text = " ".join((self.stderr.strip() or self.stdout.strip()).split())
        return text[-limit:] if text else f"exit code {self.returncode}"


class Runner(Protocol):
    """Run ``argv`` (never through a shell) and return its result; raise on timeout."""

    def __call__(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult: ...


def _check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str) or not argv:
        raise TypeError("argv must be a non-empty list of strings (no shell command lines)")
    out = tuple(argv)
    for arg in out:
        if not isinstance(arg, str) or "\x00" in arg:
            raise TypeError(f"argv element {arg!r} is not a string without NUL")
    return out


class LocalRunner:
    """``subprocess.run`` with ``shell=False``, stdin closed and a hard timeout."""

    def __call__(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        args = _check_argv(argv)
        full_env = None if env is None else {**os.environ, **env}
        start = time.monotonic()
        try:
            proc = subprocess.run(
                list(args),
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
                env=full_env,
            )
        except subprocess.TimeoutExpired:
            raise CommandTimeout(
                f"{args[0]} timed out after {timeout:g}s", argv=args, returncode=None
            ) from None
        except OSError as exc:
            raise CommandError(
                f"cannot run {args[0]}: {exc.strerror or exc}", argv=args, returncode=None
            ) from None
        return CommandResult(
            args,
            proc.returncode,
            proc.stdout[-MAX_OUTPUT_CHARS:],
            proc.stderr[-MAX_OUTPUT_CHARS:],
            time.monotonic() - start,
        )


# Host names as Slurm and ssh accept them; never an option (no leading '-').
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def validate_host(host: str, *, field: str = "host") -> str:
    if (
        not isinstance(host, str)
        or not 1 <= len(host) <= 253
        or not host[0].isalnum()
        or not set(host) <= _HOST_CHARS
    ):
        raise ValidationError(f"invalid host name {host!r}", field=field)
    return host


class SshRunner:
    """Run the argv on ``host`` through ``ssh`` (key auth, no prompts).

    ssh hands the remote side one command line, so this is the one place where argv becomes a
    string: every element is quoted with :func:`shlex.quote` (POSIX sh) after the callers have
    validated it, and ``env`` becomes ``env K=V`` arguments. Nothing is interpolated unquoted.
    """

    def __init__(
        self,
        host: str,
        *,
        base: Runner | None = None,
        connect_timeout: int = 10,
        ssh: str = "ssh",
    ):
        self.host = validate_host(host)
        self.base: Runner = base or LocalRunner()
        self.connect_timeout = connect_timeout
        self.ssh = ssh

    def wrap(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
        args = list(_check_argv(argv))
        if env:
            args = ["env", *(f"{k}={v}" for k, v in sorted(env.items())), *args]
        return [
            self.ssh,
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout}",
            "--",
            self.host,
            shlex.join(args),
        ]

    def __call__(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        result = self.base(self.wrap(argv, env), timeout=timeout)
        if result.returncode == 255:  # ssh's own failure (unreachable, auth), not the command's
            raise CommandError(
                f"ssh to {self.host} failed: {result.brief()}",
                argv=result.argv,
                returncode=255,
            )
        return CommandResult(
            tuple(argv), result.returncode, result.stdout, result.stderr, result.duration_seconds
        )
