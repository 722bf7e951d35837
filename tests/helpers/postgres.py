"""A real PostgreSQL 15 server (Debian's ``postgresql-15``) for the store tests.

``initdb`` in a temporary directory, ``postgres`` listening on a Unix socket in that directory
and on a free loopback port. PostgreSQL refuses to run as root: under root the server runs as
``nobody`` (through ``runuser``), in a directory that user owns. Local (socket) connections are
trusted; TCP connections on loopback need a password (scram-sha-256), so that a test can prove a
password read from ``PGPASSFILE`` works. Missing binaries fail the tests, never skip them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers.procs import CommandError, free_ports, run

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"
RUN_AS = "nobody"
# Resolved once, at import: a test may start the session's server while it has PATH narrowed to
# its stand-in tools (tests/diag's fake dcgmi).
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


class MissingPostgresError(RuntimeError):
    """The PostgreSQL 15 server binaries are not installed."""


def _as_server_user(argv: list[str]) -> list[str]:
    return [RUNUSER, "-u", RUN_AS, "--", *argv] if os.geteuid() == 0 else argv


class PostgresServer:
    """One server; :meth:`database` gives each test a fresh, empty database."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        """``settings``: server options over the tests' (``fsync`` off: a test server's data
        need not survive a crash of the machine)."""
        self.settings = {"fsync": "off", "max_connections": "200", "shared_buffers": "32MB"}
        self.settings.update(settings or {})
        for tool in ("initdb", "postgres", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                raise MissingPostgresError(
                    f"{PG_BIN / tool} not found: install postgresql-15 "
                    "(scripts/bootstrap.sh with SRE_NEED_POSTGRESQL=1)"
                )
        # Under /tmp, not pytest's tmp_path: its parents are 0700 root, closed to the server user.
        self.root = Path(tempfile.mkdtemp(prefix="sre-pg-"))
        self.data = self.root / "data"
        self.port = free_ports(1)[0]
        self.process: subprocess.Popen[str] | None = None
        if os.geteuid() == 0:
            shutil.chown(self.root, user=RUN_AS)
        self.root.chmod(0o755)

    @property
    def socket_dir(self) -> str:
        return str(self.root)

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        """A URL through the Unix socket (no password: local connections are trusted)."""
        return f"postgresql://{user}@/{database}?host={self.socket_dir}&port={self.port}"

    def tcp_url(self, database: str, user: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def start(self) -> None:
        run(
            _as_server_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            timeout=120,
        )
        log = self.root / "server.log"
        log.touch()
        if os.geteuid() == 0:
            shutil.chown(log, user=RUN_AS)
        self.start_again()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise CommandError(f"postgres exited:\n{self.log()}")
            probe = run(
                [str(PG_BIN / "pg_isready"), "-h", self.socket_dir, "-p", str(self.port)],
                check=False,
                timeout=10,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise CommandError(f"postgres did not start within {timeout:g}s:\n{self.log()}")

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        """A fast shutdown (clients are disconnected, committed data is kept)."""
        if self.process is None:
            return
        run(
            _as_server_user(
                [str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]
            ),
            check=False,
            timeout=60,
        )
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def start_again(self) -> None:
        """Start the (stopped) server on its data and port."""
        with (self.root / "server.log").open("a") as log:
            self.process = subprocess.Popen(
                _as_server_user(
                    [
                        str(PG_BIN / "postgres"),
                        "-D",
                        str(self.data),
                        "-k",
                        self.socket_dir,
                        "-p",
                        str(self.port),
                        "-c",
                        "listen_addresses=127.0.0.1",
                        *(a for k, v in self.settings.items() for a in ("-c", f"{k}={v}")),
                    ]
                ),
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )
        self.wait_ready()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- databases and roles ---

    def execute(self, sql: str, database: str = "postgres", user: str = SUPERUSER) -> list[Any]:
        import psycopg

        with psycopg.connect(self.url(database, user), autocommit=True) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []

    def database(self, *, migrated: bool = True) -> str:
        """A fresh database; its URL (owner: the superuser). ``migrated``: ``sre store migrate``
        has run on it for every component, as the owner (the tools never migrate PostgreSQL)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE DATABASE {name}")
        url = self.url(name)
        if migrated:
            from sre_tools import store_admin

            for component in store_admin.schemas():
                store_admin.migrate(url, component)
        return url


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()
