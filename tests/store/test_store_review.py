"""Findings of the PostgreSQL review, each proved against a real PostgreSQL 15 (or, for input
checks, without a server): a mistyped URL, the isolation level, the drill lock of a live holder,
dead pooled connections, implicit migrations, secrets in URLs, the copy's source."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sre_tools.chaos.safety import FLEET_SESSION_LOCK, DrillRefused, Safety
from sre_tools.exceptions import StoreError, ValidationError
from sre_tools.health.model import Action
from sre_tools.remediation.config import RemediationConfig
from sre_tools.remediation.engine import Remediator
from sre_tools.remediation.model import RemediationRequest
from sre_tools.remediation.slurm import SlurmClient
from sre_tools.remediation.state import RemediationState
from sre_tools.store import Store, as_location, default_store_path
from tests.helpers.postgres import PostgresServer
from tests.remediation.fakes import FakeSlurm, RecordingRunner

Sre = Callable[..., tuple[int, str, str]]
ROOT = Path(__file__).resolve().parents[2]


def db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def request(node: str, event: str) -> RemediationRequest:
    return RemediationRequest(
        node=node, action=Action.REBOOT, event_id=event, reason="t", source="t", checks=("x",)
    )


# --- 1. a URL is never taken for a file path ----------------------------------------------------

MISTYPED = [
    "postgresql+psycopg://sre@db.example/sre",
    " postgresql://sre@db.example/sre",
    "postgresql://sre@db.example/sre ",
    "mysql://sre@db.example/sre",
    "sqlite://store.db",
]


@pytest.mark.parametrize("url", MISTYPED)
def test_a_mistyped_url_is_an_input_error_never_a_sqlite_file(
    url: str, sre: Sre, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = sre("sli", "list", "--store", url)
    assert code == 2, (code, out, err)
    assert "--store" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValidationError, match=r"\$SRE_STORE"):
        monkeypatch.setenv("SRE_STORE", url)
        default_store_path()
    monkeypatch.setenv("SRE_REMEDIATION_STATE", url)
    code, _, err = sre("remediation", "status")
    assert code == 2 and "$SRE_REMEDIATION_STATE" in err, err
    assert list(tmp_path.rglob("*")) == []  # no file, no directory was created


def test_the_scheme_is_compared_in_any_case() -> None:
    assert as_location("PostgreSQL://sre@db.example/sre") == "postgresql://sre@db.example/sre"
    assert as_location("Postgres://sre@/sre?host=/run/x") == "postgres://sre@/sre?host=/run/x"
    assert as_location("relative/store.db") == Path("relative/store.db")


# --- 2. write transactions are READ COMMITTED whatever the database's default ------------------


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_the_budget_holds_when_the_database_default_isolation_is_stricter(
    pg_server: PostgresServer, isolation: str
) -> None:
    """Controller A holds the state's lock and reserves n1; B's reserve of n2 waits for the lock.
    Had B's snapshot been taken before the wait (REPEATABLE READ, SERIALIZABLE by default), it
    would not see A's reservation and would drain past max_drained_nodes=1."""
    import psycopg

    url = pg_server.database()
    state = RemediationState(url)
    state.close()
    pg_server.execute(
        f"ALTER DATABASE {db_name(url)} SET default_transaction_isolation = '{isolation}'"
    )
    state = RemediationState(url)
    assert state.db.query("SHOW default_transaction_isolation") == [(isolation,)]
    config = RemediationConfig(max_drained_nodes=1, max_drained_percent=100)
    with psycopg.connect(url, autocommit=True) as a:
        a.execute("BEGIN")
        a.execute("SELECT pg_advisory_xact_lock(%s)", (state.db.lock_key,))
        a.execute(
            "INSERT INTO drains (node, action, event_id, reason, status, reserved_at) "
            "VALUES ('n1', 'reboot', 'e1', 'r', 'reserved', 0)"
        )
        a.execute("INSERT INTO drain_partitions VALUES ('n1', 'p')")
        result: dict[str, object] = {}

        def reserve_b() -> None:
            result["b"] = state.reserve(request("n2", "e2"), "sre: x", {"p": 10}, 1.0, config)

        thread = threading.Thread(target=reserve_b)
        thread.start()
        deadline = time.monotonic() + 10
        while not a.execute(  # B waits for the lock A holds
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "B never waited for the lock"
            time.sleep(0.05)
        a.execute("COMMIT")
        thread.join(timeout=30)
    refusal = result["b"]
    assert refusal is not None and getattr(refusal, "code", None) == "budget_exhausted", refusal
    assert state.db.query("SELECT node FROM drains ORDER BY node") == [("n1",)]
    state.close()


# --- 3. a live drill holder is never taken for a dead one --------------------------------------

HOLDER = """
import sys, time
from sre_tools.chaos.safety import Safety
s = Safety(sys.argv[1], host=sys.argv[2])
s.acquire('run-1', 'alice')
print('held', flush=True)
time.sleep(120)
"""


def _end_lock_sessions(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        ended = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND objid = %s",
            (FLEET_SESSION_LOCK & 0xFFFFFFFF,),
        ).fetchall()
    assert ended == [(True,)]


@pytest.mark.parametrize("where", ["this-host", "other-host"])
def test_a_holder_whose_lock_session_ended_is_not_taken_over_by_recover(
    pg_server: PostgresServer, where: str
) -> None:
    """Only the holder's lock session ends (a network cut, a DBA's pg_terminate_backend); its
    process lives. On its own host it is alive (pid), so nothing takes its lock; seen from
    another host it is 'possibly dead': recover alone refuses, --break-stale-lock takes it."""
    url = pg_server.database()
    Store(url).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, "ctl-a"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        _end_lock_sessions(url)
        other = Safety(url, host="ctl-a" if where == "this-host" else "ctl-b")
        seen = other.holder()
        assert seen is not None and seen.pid == holder.pid
        with pytest.raises(DrillRefused) as refused:
            other.acquire("run-1", "bob", takeover=True)  # what `sre drill recover` does
        if where == "this-host":
            assert (seen.stale, seen.state) == (False, "live")
            assert "another drill holds the fleet lock" in str(refused.value)
            with pytest.raises(DrillRefused, match="another drill holds"):
                other.acquire("run-2", "bob", break_stale=True)
        else:
            assert (seen.stale, seen.state) == (True, "unknown")
            assert "may be stale" in str(refused.value) and "--break-stale-lock" in str(
                refused.value
            )
            replaced = other.acquire("run-1", "bob", takeover=True, break_stale=True)
            assert replaced is not None and replaced.run_id == "run-1"
        other.close()
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_the_lock_session_survives_idle_session_timeout(pg_server: PostgresServer) -> None:
    url = pg_server.database()
    Store(url).close()
    pg_server.execute(f"ALTER DATABASE {db_name(url)} SET idle_session_timeout = '1s'")
    mine = Safety(url)
    watcher = Safety(url, host="elsewhere")
    mine.acquire("run-1", "alice")
    time.sleep(2.5)
    assert not mine.lock_lost()
    seen = watcher.holder()
    assert seen is not None and seen.state == "live"
    mine.release("run-1")
    mine.close()
    watcher.close()


# --- 4. a connection the server ended is not reused; no decision is left unaudited -------------


def _engine(state_url: str, audit_url: str, slurm: FakeSlurm) -> Remediator:
    return Remediator(
        RemediationConfig(node_exec="local", max_drained_percent=100),
        SlurmClient(slurm, timeout=5),
        state_url,
        audit_url,
        runner=RecordingRunner(),
        dry_run=False,
    )


def test_after_the_server_ends_every_session_the_next_event_acts_and_is_audited(
    pg_server: PostgresServer,
) -> None:
    """A long-lived engine (the Salt runner) keeps pooled connections; a server restart, a
    failover or idle_session_timeout ends them. The next event must neither fail nor leave a
    drain without its audit row."""
    import psycopg

    url = pg_server.database()
    audit_url = url + "&application_name=sre_audit"
    slurm = FakeSlurm.cluster({"gpu": ["n1", "n2", "n3"]})
    engine = _engine(url, audit_url, slurm)
    assert engine.handle(request("n1", "ev1")).acted
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        ended = conn.execute(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
            "AND pid <> pg_backend_pid()",
            (db_name(url),),
        ).fetchone()
    assert ended is not None and ended[0] >= 2
    assert engine.handle(request("n2", "ev2")).acted
    assert [r["event_id"] for r in engine.audit.read()] == ["ev1", "ev2"]
    assert [d.node for d in engine.state.drains()] == ["n1", "n2"]
    engine.state.close()
    engine.audit.close()


def test_an_audit_database_that_refuses_a_record_spools_it_until_the_next_write(
    pg_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = pg_server.database()
    slurm = FakeSlurm.cluster({"gpu": ["n1", "n2", "n3"]})
    engine = _engine(url, url, slurm)
    assert engine.handle(request("n1", "ev1")).acted
    pg_server.execute("ALTER TABLE audit_log RENAME TO audit_log_away", database=db_name(url))
    result = engine.handle(request("n2", "ev2"))  # the drain is done; its record must survive
    assert result.acted
    assert engine.audit.spool is not None and engine.audit.spool.exists()
    assert "audit log" in caplog.text and "until the next audit write succeeds" in caplog.text
    assert "remediation state" not in caplog.text
    pg_server.execute("ALTER TABLE audit_log_away RENAME TO audit_log", database=db_name(url))
    engine.handle(request("n3", "ev3"))  # acted or refused: audited either way
    assert [r["event_id"] for r in engine.audit.read()] == ["ev1", "ev2", "ev3"]
    assert engine.audit.spool.read_text() == ""
    engine.state.close()
    engine.audit.close()


# --- 5. PostgreSQL is migrated only by `sre store migrate`; the audit log stays append-only ----


def test_opening_an_unmigrated_database_never_migrates_it(
    pg_server: PostgresServer, sre: Sre
) -> None:
    """PostgreSQL 13/14 let PUBLIC create in schema public: a controller opening the state used
    to create the tables as the tools' role, which then owned audit_log and could DELETE it."""
    from sre_tools.remediation.audit import AuditLog

    url = pg_server.database(migrated=False)
    pg_server.execute(
        "DO $$ BEGIN CREATE ROLE sre_tools LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    pg_server.execute("GRANT CREATE, USAGE ON SCHEMA public TO PUBLIC", database=db_name(url))
    tools = pg_server.url(db_name(url), user="sre_tools")
    for opener in (AuditLog, RemediationState, Store):
        with pytest.raises(StoreError, match=r"run 'sre store migrate' as the tables' owner"):
            opener(tools)
    code, _, err = sre("sli", "list", "--store", tools)
    assert code == 1 and "sre store migrate" in err and len(err.strip().splitlines()) == 1
    assert pg_server.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'",
                             database=db_name(url)) == [(0,)]  # fmt: skip


def test_a_role_that_could_rewrite_the_audit_log_is_refused(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, sre: Sre
) -> None:
    monkeypatch.delenv("SRE_STORE_ALLOW_WRITABLE_AUDIT")
    url = pg_server.database()  # owned by the superuser
    with pytest.raises(StoreError, match=r"may UPDATE, DELETE or TRUNCATE audit_log"):
        RemediationState(url)
    code, _, err = sre("remediation", "audit", "--audit", url)
    assert code == 1 and "audit_log" in err, err
    pg_server.execute(
        "DO $$ BEGIN CREATE ROLE sre_tools LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    code, grants, _ = sre("store", "grants", "--role", "sre_tools")
    pg_server.execute(f"GRANT USAGE ON SCHEMA public TO sre_tools; {grants}", database=db_name(url))
    state = RemediationState(pg_server.url(db_name(url), user="sre_tools"))  # granted: accepted
    assert state.drains() == []
    state.close()
    monkeypatch.setenv("SRE_STORE_ALLOW_WRITABLE_AUDIT", "1")
    RemediationState(url).close()


# --- 6. no secret in a URL is accepted or printed -----------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["sslpassword=hunter2", "pass%77ord=hunter2", "PASSWORD=hunter2", "SslPassword=hunter2"],
)
def test_a_secret_parameter_is_refused_and_never_printed(query: str, sre: Sre) -> None:
    url = f"postgresql://sre@db.example/sre?sslmode=verify-full&{query}"
    code, out, err = sre("store", "migrate", "--store", url)
    assert code == 2, (out, err)
    assert "hunter2" not in out + err and "***" in err


# --- 10, 11. the lock check is per database; bulk inserts and literal percent signs -----------


def test_a_session_lock_in_another_database_is_not_this_ones(pg_server: PostgresServer) -> None:
    elsewhere, here = Store(pg_server.database()), Store(pg_server.database())
    assert elsewhere.hold_session_lock(FLEET_SESSION_LOCK)
    assert elsewhere.session_lock_held(FLEET_SESSION_LOCK)
    assert not here.session_lock_held(FLEET_SESSION_LOCK)
    elsewhere.close()
    here.close()


def test_insert_many_twice_in_one_transaction_and_a_literal_percent(
    pg_server: PostgresServer,
) -> None:
    from sre_tools.store import BULK_MIN_ROWS

    with Store(pg_server.database()) as store:
        insert = "INSERT INTO sli_buckets (slo, start, good, total) VALUES (?, ?, ?, ?)"
        with store.transaction() as cur:
            cur.insert_many(insert, [("a", i, 1, 1) for i in range(BULK_MIN_ROWS)])
            cur.insert_many(insert, [("b", i, 1, 1) for i in range(BULK_MIN_ROWS)])
        assert store.query("SELECT slo, COUNT(*) FROM sli_buckets GROUP BY slo ORDER BY slo") == [
            ("a", BULK_MIN_ROWS),
            ("b", BULK_MIN_ROWS),
        ]
        with store.transaction() as cur:
            assert cur.execute("SELECT '100%'").fetchone() == ("100%",)
            assert cur.execute("SELECT '100%' || ?", ("!",)).fetchone() == ("100%!",)


# --- 7. sre store copy only reads its source ---------------------------------------------------


def test_copy_leaves_an_older_sqlite_source_as_it_was(
    pg_server: PostgresServer, tmp_path: Path, sre: Sre
) -> None:
    from sre_tools.store import STORE_SCHEMA, Database, Schema

    source = tmp_path / "old.db"
    v1 = Schema(STORE_SCHEMA.component, STORE_SCHEMA.what, STORE_SCHEMA.steps[:1])
    old = Database(source, v1)
    with old.transaction() as cur:
        cur.execute("INSERT INTO incidents (started, component) VALUES (?, ?)", (100, "gpu"))
    old.close()
    destination = pg_server.database()
    code, out, err = sre("store", "copy", str(source), destination, "--json")
    assert code == 0, err
    assert {t["table"]: t["rows"] for t in json.loads(out)["tables"]}["incidents"] == 1
    after = Database(source, v1, migrate=False)
    assert after.schema_version() == 1  # the release that wrote it still opens it
    assert not after.has_tables("drill_runs")
    after.close()


# --- 8, 9. keepalives on every connection; libpq's own options survive ------------------------


def test_tcp_connections_have_keepalives_and_a_send_timeout(pg_server: PostgresServer) -> None:
    from sre_tools.store import TCP_DEFAULTS

    url = pg_server.database()
    with Store(url) as store:
        params = store.conn.info.get_parameters()
        for key, value in TCP_DEFAULTS.items():
            assert params.get(key) == str(value), key
    with Store(url + "&keepalives_idle=7") as store:
        assert store.conn.info.get_parameters()["keepalives_idle"] == "7"


def test_service_file_options_and_pgoptions_survive(
    pg_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_server.database()
    db = db_name(url)
    services = tmp_path / "pg_service.conf"
    services.write_text(
        f"[sre]\nhost={pg_server.socket_dir}\nport={pg_server.port}\ndbname={db}\n"
        "user=postgres\noptions=-c statement_timeout=4321 -c work_mem=5MB\n"
    )
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    with Store("postgresql:///?service=sre") as store:
        assert store.query("SHOW statement_timeout") == [("4321ms",)]
        assert store.query("SHOW work_mem") == [("5MB",)]
        assert store.query("SHOW idle_in_transaction_session_timeout") == [("1min",)]
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=7MB")
    with Store(url) as store:
        assert store.query("SHOW work_mem") == [("7MB",)]
        assert store.query("SHOW statement_timeout") == [("30s",)]  # ours where none is set


def test_where_keeps_the_filters_asked_for_and_binds_every_value(tmp_path: Path) -> None:
    """One helper builds the optional filters of the audit, drill and diag queries: a None
    filter is left out, a falsy value (0, "") is kept, values are bound, never spliced."""
    from sre_tools.store import where

    assert where() == ("", ())
    assert where(("a = ?", None), ("b >= ?", None)) == ("", ())
    assert where(("a = ?", 0), ("b >= ?", None), ("c < ?", "")) == (
        " WHERE a = ? AND c < ?",
        (0, ""),
    )
    store = Store(tmp_path / "s.db")
    try:
        with store.transaction() as cur:
            cur.execute("CREATE TABLE t (k TEXT, v INTEGER)")
            cur.executemany("INSERT INTO t VALUES (?, ?)", [("x", 1), ("y'; DROP TABLE t; --", 2)])
        filters, params = where(("k = ?", "y'; DROP TABLE t; --"), ("v >= ?", None))
        assert store.query(f"SELECT v FROM t{filters}", params) == [(2,)]
        assert store.query("SELECT count(*) FROM t")[0][0] == 2
    finally:
        store.close()


@pytest.mark.parametrize(
    ("corrupt", "args", "message"),
    [
        (
            "UPDATE meta SET value = 'abc' WHERE key = 'schema_version'",
            ("incident", "list"),
            "corrupt store: schema version 'abc' is not a number",
        ),
        (
            "UPDATE meta SET value = 'abc' WHERE key = 'schema_version'",
            ("store", "migrate"),
            "corrupt store: schema version 'abc' is not a number",
        ),
        (
            "UPDATE incidents SET started = 'garbage'",
            ("incident", "list"),
            "corrupt incidents table: row '1' holds text where a number belongs",
        ),
    ],
)
def test_corrupt_values_in_the_store_are_a_one_line_runtime_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    corrupt: str,
    args: tuple[str, ...],
    message: str,
) -> None:
    """A store edited by hand or damaged: exit 1 naming the file, never an internal error, and
    nothing rewritten (the row stays as it was for whoever restores it)."""
    import sqlite3

    from sre_tools.cli.main import main

    path = tmp_path / "s.db"
    assert main(["incident", "open", "--component", "gpu", "--store", str(path)]) == 0
    with sqlite3.connect(path) as conn:
        conn.execute(corrupt)
    before = path.read_bytes()
    capsys.readouterr()
    assert main([*args, "--store", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: {message}" in err and "internal" not in err
    assert path.read_bytes() == before
