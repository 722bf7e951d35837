"""The transport protocol, its result and its errors; no I/O here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from sre_tools.exceptions import SreError

# What a transport keeps of a command's stdout and of its stderr (each); the rest is read and
# dropped, so a chatty command can neither block on a full pipe nor fill our memory.
DEFAULT_MAX_OUTPUT_BYTES = 1 << 20
# The largest file read_file returns unless the caller asks for more.
DEFAULT_MAX_FILE_BYTES = 4 << 20


class TransportError(SreError):
    """A command or file operation on a node failed for a reason other than its exit code.

    ``target`` names where it ran: ``local`` or ``user@host:port``.
    """

    def __init__(self, message: str, *, target: str):
        self.target = target
        self.reason = message
        # One line, always: a path or a server's words may carry a newline.
        text = f"{target}: {message}"
        super().__init__(text.replace("\r", "\\r").replace("\n", "\\n"))


class TransportTimeout(TransportError):
    """A command or file operation did not finish within its timeout (it has been stopped)."""


class ConnectError(TransportError):
    """The node could not be reached: refused, no answer in time, the SSH handshake failed."""


class HostKeyError(ConnectError):
    """The node's host key is not in the known_hosts file, or differs from the one there."""


class AuthError(ConnectError):
    """The node did not accept the client key."""


@dataclass(frozen=True)
class Result:
    """What a command left behind: exit code and (capped) output.

    ``stdout_truncated`` / ``stderr_truncated`` say that the stream was longer than the
    transport's cap and only its beginning is kept.
    """

    rc: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0


@runtime_checkable
class Transport(Protocol):
    """Run commands and move files on one node. Use as a context manager: it closes."""

    @property
    def target(self) -> str:
        """Where commands run, for messages: ``local`` or ``user@host:port``."""
        ...

    def run(self, argv: Sequence[str], timeout: float, input: bytes | None = None) -> Result:
        """Run ``argv`` (no shell) with ``input`` on stdin; :class:`TransportTimeout` when it
        outlives ``timeout`` seconds (the command is killed)."""
        ...

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` with permissions ``mode``, replacing it atomically."""
        ...

    def read_file(self, path: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        """Return the content of ``path``; :class:`TransportError` when it is larger than
        ``max_bytes``."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def check_argv(argv: Sequence[str], *, target: str) -> list[str]:
    """``argv`` as a list of strings; a bare string (which would be split into characters or
    given to a shell) and NUL bytes are refused."""
    if isinstance(argv, str | bytes) or not isinstance(argv, Sequence):
        raise TransportError(
            f"argv must be a list of strings, got {type(argv).__name__}", target=target
        )
    out = list(argv)
    if not out:
        raise TransportError("argv is empty", target=target)
    for i, arg in enumerate(out):
        if not isinstance(arg, str):
            raise TransportError(
                f"argv[{i}] must be a string, got {type(arg).__name__}", target=target
            )
        if "\0" in arg:
            raise TransportError(f"argv[{i}] contains a NUL byte", target=target)
    return out


def check_timeout(timeout: float, *, target: str) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TransportError(f"timeout must be a number, got {timeout!r}", target=target)
    if not math.isfinite(timeout) or timeout <= 0:
        raise TransportError(f"timeout must be > 0 seconds, got {timeout!r}", target=target)
    return float(timeout)


class CappedBuffer:
    """Keeps the first ``limit`` bytes fed to it and counts what it dropped."""

    def __init__(self, limit: int):
        self.limit = limit
        self._parts: list[bytes] = []
        self._kept = 0
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self.limit - self._kept
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        if chunk:
            self._parts.append(chunk)
            self._kept += len(chunk)

    def value(self) -> bytes:
        return b"".join(self._parts)
