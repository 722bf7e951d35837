"""The committed recorded outputs are exactly what make_fixtures.py writes."""

from __future__ import annotations

import importlib.util

import pytest

from tests.diag.conftest import FIXTURES

_spec = importlib.util.spec_from_file_location("make_diag_fixtures", FIXTURES / "make_fixtures.py")
assert _spec is not None and _spec.loader is not None
make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make)
FILES = make.files()


@pytest.mark.parametrize("name", sorted(FILES), ids=sorted(FILES))
def test_committed_fixture_matches_generator(name: str) -> None:
    assert (FIXTURES / name).read_text(encoding="utf-8") == FILES[name]


def test_every_committed_output_is_generated() -> None:
    committed = {
        str(p.relative_to(FIXTURES))
        for p in FIXTURES.rglob("*")
        if p.is_file() and p.suffix in {".json", ".txt"}
    }
    assert committed == set(FILES)
