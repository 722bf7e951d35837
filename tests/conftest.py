"""Fixtures shared by the whole suite.

``slurm_cluster``: the one real Slurm cluster (tests/helpers/slurm.py) that every Slurm test
uses, started once per session; under pytest-xdist once per worker, each on its own free ports
and in its own temporary directory. ``cluster``: the same cluster for one test, every served node
idle again before and after it.

``pg_server``: one real PostgreSQL 15 server per session (tests/helpers/postgres.py);
``store_location``: a store location per engine (a SQLite file, a fresh PostgreSQL database), for
the tests that run the same cases on both.

``sre``: run ``sre ARGS...`` in-process, returning (exit code, stdout, stderr).

Every test gets its own ``$XDG_STATE_HOME`` and ``$XDG_DATA_HOME`` (the default homes of the
health and remediation state and of the SQLite store), so no test, and no pytest-xdist worker,
shares them with another or with the user's; and no ``$COLUMNS`` (xdist's workers set 80).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sre_tools.cli.main import main
from tests.helpers.postgres import MissingPostgresError, PostgresServer
from tests.helpers.slurm import MissingSlurmError, SlurmCluster, SlurmClusterError, suite_cluster


@pytest.fixture(autouse=True)
def _private_xdg_homes(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "share"))
    # pytest-xdist's workers run with COLUMNS=80; the CLI's tables then fold where a pipe (no
    # COLUMNS) gets 160 columns. Tests see the pipe's environment; those that want a width set it.
    monkeypatch.delenv("COLUMNS", raising=False)
    # The tests' PostgreSQL role is the superuser, which may rewrite the audit log; the refusal
    # of such a role is tested on its own (tests/store/test_store_review.py).
    monkeypatch.setenv("SRE_STORE_ALLOW_WRITABLE_AUDIT", "1")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """munged + slurmctld + 16 slurmd (gpu01..gpu16) and 96 nodes without one (sim001..sim096);
    partitions gpu, debug (gpu01..gpu04) and sim. Missing Slurm fails, never skips: a skipped
    suite hides what it exists to catch."""
    cluster = suite_cluster()
    try:
        cluster.start()
    except MissingSlurmError as exc:
        pytest.fail(str(exc), pytrace=False)
    except SlurmClusterError as exc:
        pytest.fail(f"the Slurm test cluster did not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The session's cluster, every node idle again before and after the test."""
    slurm_cluster.reset()
    yield slurm_cluster
    slurm_cluster.reset()


CliResult = tuple[int, str, str]


@pytest.fixture
def sre(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``sre ARGS...`` in-process; return (exit code, stdout, stderr)."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


# Container tests that take longest, longest first (measured: docs/benchmarks.md). Under
# pytest-xdist (scripts/test.sh's container step: ``-n 3 --dist load --maxschedchunk 1``) each
# worker holds one running test and one queued; the first chunk of two each worker gets pairs a
# long test with a short one, so that no worker starts with two long ones queued back to back,
# and the remaining long ones start early while short ones fill in around them.
LONGEST_FIRST = (
    "test_molecule_scenario[nvidia_driver-default]",
    "test_molecule_site",
    "test_nvidia_driver_dkms",
    "test_molecule_scenario[gpu_monitoring-default]",
    "test_molecule_scenario[container_runtime-default]",
    "test_molecule_scenario[nvidia_fabricmanager-default]",
    "test_molecule_scenario[nvidia_mig-default]",
    "test_molecule_scenario[nvidia_mig-alternative]",
)


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: order only what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.nodeid.rsplit("::", 1)[-1]
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    ranked = sorted(items, key=rank)  # stable: everything else keeps its collection order
    long = [item for item in ranked if rank(item) < len(LONGEST_FIRST)]
    if not long:
        return
    rest = [item for item in ranked if rank(item) == len(LONGEST_FIRST)]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    head: list[pytest.Item] = []
    for item in long[:workers]:
        head.append(item)
        if workers > 1 and rest:
            head.append(rest.pop())  # a short one (collection order puts light tests last)
    items[:] = head + long[workers:] + rest


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL 15 server per session (per pytest-xdist worker). Missing binaries fail,
    never skip."""
    try:
        server = PostgresServer()
        server.start()
    except MissingPostgresError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a store lives, once per engine: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "store.db"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.database()
