"""Commands and files on this machine: subprocess with argv lists, never a shell.

Each command starts in a session of its own, so a timeout kills its whole process group (a
shell script's children included), not only the process we started.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from sre_tools.transport.base import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_OUTPUT_BYTES,
    CappedBuffer,
    Result,
    TransportError,
    TransportTimeout,
    check_argv,
    check_timeout,
)

_CHUNK = 65536


class LocalTransport:
    """Run commands on this machine. ``env`` (default: inherited) and ``cwd`` apply to every
    command; ``max_output`` caps what is kept of stdout and of stderr."""

    target = "local"

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.max_output = max_output
        self._clock = clock

    def run(self, argv: Sequence[str], timeout: float, input: bytes | None = None) -> Result:
        args = check_argv(argv, target=self.target)
        timeout = check_timeout(timeout, target=self.target)
        deadline = self._clock() + timeout
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # its own process group: a timeout kills them all
                close_fds=True,
            )
        except OSError as exc:
            raise TransportError(
                f"cannot run {args[0]!r}: {exc.strerror}", target=self.target
            ) from None
        try:
            out, err = self._pump(proc, input, deadline)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(args, timeout)
            rc = proc.wait(remaining)
        except subprocess.TimeoutExpired:
            # Not reaped yet, so the group id cannot have been reused.
            self._kill_group(proc)
            raise TransportTimeout(
                f"{args[0]} did not finish within {timeout:g} s (process group killed)",
                target=self.target,
            ) from None
        except BaseException:
            self._kill_group(proc)
            raise
        finally:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        return Result(rc, out.value(), err.value(), out.truncated, err.truncated)

    def _pump(
        self, proc: subprocess.Popen[bytes], input: bytes | None, deadline: float
    ) -> tuple[CappedBuffer, CappedBuffer]:
        """Feed stdin and drain stdout/stderr until both close; TimeoutExpired at the deadline."""
        out, err = CappedBuffer(self.max_output), CappedBuffer(self.max_output)
        sinks: dict[int, CappedBuffer] = {}
        pending = memoryview(input or b"")
        with selectors.DefaultSelector() as sel:
            for stream, buf in ((proc.stdout, out), (proc.stderr, err)):
                assert stream is not None
                sel.register(stream, selectors.EVENT_READ)
                sinks[stream.fileno()] = buf
            if proc.stdin is not None:
                if pending:
                    os.set_blocking(proc.stdin.fileno(), False)
                    sel.register(proc.stdin, selectors.EVENT_WRITE)
                else:
                    proc.stdin.close()
            while sel.get_map():
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(proc.args, 0)
                for key, _ in sel.select(remaining):
                    ready: IO[bytes] = key.fileobj  # type: ignore[assignment]
                    if ready is proc.stdin:
                        try:
                            pending = pending[os.write(ready.fileno(), pending[:_CHUNK]) :]
                        except BlockingIOError:
                            continue
                        except BrokenPipeError:
                            pending = pending[:0]  # the command stopped reading: fine
                        if not pending:
                            sel.unregister(ready)
                            ready.close()
                        continue
                    chunk = os.read(ready.fileno(), _CHUNK)
                    if chunk:
                        sinks[ready.fileno()].feed(chunk)
                    else:
                        sel.unregister(ready)
        return out, err

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        target = Path(path)
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise TransportError(
                f"cannot write {path}: {exc.strerror}", target=self.target
            ) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise TransportError(
                f"cannot write {path}: {exc.strerror}", target=self.target
            ) from None

    def read_file(self, path: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        try:
            with open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise TransportError(
                f"cannot read {path}: {exc.strerror}", target=self.target
            ) from None
        if len(data) > max_bytes:
            raise TransportError(f"{path} is larger than {max_bytes} bytes", target=self.target)
        return data

    def close(self) -> None:
        """Nothing to release; here so every transport closes the same way."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
