"""Subprocesses, loopback ports and lock files for the test helpers (one definition each).

Every helper that starts a daemon or a container takes its ports from :func:`free_port` /
:func:`free_ports` and its commands through :func:`run` (with a timeout, an error that carries
the output), so parallel pytest workers (``-n``) never share a fixed port.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


class CommandError(RuntimeError):
    """A command failed, timed out or is not installed; the message carries its output."""


def run(
    argv: Sequence[str], timeout: float = 300, check: bool = True, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """``argv`` with captured text output; :class:`CommandError` on a timeout, a missing
    program or (with ``check``) a non-zero exit."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kw
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"timed out after {timeout:g} s: {' '.join(argv)}") from exc
    except FileNotFoundError as exc:
        raise CommandError(f"{argv[0]} is not installed: {exc}") from exc
    if check and proc.returncode != 0:
        raise CommandError(
            f"{' '.join(argv)} exited {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback TCP ports nothing listens on right now."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((LOOPBACK, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but never listening: connecting to it is refused.

    Holding the socket for the duration keeps anyone else from taking the port meanwhile.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        yield int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def wait_port(port: int, timeout: float = 30.0) -> None:
    """Wait until something listens on 127.0.0.1:``port``; :class:`CommandError` after
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.2)
    raise CommandError(f"nothing listens on {LOOPBACK}:{port} after {timeout} s")


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """An exclusive lock shared by every process of this user (pytest workers included):
    ``$XDG_RUNTIME_DIR/<name>.lock`` (``/tmp`` without it)."""
    path = Path(os.environ.get("XDG_RUNTIME_DIR", "/tmp")) / f"{name}.lock"
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
