"""Stored and user text on screen: never rich markup, control characters shown as escapes.

An incident cause, a host, a component or an SLO id reaches a table or a line of output as it
was stored; ``sre report`` and ``sre reliability report`` must render whatever is in the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sre_tools.text import printable
from tests.conftest import CliResult

HOSTILE = "[bold red]x[/ \x1b]52;c;aGk=\x07 \u202eevil\x00 [link=file:///etc]y[/link] \x9b2J"
ESCAPED_PIECES = ("[bold red]x[/", "\\x1b]52;c;aGk=\\x07", "\\u202eevil\\x00", "\\x9b2J")
RAW_CONTROLS = ("\x1b", "\x07", "\u202e", "\x00", "\x9b")


def _open(sre: Callable[..., CliResult], store: Path, text: str) -> None:
    code, _out, err = sre(
        "incident", "open", "--store", str(store), "--component", text, "--host", text,
        "--cause", text, "--started", "2026-12-01T00:00:00Z",
    )  # fmt: skip
    assert code == 0, err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["report", "--no-gpu", "--at", "2026-12-02T00:00:00Z"], id="report"),
        pytest.param(
            ["reliability", "report", "--until", "2026-12-02T00:00:00Z"], id="reliability-report"
        ),
        pytest.param(["incident", "list"], id="incident-list"),
    ],
)
def test_stored_markup_and_controls_render_literally(
    sre: Callable[..., CliResult], tmp_path: Path, argv: list[str]
) -> None:
    store = tmp_path / "store.db"
    _open(sre, store, HOSTILE)
    code, out, err = sre(*argv, "--store", str(store))
    assert code == 0, err
    flat = "".join(out.split())  # tables fold long cells
    for piece in ESCAPED_PIECES:
        assert "".join(piece.split()) in flat, piece
    for raw in RAW_CONTROLS:
        assert raw not in out


def test_error_messages_escape_controls(sre: Callable[..., CliResult], tmp_path: Path) -> None:
    """A name quoted in an error (an SLO id here) reaches stderr escaped, on one line."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        'version: prometheus/v1\nservice: "[red]s\\e]0;t\\a\\u202e"\nslos: []\n',
        encoding="utf-8",
    )
    code, _out, err = sre("slo", "validate", str(spec))
    assert code == 2
    assert err.startswith(f"sre: error: {spec}: service: ") and err.count("\n") == 1
    assert "[red]s\\x1b]0;t\\x07\\u202e" in err
    assert not any(ch in err for ch in RAW_CONTROLS)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31m", "\\x1b[31m"),
        ("a\tb\nc\r", "a\\x09b\\x0ac\\x0d"),
        ("\u202e\u2066\u200f\u061c", "\\u202e\\u2066\\u200f\\u061c"),
        ("\x7f\x85", "\\x7f\\x85"),
        ("\ud800", "\\ud800"),
        ("plain ü 漢字 [b]", "plain ü 漢字 [b]"),
    ],
    ids=["csi", "tab-newline-cr", "bidi", "del-nel", "lone-surrogate", "printable-kept"],
)
def test_printable_escapes_controls(raw: str, shown: str) -> None:
    assert printable(raw) == shown


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=40))
def test_fuzz_any_cause_renders_in_a_table(text: str) -> None:
    """Any text at all as a cell: no markup error, no raw control character on output."""
    import io

    from rich.console import Console

    from sre_tools.cli.output import table

    buffer = io.StringIO()
    Console(file=buffer, width=200, highlight=False).print(table(text, ["cause"], [[text]]))
    shown = buffer.getvalue()
    assert not any(
        ch in shown for ch in ("\x1b", "\x00", "\x07", "\u202e", "\x9b", "\u2066", "\x85")
    )
