"""Shared helpers for the reliability tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sre_tools.store import Store


@pytest.fixture
def store_path(store_location: str | Path) -> str | Path:
    """The same cases on both engines: a SQLite file and a PostgreSQL database."""
    return store_location


@pytest.fixture
def store(store_path: str | Path) -> Iterator[Store]:
    with Store(store_path) as opened:
        yield opened
