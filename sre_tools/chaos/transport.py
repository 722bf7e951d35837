"""How an activity reaches a node: a small protocol, and the local implementation.

A transport runs an argv (never a shell string) with a timeout and writes files. The local one
acts on this machine whatever the node's name (tests, and drills run on the node itself); the SSH
one (:mod:`sre_tools.transport`) plugs in through the same protocol.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sre_tools.exceptions import SreError


class TransportError(SreError):
    """A command could not be run, timed out, or a file could not be written."""


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str


class Transport(Protocol):
    node: str

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult: ...

    def write_file(
        self, path: str, data: bytes, *, append: bool = False, timeout: float = 30.0
    ) -> None: ...


TransportFactory = Callable[[str], Transport]


class LocalTransport:
    """Runs commands and writes files on this machine."""

    def __init__(self, node: str = "localhost"):
        self.node = node

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        if not argv:
            raise TransportError(f"{self.node}: empty command")
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise TransportError(f"{self.node}: {argv[0]} timed out after {timeout:g} s") from None
        except OSError as exc:
            raise TransportError(
                f"{self.node}: cannot run {argv[0]}: {exc.strerror or exc}"
            ) from None
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def write_file(
        self, path: str, data: bytes, *, append: bool = False, timeout: float = 30.0
    ) -> None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        try:
            fd = os.open(path, flags, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise TransportError(
                f"{self.node}: cannot write {path}: {exc.strerror or exc}"
            ) from None


def local_factory(node: str) -> Transport:
    return LocalTransport(node)
