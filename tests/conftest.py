"""Fixtures shared by the whole suite.

``slurm_cluster``: the one real Slurm cluster (tests/helpers/slurm.py) that every Slurm test
uses, started once per session; under pytest-xdist once per worker, each on its own free ports
and in its own temporary directory. ``cluster``: the same cluster for one test, every served node
idle again before and after it.

``sre``: run ``sre ARGS...`` in-process, returning (exit code, stdout, stderr).

Every test gets its own ``$XDG_STATE_HOME`` and ``$XDG_DATA_HOME`` (the default homes of the
health and remediation state and of the SQLite store), so no test, and no pytest-xdist worker,
shares them with another or with the user's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sre_tools.cli.main import main
from tests.helpers.slurm import MissingSlurmError, SlurmCluster, SlurmClusterError, suite_cluster


@pytest.fixture(autouse=True)
def _private_xdg_homes(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "share"))


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


# Container tests that take longest (docs/benchmarks.md): started first, so that under
# pytest-xdist (scripts/test.sh's container step, ``-n 2``) the short ones fill in around them
# instead of one long test starting last on an otherwise idle machine.
LONGEST_FIRST = (
    "test_molecule_site",
    "test_nvidia_driver_dkms",
    "test_molecule_scenario[nvidia_driver-default]",
    "test_cuda_repo_formulas",
    "test_molecule_scenario[container_runtime-default]",
    "test_molecule_scenario[nvidia_fabricmanager-default]",
    "test_molecule_scenario[gpu_monitoring-default]",
    "test_gpu_base_and_nvidia_driver_user_space",
    "test_nvidia_driver_cuda_repo_key_and_source",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        for i, name in enumerate(LONGEST_FIRST):
            if item.name == name or item.nodeid.endswith("::" + name):
                return i
        return len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: everything else keeps its collection order
