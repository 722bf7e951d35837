"""The one-line confirmations commands print ("resolved incident ...", "recorded ... for SLO",
"imported ... from FILE", a drill's target list) escape what came from the user or the store, and
the names they could not escape safely (SLO ids, drill targets) are refused on the way in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

ESC = "\x1b]0;pwned\x07\x1b[2J\u202e"
Sre = Callable[..., tuple[int, str, str]]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store.db"
    monkeypatch.setenv("SRE_STORE", str(path))
    return path


def test_incident_resolve_line_escapes_the_component(sre: Sre, store: Path) -> None:
    code, out, _ = sre("incident", "open", "--component", f"gpu{ESC}")
    assert code == 0
    code, out, _ = sre("incident", "resolve", out.strip())
    assert code == 0 and out.count("\n") == 1
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "gpu\\x1b]0;pwned\\x07\\x1b[2J\\u202e" in out


@pytest.mark.parametrize("slo", [f"svc-{ESC}", "svc-\u202eevil", "svc-\x00"])
def test_sli_record_refuses_an_slo_id_with_control_characters(
    sre: Sre, store: Path, slo: str
) -> None:
    code, out, err = sre("sli", "record", "--slo", slo, "--good", "1", "--total", "1")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "invalid SLO id" in err and "\x1b" not in err and "\u202e" not in err


def test_import_line_escapes_the_file_name(sre: Sre, store: Path, tmp_path: Path) -> None:
    name = tmp_path / f"sli{ESC}.csv"
    name.write_text("timestamp,slo,good,total\n2026-12-01T00:00:00Z,svc-a,1,1\n")
    code, out, _ = sre("sli", "import", str(name))
    assert code == 0 and "\x1b" not in out and "\u202e" not in out
    assert "imported 1 rows from" in out


@pytest.mark.parametrize("host", ["../../etc", "-oProxyCommand=x", f"gpu{ESC}", "a b"])
def test_drill_allowlist_refuses_what_is_not_a_host_name(
    sre: Sre, tmp_path: Path, host: str
) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        f'all:\n  children:\n    chaos_targets:\n      hosts:\n        "{host}": {{}}\n'.replace(
            "\x1b", "\\e"
        ).replace("\x07", "\\a")
    )
    code, _, err = sre("drill", "run", "node-drain", "--inventory", str(inventory))
    assert code == 2 and err.count("\n") == 1, err
    assert "chaos_targets: invalid host name" in err and "\x1b" not in err


def test_unknown_target_is_shown_escaped(sre: Sre, tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("all:\n  children:\n    chaos_targets:\n      hosts:\n        n1: {}\n")
    code, _, err = sre(
        "drill", "run", "node-drain", "--inventory", str(inventory), "--targets", f"x{ESC}"
    )
    assert code == 2 and err.count("\n") == 1
    assert "not in the chaos_targets allowlist" in err and "\x1b" not in err
