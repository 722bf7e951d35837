"""Fixtures for the Salt tests: the custom module and beacon loaded as Salt's loader would.

``gpu_module`` and ``beacon`` are fresh imports per test, with the loader's globals injected
(``__opts__``, ``__context__``, ``__salt__``, ``__grains__``); the beacon's ``__salt__`` maps
``gpu.health`` to the loaded module's function, as on a minion after ``saltutil.sync_all``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers.salt import GPU_BEACON, GPU_MODULE, load_salt_file

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
