"""Commands and files on a node over SSH (paramiko), with the node's host key verified.

- Host keys: only the known_hosts file of the :class:`SshTarget` (and the system's files when
  it asks for them). An unknown key is refused by a :class:`paramiko.RejectPolicy`, a changed
  one by paramiko's check; nothing is ever added to a known_hosts file.
- Authentication: the target's key file only; no agent, no ``~/.ssh`` keys, no passwords.
- Timeouts: on the TCP connect, the SSH banner and the key exchange (``connect_timeout``), on
  authentication (``auth_timeout``), on each command (its ``timeout``) and on each file operation
  (``file_timeout``). A command runs under coreutils ``timeout`` on the node as well, so one
  that outlives its timeout is killed there too, not only abandoned here.
- Commands: ``shlex.join(argv)``, the one string the SSH protocol carries; every argument is
  quoted, so nothing from inventory or event data is read by the remote shell as syntax.
- Files: SFTP; writes go to a temporary name beside the target, then a rename.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import shlex
import time
from collections.abc import Sequence
from pathlib import PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sre_tools.transport.base import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_OUTPUT_BYTES,
    AuthError,
    CappedBuffer,
    ConnectError,
    HostKeyError,
    Result,
    TransportError,
    TransportTimeout,
    check_argv,
    check_timeout,
)

if TYPE_CHECKING:
    import paramiko

    from sre_tools.transport.inventory import SshTarget

_CHUNK = 65536
# Seconds the node's `timeout` waits past ours before it stops the command (TERM, then KILL
# after as many seconds again): we give up first and report; the node cleans up.
REMOTE_GRACE = 2


def _paramiko() -> Any:
    try:
        import paramiko
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConnectError(
            "the SSH transport needs paramiko: pip install 'sre-tools[chaos]'", target="ssh"
        ) from None
    return paramiko


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class SshTransport:
    """Run commands on ``target`` over SSH. Connects on first use; use as a context manager."""

    def __init__(
        self,
        target: SshTarget,
        *,
        connect_timeout: float = 10.0,
        auth_timeout: float = 10.0,
        file_timeout: float = 30.0,
        max_output: int = DEFAULT_MAX_OUTPUT_BYTES,
        kill_remote: bool = True,
    ):
        self.ssh_target = target
        self.target = f"{target.user}@{target.host}:{target.port}"
        self.connect_timeout = connect_timeout
        self.auth_timeout = auth_timeout
        self.file_timeout = file_timeout
        self.max_output = max_output
        self.kill_remote = kill_remote
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> None:
        if self._client is not None:
            return
        paramiko = _paramiko()
        t = self.ssh_target
        known = str(t.known_hosts)
        name = _known_hosts_name(t.host, t.port)
        target = self.target

        class _RefuseUnknown(paramiko.RejectPolicy):  # type: ignore[misc,name-defined]
            def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
                raise HostKeyError(
                    f"host key for {hostname} is not in {known} (unknown host; server offered "
                    f"{key.get_name()} {key.fingerprint}); add the node's key from a trusted "
                    "source, never from what the server offers",
                    target=target,
                )

        try:
            pkey = paramiko.PKey.from_path(str(t.key_file))
        except FileNotFoundError:
            raise ConnectError(f"key file {t.key_file} does not exist", target=target) from None
        except paramiko.PasswordRequiredException:
            raise ConnectError(
                f"key file {t.key_file} is encrypted; use a key without a passphrase",
                target=target,
            ) from None
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise ConnectError(f"key file {t.key_file} unreadable: {exc}", target=target) from None

        client = paramiko.SSHClient()
        try:
            if t.load_system_host_keys:
                client.load_system_host_keys()
            # Into the client's host keys without a filename: paramiko never writes this file.
            client.get_host_keys().load(known)
        except FileNotFoundError:
            client.close()
            raise HostKeyError(f"known_hosts file {known} does not exist", target=target) from None
        except (OSError, paramiko.SSHException) as exc:
            client.close()
            raise HostKeyError(
                f"known_hosts file {known} unreadable: {exc}", target=target
            ) from None
        client.set_missing_host_key_policy(_RefuseUnknown())
        try:
            client.connect(
                t.host,
                port=t.port,
                username=t.user,
                pkey=pkey,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.auth_timeout,
                channel_timeout=self.connect_timeout,
                allow_agent=False,
                look_for_keys=False,
                transport_factory=self._transport_factory,
            )
        except HostKeyError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"host key for {name} does not match {known} (changed key: server offered "
                f"{exc.key.get_name()} {exc.key.fingerprint}, expected "
                f"{exc.expected_key.fingerprint}); refusing to connect",
                target=target,
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            raise AuthError(
                f"authentication as {t.user} with key {t.key_file} refused", target=target
            ) from None
        except TimeoutError:
            client.close()
            raise ConnectError(
                f"no answer within {self.connect_timeout:g} s", target=target
            ) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            client.close()
            raise ConnectError(f"cannot connect: {exc}", target=target) from None
        self._client = client

    def _transport_factory(self, sock: Any, **kwargs: Any) -> paramiko.Transport:
        """paramiko's Transport with the key exchange bounded by ``connect_timeout`` too."""
        transport = _paramiko().Transport(sock, **kwargs)
        transport.handshake_timeout = self.connect_timeout
        return transport

    def _transport(self) -> paramiko.Transport:
        self.connect()
        assert self._client is not None
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            self.close()
            raise ConnectError("connection lost", target=self.target)
        return transport

    # -- commands ---------------------------------------------------------------------------

    def command_line(self, argv: Sequence[str], timeout: float) -> str:
        """The string sent to the node: ``argv`` quoted by :func:`shlex.join`, under the node's
        ``timeout`` when ``kill_remote``."""
        args = check_argv(argv, target=self.target)
        if self.kill_remote:
            limit = math.ceil(timeout) + REMOTE_GRACE
            args = ["timeout", "--kill-after", str(REMOTE_GRACE), str(limit), *args]
        return shlex.join(args)

    def run(self, argv: Sequence[str], timeout: float, input: bytes | None = None) -> Result:
        timeout = check_timeout(timeout, target=self.target)
        command = self.command_line(argv, timeout)
        deadline = time.monotonic() + timeout
        name = check_argv(argv, target=self.target)[0]
        transport = self._transport()
        try:
            chan = transport.open_session(timeout=min(timeout, self.connect_timeout))
        except Exception as exc:
            raise ConnectError(f"cannot open a session: {exc}", target=self.target) from None
        out, err = CappedBuffer(self.max_output), CappedBuffer(self.max_output)
        try:
            chan.settimeout(timeout)
            chan.exec_command(command)
            # stdin is fed inside the loop, as the window allows: a command that writes before
            # it reads must not block us (nor we it).
            pending = memoryview(input or b"")
            if not pending:
                chan.shutdown_write()
            chan.settimeout(0.0)
            while True:
                got = False
                if pending and chan.send_ready():
                    try:
                        pending = pending[chan.send(bytes(pending[:_CHUNK])) :]
                    except OSError:  # the command closed its stdin: fine
                        pending = pending[:0]
                    if not pending:
                        chan.shutdown_write()
                    got = True
                while chan.recv_ready():
                    out.feed(chan.recv(_CHUNK))
                    got = True
                while chan.recv_stderr_ready():
                    err.feed(chan.recv_stderr(_CHUNK))
                    got = True
                # Output may still arrive after the exit status: done at EOF (or close).
                done = chan.exit_status_ready() and (chan.eof_received or chan.closed)
                if done and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if time.monotonic() >= deadline:
                    raise TimeoutError
                if not got:
                    time.sleep(0.02)
            rc = chan.recv_exit_status()
        except TimeoutError:
            raise TransportTimeout(
                f"{name} did not finish within {timeout:g} s (session closed"
                + ("; the node's `timeout` kills it)" if self.kill_remote else ")"),
                target=self.target,
            ) from None
        except (OSError, EOFError, _paramiko().SSHException) as exc:
            raise TransportError(f"{name}: {exc}", target=self.target) from None
        finally:
            chan.close()
        if rc < 0:  # the server sent no exit status (the channel closed first)
            raise TransportError(f"{name}: no exit status from the node", target=self.target)
        return Result(rc, out.value(), err.value(), out.truncated, err.truncated)

    # -- files ------------------------------------------------------------------------------

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            transport = self._transport()
            paramiko = _paramiko()
            try:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
            except Exception as exc:
                raise TransportError(f"cannot start SFTP: {exc}", target=self.target) from None
            assert self._sftp is not None
            self._sftp.get_channel().settimeout(self.file_timeout)
        return self._sftp

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        sftp = self._sftp_client()
        dest = PurePosixPath(path)
        tmp = str(dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp"))
        try:
            with sftp.open(tmp, "wb") as fh:
                fh.chmod(mode)
                fh.write(data)
            sftp.posix_rename(tmp, path)
        except TimeoutError:
            self._drop_sftp()
            raise TransportTimeout(
                f"writing {path} took longer than {self.file_timeout:g} s", target=self.target
            ) from None
        except OSError as exc:
            with contextlib.suppress(Exception):
                sftp.remove(tmp)
            raise TransportError(f"cannot write {path}: {exc}", target=self.target) from None

    def read_file(self, path: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "rb") as fh:
                data = bytearray()
                while len(data) <= max_bytes:
                    chunk = fh.read(min(_CHUNK, max_bytes + 1 - len(data)))
                    if not chunk:
                        break
                    data += chunk
        except TimeoutError:
            self._drop_sftp()
            raise TransportTimeout(
                f"reading {path} took longer than {self.file_timeout:g} s", target=self.target
            ) from None
        except OSError as exc:
            raise TransportError(f"cannot read {path}: {exc}", target=self.target) from None
        if len(data) > max_bytes:
            raise TransportError(f"{path} is larger than {max_bytes} bytes", target=self.target)
        return bytes(data)

    def _drop_sftp(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
            self._sftp = None

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        self._drop_sftp()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
