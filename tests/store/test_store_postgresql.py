"""The store on a real PostgreSQL 15: credentials, grants, migrations, copy, the drill lock's
dead holder, a database that goes away. Cases that exist for both engines run on both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sre_tools.chaos.safety import DrillRefused, Safety
from sre_tools.exceptions import StoreError
from sre_tools.health.model import Action
from sre_tools.remediation.config import RemediationConfig
from sre_tools.remediation.engine import Remediator
from sre_tools.remediation.model import RemediationRequest
from sre_tools.remediation.slurm import SlurmClient
from sre_tools.remediation.state import RemediationState
from sre_tools.store import STORE_SCHEMA, Database, Schema, Store
from tests.helpers.postgres import PostgresServer, postgres_server
from tests.remediation.fakes import FakeSlurm, RecordingRunner

ROOT = Path(__file__).resolve().parents[2]
SRE = [sys.executable, "-m", "sre_tools.cli.main"]
Sre = Callable[..., tuple[int, str, str]]
T0 = 1_790_000_000 - 1_790_000_000 % 60
SECRET = "s3cr3t-Pa55"
EXAMPLE_SLOS = ROOT / "sre_tools" / "data" / "examples" / "slos"


def db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def sli_csv(rows: int, slo: str, good: int = 99, total: int = 100) -> str:
    lines = ["timestamp,slo,good,total"]
    lines += [f"@{T0 - 60 * i},{slo},{good - i % 3},{total}" for i in range(rows)]
    return "\n".join(lines) + "\n"


def request(node: str, event: str) -> RemediationRequest:
    return RemediationRequest(
        node=node,
        action=Action.REBOOT,
        event_id=event,
        reason="test",
        source="test",
        checks=("x",),
        gpus=(),
    )


# --- credentials and errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://sre:{SECRET}@db.example/sre",
        f"postgresql://sre@db.example/sre?password={SECRET}",
        f"postgres://sre:{SECRET}@/sre?host=/run/postgresql",
        # libpq "key=value" text pasted after or into the URL: refused, never echoed.
        f"postgresql://sre@127.0.0.1:1/sre password={SECRET}",
        f"postgresql://sre@127.0.0.1:1/sre%20password={SECRET}",
        f"postgresql://sre@127.0.0.1:1/sre\tPassword={SECRET}",
    ],
)
def test_a_password_in_the_url_is_refused_and_never_printed(
    sre: Sre, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = sre("sli", "list", "--store", url)
    assert code == 2 and err.count("\n") == 1, err
    assert "--store" in err and (
        "password in the store URL is refused" in err or "the URL is not shown" in err
    )
    assert SECRET not in err + out
    monkeypatch.setenv("SRE_STORE", url)
    code, out, err = sre("incident", "list")
    assert code == 2 and SECRET not in err + out and "refused" in err
    code, out, err = sre("remediation", "audit", "--audit", url)
    assert code == 2 and SECRET not in err + out and "--audit" in err


def test_a_database_that_is_down_is_a_one_line_runtime_error(sre: Sre) -> None:
    from tests.helpers.procs import free_ports

    url = f"postgresql://sre@127.0.0.1:{free_ports(1)[0]}/sre?connect_timeout=3"
    for argv in (
        ("sli", "list", "--store", url),
        ("slo", "report", str(EXAMPLE_SLOS / "training-api.openslo.yaml"), "--store", url),
        ("store", "migrate", "--store", url),
        ("remediation", "status", "--state", url),
    ):
        code, _, err = sre(*argv)
        assert code == 1 and err.count("\n") == 1, (argv, err)
        assert f"postgresql://sre@127.0.0.1:{url.split(':')[2]}" in err
        assert "cannot connect" in err
        assert "Traceback" not in err


def test_password_from_pgpassfile_over_tcp(pg_server: PostgresServer, tmp_path: Path) -> None:
    db = db_name(pg_server.database())
    pg_server.execute(f"CREATE ROLE pw_user LOGIN PASSWORD '{SECRET}'")
    pg_server.execute(
        "GRANT ALL ON SCHEMA public TO pw_user; "
        "GRANT ALL ON ALL TABLES IN SCHEMA public TO pw_user",
        database=db,
    )
    url = pg_server.tcp_url(db, "pw_user")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    # No password anywhere: libpq is refused, and the message names the store without secrets.
    proc = subprocess.run(
        [*SRE, "sli", "list", "--store", url], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 1 and "password" in proc.stderr.lower(), proc.stderr
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg_server.port}:{db}:pw_user:{SECRET}\n")
    passfile.chmod(0o600)
    proc = subprocess.run(
        [*SRE, "sli", "import", "-", "--store", url],
        input=sli_csv(5, "svc-pw"),
        capture_output=True,
        text=True,
        env={**env, "PGPASSFILE": str(passfile)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    with Store(pg_server.url(db)) as store:
        assert store.query("SELECT COUNT(*) FROM sli_buckets") == [(5,)]


# --- grants: the audit log is append-only for the tools' role ---------------------------------


def test_the_tools_role_cannot_update_or_delete_the_audit_log(
    pg_server: PostgresServer, sre: Sre, tmp_path: Path
) -> None:
    import psycopg

    owner_url = pg_server.database()
    db = db_name(owner_url)
    code, _, err = sre("store", "migrate", "--store", owner_url, "--state", owner_url)
    assert code == 0, err
    pg_server.execute("DO $$ BEGIN CREATE ROLE sre_tools LOGIN; EXCEPTION WHEN duplicate_object "
                      "THEN NULL; END $$")  # fmt: skip
    code, grants, err = sre("store", "grants", "--role", "sre_tools")
    assert code == 0, err
    assert "GRANT SELECT, INSERT ON audit_log TO sre_tools;" in grants
    pg_server.execute(f"GRANT USAGE ON SCHEMA public TO sre_tools; {grants}", database=db)
    tools_url = pg_server.url(db, user="sre_tools")

    # The tools work as that role: a drain, its audit record, an SLI import.
    engine = Remediator(
        RemediationConfig(node_exec="local", max_drained_percent=100),
        SlurmClient(FakeSlurm.cluster({"gpu": ["gpu01", "gpu02"]}), timeout=5),
        tools_url,
        tools_url,
        runner=RecordingRunner(),
        dry_run=False,
    )
    assert engine.handle(request("gpu01", "grant-1")).acted
    assert [r["event_id"] for r in engine.audit.read()] == ["grant-1"]
    (tmp_path / "g.csv").write_text(sli_csv(3, "svc-g"))
    code, _, err = sre("sli", "import", str(tmp_path / "g.csv"), "--store", tools_url)
    assert code == 0, err

    with psycopg.connect(tools_url, autocommit=True) as conn:
        for sql in (
            "UPDATE audit_log SET outcome = 'acted'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "DROP TABLE audit_log",
            "ALTER TABLE audit_log ADD COLUMN x TEXT",
        ):
            with pytest.raises(psycopg.Error, match=r"permission denied|must be owner"):
                conn.execute(sql)
        assert conn.execute("SELECT COUNT(*) FROM audit_log").fetchone() == (1,)
    # The tools' role cannot migrate either: schema changes are the owner's. Opening an
    # unmigrated component never tries: it is refused, naming the command to run.
    with pytest.raises(StoreError, match=r"older than .* run 'sre store migrate' as the tables"):
        Database(tools_url, Schema("extra", "extra", ((),)))
    with pytest.raises(StoreError, match="permission denied"):
        Database(tools_url, Schema("extra", "extra", ((),)), migrate=False).migrate()


# --- migrations -------------------------------------------------------------------------------


def _old_store(location: Path | str) -> None:
    """A store as sre_tools with schema version 1 wrote it."""
    v1 = Schema(STORE_SCHEMA.component, STORE_SCHEMA.what, STORE_SCHEMA.steps[:1])
    db = Database(location, v1, migrate=False)
    db.migrate()
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO incidents (started, resolved, component) VALUES (?, ?, ?)",
            (100, 200, "gpu"),
        )
        cur.execute(
            "INSERT INTO sli_buckets (slo, start, good, total) VALUES (?, ?, ?, ?)",
            ("svc-old", T0, 9, 10),
        )
    db.close()


def test_migration_from_an_older_schema(
    store_location: Path | str, sre: Sre, request: pytest.FixtureRequest
) -> None:
    if not isinstance(store_location, Path):  # a database sre store migrate has not seen
        store_location = request.getfixturevalue("pg_server").database(migrated=False)
    _old_store(store_location)
    with Store(store_location, migrate=False) as store:
        assert store.schema_version() == 1
        assert not store.has_tables("drill_runs", "drill_lock")
    code, out, err = sre("store", "migrate", "--store", str(store_location), "--json")
    assert code == 0, err
    assert json.loads(out)[0]["version_before"] == 1
    assert json.loads(out)[0]["version_after"] == STORE_SCHEMA.version == 2
    with Store(store_location) as store:
        assert store.schema_version() == 2
        assert store.has_tables("drill_runs", "drill_expectations", "drill_lock", "drill_aborts")
        assert store.query("SELECT component FROM incidents") == [("gpu",)]
        assert store.query("SELECT good, total FROM sli_buckets") == [(9.0, 10.0)]
    code, out, _ = sre("store", "migrate", "--store", str(store_location))
    assert code == 0 and "schema 2 -> 2 (up to date)" in out


def test_a_newer_schema_is_refused_and_left_alone(store_location: Path | str, sre: Sre) -> None:
    for opener, what, key in (
        (Store, "store", "store"),
        (RemediationState, "remediation state", "remediation"),
    ):
        opener(store_location).close()
        db = Database(store_location, STORE_SCHEMA, migrate=False)
        version_key = f"schema_version.{key}" if db.postgres else "schema_version"
        with db.transaction() as cur:
            cur.execute("UPDATE meta SET value = '99' WHERE key = ?", (version_key,))
        with pytest.raises(StoreError, match=rf"{what} schema version 99 is newer") as err:
            opener(store_location)
        assert str(store_location).split("?")[0] in str(err.value)
        assert db.query("SELECT value FROM meta WHERE key = ?", (version_key,)) == [("99",)]
        with db.transaction() as cur:
            cur.execute("UPDATE meta SET value = '2' WHERE key = ?", (version_key,))
        db.close()
        if isinstance(store_location, Path):
            store_location = store_location.with_name("state.db")


# --- sre store copy: SQLite into PostgreSQL ---------------------------------------------------

AT = "2026-11-20T12:00:00Z"


def _report(sre: Sre, store: str) -> dict[str, object]:
    code, out, err = sre(
        "report", "--examples", "--store", store, "--at", AT, "--gpus", "128", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    for volatile in ("store", "examples_seeded", "gpu"):
        data.pop(volatile, None)
    return data


def test_copy_round_trip_keeps_rows_and_reports(
    pg_server: PostgresServer, tmp_path: Path, sre: Sre
) -> None:
    sqlite_store = str(tmp_path / "store.db")
    before = _report(sre, sqlite_store)  # seeds the bundled examples: SLIs and incidents
    safety = Safety(Path(sqlite_store))
    safety.set_abort("*", "freeze for the copy", "alice")
    safety.close()
    with Store(sqlite_store) as store:
        with store.transaction() as cur:
            cur.execute(
                "INSERT INTO drill_runs (run_id, drill, nodes, status, started) "
                "VALUES ('r1', 'xid-inject', '[\"gpu01\"]', 'passed', 1.5)"
            )
            cur.execute(
                "INSERT INTO drill_expectations (run_id, name, node, met, measures, seconds) "
                "VALUES ('r1', 'drained', 'gpu01', 1, 'drain', 12.5)"
            )
        counts = {
            t.name: int(store.query(f"SELECT COUNT(*) FROM {t.name}")[0][0])
            for t in STORE_SCHEMA.tables()
        }
        max_id = int(store.query("SELECT MAX(id) FROM incidents")[0][0])
    assert counts["sli_buckets"] > 1000 and counts["incidents"] > 5 and counts["drill_runs"] == 1

    url = pg_server.database()
    code, out, err = sre("store", "copy", sqlite_store, url, "--json")
    assert code == 0, err
    copied = json.loads(out)
    assert {t["table"]: t["rows"] for t in copied["tables"]} == counts
    assert all(t["rows"] == t["source_rows"] for t in copied["tables"])
    code, out, _ = sre("store", "copy", sqlite_store, url)
    assert code == 1 and "not empty" in out + _

    # The same report from either engine; the copy goes on where the file stopped.
    assert _report(sre, url) == before
    with Store(url) as store:
        assert store.query("SELECT run_id, met, seconds FROM drill_runs JOIN "
                           "drill_expectations USING (run_id)") == [("r1", 1, 12.5)]  # fmt: skip
        assert store.query("SELECT scope, operator FROM drill_aborts") == [("*", "alice")]
    code, out, err = sre("incident", "open", "--component", "gpu", "--store", url, "--json")
    assert code == 0, err
    assert json.loads(out)["id"] == max_id + 1


# --- the drill lock: a dead holder on another machine -----------------------------------------

HOLDER = r"""
import sys, time
from sre_tools.chaos.safety import Safety
safety = Safety(sys.argv[1], host="controller-b")
safety.acquire("run-b", "bob")
print("held", flush=True)
time.sleep(120)
"""


def test_a_dead_holder_on_another_machine_is_detected(pg_server: PostgresServer) -> None:
    url = pg_server.database()
    Store(url).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        here = Safety(url, host="controller-a")
        live = here.holder()
        assert live is not None and (live.run_id, live.host, live.stale) == (
            "run-b",
            "controller-b",
            False,
        )
        with pytest.raises(DrillRefused, match="another drill holds the fleet lock: run run-b"):
            here.acquire("run-a", "alice", break_stale=True)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        deadline = time.monotonic() + 20
        while not (dead := here.holder()) or not dead.stale:  # the server ends the session
            assert time.monotonic() < deadline, "the dead holder's session did not end"
            time.sleep(0.1)
        assert dead.state == "unknown"  # another host: dead process or dropped connection
        with pytest.raises(DrillRefused, match="the drill lock may be stale: run run-b"):
            here.acquire("run-a", "alice")
        with pytest.raises(DrillRefused, match="may be stale"):
            here.acquire("run-b", "alice", takeover=True)  # recover alone does not take it
        replaced = here.acquire("run-a", "alice", break_stale=True)
        assert replaced is not None and replaced.run_id == "run-b"
        mine = here.holder()
        assert mine is not None and (mine.run_id, mine.stale) == ("run-a", False)
        here.release("run-a")
        assert here.holder() is None
        here.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)


# --- a database that stops mid-run ------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A server of this module's own: these tests stop it."""
    with postgres_server() as server:
        yield server


def test_database_stopped_mid_import_and_mid_storm(
    own_server: PostgresServer, tmp_path: Path
) -> None:
    url = own_server.database()
    Store(url).close()
    big = tmp_path / "big.csv"
    big.write_text(sli_csv(200_000, "svc-big"))
    importer = subprocess.Popen(
        [*SRE, "sli", "import", str(big), "--store", url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state = RemediationState(url)
    slurm = FakeSlurm.cluster({"gpu": [f"gpu{i:02d}" for i in range(1, 17)]})
    engine = Remediator(
        RemediationConfig(node_exec="local", max_drained_percent=100, max_drained_nodes=16),
        SlurmClient(slurm, timeout=5),
        url,
        url,
        runner=RecordingRunner(),
        dry_run=False,
    )
    assert engine.handle(request("gpu01", "before")).acted
    deadline = time.monotonic() + 30
    with Store(url) as store:
        while not store.query(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'sre_tools' "
            "AND (query LIKE 'INSERT INTO sli%' OR query LIKE 'COPY _sre_bulk%')"
        )[0][0]:
            assert time.monotonic() < deadline and importer.poll() is None
            time.sleep(0.01)
    own_server.stop()
    try:
        _, err = importer.communicate(timeout=60)
        assert importer.returncode == 1, err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert own_server.url("x").split("/x")[0].split("@")[0] in err  # names the store

        # The engine fails closed: the event is an error, nothing is drained.
        drains_before = len(slurm.updates("drain"))
        with pytest.raises(StoreError, match="remediation state"):
            engine.handle(request("gpu02", "during"))
        assert len(slurm.updates("drain")) == drains_before
        with pytest.raises(StoreError, match="cannot connect"):
            RemediationState(url)
    finally:
        own_server.start_again()
    with Store(url) as store:
        # No partial import: neither its rows nor its record; the earlier drain is intact.
        assert store.query("SELECT COUNT(*) FROM sli_buckets") == [(0,)]
        assert store.query("SELECT COUNT(*) FROM imports") == [(0,)]
    assert [d.node for d in RemediationState(url).drains()] == ["gpu01"]
    # The engine's pooled connections were lost with the server: it reconnects.
    assert engine.handle(request("gpu03", "after")).acted
    state.close()


# --- psycopg only for a URL -------------------------------------------------------------------


def test_sqlite_and_health_paths_never_import_psycopg(tmp_path: Path) -> None:
    Store(tmp_path / "s.db").close()
    replay = ROOT / "tests" / "fixtures" / "gpu" / "h100-capture.json"
    code = (
        "import sys\n"
        "from sre_tools.cli.main import main\n"
        f"rc = main(['sli', 'list', '--store', {str(tmp_path / 's.db')!r}])\n"
        f"main(['health', '--replay', {str(replay)!r}])\n"
        "main(['--help'])\n"
        "print(rc, 'psycopg' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.stdout.strip().splitlines()[-1] == "0 False", proc.stdout + proc.stderr


def test_every_statement_has_a_timeout(pg_server: PostgresServer, tmp_path: Path) -> None:
    """A writer stuck behind a lock (here another session holding the store's writer lock) is
    cancelled by statement_timeout: a one-line runtime error, not a hang."""
    import psycopg

    url = pg_server.database()
    store = Store(url)
    key = store.lock_key
    store.close()
    csv = tmp_path / "s.csv"
    csv.write_text(sli_csv(3, "svc-t"))
    with psycopg.connect(url, autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(%s)", (key,))
        start = time.monotonic()
        proc = subprocess.run(
            [*SRE, "sli", "import", str(csv), "--store", url],
            capture_output=True,
            text=True,
            env={**os.environ, "SRE_STORE_STATEMENT_TIMEOUT_MS": "700"},
            timeout=60,
            cwd=ROOT,
        )
        elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    assert "statement timeout" in proc.stderr and proc.stderr.count("\n") == 1
    assert elapsed < 15
    with Store(url) as opened:
        assert opened.query("SELECT COUNT(*) FROM sli_buckets") == [(0,)]


@pytest.mark.parametrize("value", ["0", "abc", "-5", "1e3"])
def test_a_bad_statement_timeout_is_an_input_error(
    pg_server: PostgresServer, sre: Sre, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    url = pg_server.database()
    monkeypatch.setenv("SRE_STORE_STATEMENT_TIMEOUT_MS", value)
    code, _, err = sre("sli", "list", "--store", url)
    assert code == 2 and err.count("\n") == 1
    assert "$SRE_STORE_STATEMENT_TIMEOUT_MS: must be milliseconds" in err


def test_copy_a_remediation_state(pg_server: PostgresServer, tmp_path: Path, sre: Sre) -> None:
    state_file = tmp_path / "state.db"
    slurm = FakeSlurm.cluster({"gpu": ["gpu01", "gpu02", "gpu03"]})
    engine = Remediator(
        RemediationConfig(node_exec="local", max_drained_percent=100),
        SlurmClient(slurm, timeout=5),
        state_file,
        tmp_path / "audit.jsonl",
        runner=RecordingRunner(),
        dry_run=False,
    )
    assert engine.handle(request("gpu02", "copied-1")).acted
    url = pg_server.database()
    code, out, err = sre("store", "copy", str(state_file), url, "--component", "remediation")
    assert code == 0, err
    assert "drains" in out and "events" in out
    copied = RemediationState(url)
    assert [d.to_dict() for d in copied.drains()] == [
        d.to_dict() for d in RemediationState(state_file).drains()
    ]
    # The copy carries the guardrails on: the same event is a duplicate there.
    other = Remediator(
        RemediationConfig(node_exec="local", max_drained_percent=100),
        SlurmClient(slurm, timeout=5),
        url,
        url,
        runner=RecordingRunner(),
        dry_run=False,
    )
    assert other.handle(request("gpu02", "copied-1")).code == "duplicate_event"
    copied.close()
    # The operator's view reads the audit table.
    code, out, err = sre("remediation", "audit", "--audit", url, "--json")
    assert code == 0, err
    assert [(r["event_id"], r["code"]) for r in json.loads(out)] == [
        ("copied-1", "duplicate_event")
    ]


def test_a_server_that_never_answers_times_out(sre: Sre) -> None:
    """TCP connects (the socket listens) but no PostgreSQL speaks: the connect timeout ends it."""
    import socket

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        start = time.monotonic()
        code, _, err = sre(
            "sli", "list", "--store", f"postgresql://sre@127.0.0.1:{port}/sre?connect_timeout=2"
        )
        elapsed = time.monotonic() - start
    finally:
        listener.close()
    assert code == 1 and err.count("\n") == 1, err
    assert f"postgresql://sre@127.0.0.1:{port}/sre" in err and "cannot connect" in err
    assert 1.5 < elapsed < 10, elapsed
