"""Subprocesses and loopback ports for the container test helpers (one definition each)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from typing import Any


class NodeError(RuntimeError):
    """A container or its sshd did not come up; the message carries the evidence."""


def run(argv: Sequence[str], timeout: float = 120, check: bool = True, **kw: Any) -> str:
    """``argv``'s stdout; NodeError with its stderr when it fails or takes over ``timeout``."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kw
        )
    except subprocess.TimeoutExpired as exc:
        raise NodeError(f"timed out after {timeout} s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise NodeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")
