"""Helpers for the hostile-input passes: run ``sre`` in-process, check the one-line error."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import CliResult

Sre = Callable[..., CliResult]


def assert_input_error(result: CliResult, source: str, *pieces: str) -> None:
    """Exit 2, nothing on stdout, one stderr line ``sre: error: SOURCE: ...`` with ``pieces``."""
    code, _out, err = result
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"sre: error: {source}: "), err
    for piece in pieces:
        assert piece in err, err


@pytest.fixture
def remediation_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("remediation")
    monkeypatch.setenv("SRE_REMEDIATION_STATE", str(home / "state.db"))
    monkeypatch.setenv("SRE_REMEDIATION_AUDIT", str(home / "audit.jsonl"))
    monkeypatch.delenv("SRE_REMEDIATION_CONFIG", raising=False)
