"""Helpers shared by the reliability tests (a uniquely named module, importable from them)."""

from __future__ import annotations

HEADER = "started,resolved,component,host,gpu,category,planned"
FULL_HEADER = HEADER + ",detected,cause,xid"

Result = tuple[int, str, str]


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join((header, *rows)) + "\n"


def bulk_csv(count: int, *, start: int = 1_700_000_000, step: int = 60, tag: str = "") -> str:
    """``count`` valid, distinct incident rows (unix-time ``@`` stamps keep parsing cheap)."""
    lines = [FULL_HEADER]
    for n in range(count):
        t = start + n * step
        lines.append(
            f"@{t},@{t + 600},gpu,node-{n % 97:03d}{tag},{n % 8},hardware,false,@{t + 30},"
            f"bulk {tag} {n},79"
        )
    return "\n".join(lines) + "\n"


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
