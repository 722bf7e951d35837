"""Fixtures for the Salt tests: the custom module and beacon loaded as Salt's loader would.

``gpu_module`` and ``beacon`` are fresh imports per test, with the loader's globals injected
(``__opts__``, ``__context__``, ``__salt__``, ``__grains__``); the beacon's ``__salt__`` maps
``gpu.health`` to the loaded module's function, as on a minion after ``saltutil.sync_all``.

Modules that run ``salt-call`` use ``salt_installed`` (Salt importable and salt-call installed) or
``salt_call_installed`` (salt-call only), as ``pytestmark = pytest.mark.usefixtures(...)``: Salt
missing fails them, once per module. :func:`started_pair` is a master and minion running with the
custom code synced, for the integration tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers.salt import (
    GPU_BEACON,
    GPU_MODULE,
    PAIR_COMMANDS,
    SaltError,
    SaltMissingError,
    SaltPair,
    load_salt_file,
    require_salt,
)

MINION_ID = "gpu-node-01.example.org"


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def minion_opts(tmp_path: Path) -> dict[str, object]:
    return {"id": MINION_ID, "cachedir": str(tmp_path / "cache")}


@pytest.fixture
def gpu_module(minion_opts: dict[str, object]) -> ModuleType:
    return load_salt_file(
        GPU_MODULE, __opts__=minion_opts, __grains__={"host": "gpu-node-01"}, __salt__={}
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def beacon(gpu_module: ModuleType, minion_opts: dict[str, object], clock: FakeClock) -> ModuleType:
    mod = load_salt_file(
        GPU_BEACON,
        __opts__=minion_opts,
        __context__={},
        __grains__={"host": "gpu-node-01"},
        __salt__={"gpu.health": gpu_module.health},
    )
    mod.CLOCK = clock
    return mod


def fail_unless_salt(*commands: str, importable: bool = True) -> None:
    """:func:`require_salt`, failing the test (its message only) where Salt is missing."""
    try:
        require_salt(*commands, importable=importable)
    except SaltMissingError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    """monkeypatch for a module's fixtures (e.g. the PATH a module's minion inherits)."""
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def salt_installed() -> None:
    fail_unless_salt("salt-call")


@pytest.fixture(scope="module")
def salt_call_installed() -> None:
    fail_unless_salt("salt-call", importable=False)


@contextlib.contextmanager
def started_pair(
    workdir: Path,
    *,
    commands: tuple[str, ...] = PAIR_COMMANDS,
    stop_timeout: float = 5,
    **pair: Any,
) -> Iterator[SaltPair]:
    """A :class:`SaltPair` in ``workdir`` (made if missing), its daemons running and the custom
    code synced (:meth:`SaltPair.start_synced`); ``pair`` goes to SaltPair. Salt missing (Salt
    and ``commands``) or not starting fails the test; the daemons stop on leaving."""
    fail_unless_salt(*commands)
    workdir.mkdir(parents=True, exist_ok=True)
    with SaltPair(workdir, stop_timeout=stop_timeout, **pair) as salt_pair:
        try:
            salt_pair.start_synced()
        except SaltError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield salt_pair
