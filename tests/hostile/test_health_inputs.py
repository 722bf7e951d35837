"""``sre health``'s own inputs, recordings (JSON) and site files (YAML), go through
sre_tools.inputs like every other command's: size cap, bounded YAML aliases and depth, no
duplicate JSON keys. A refusal is UNKNOWN (exit 3) with one line naming the file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sre_tools.cli.main import main
from sre_tools.inputs import MAX_DEPTH, MAX_RECORDING_BYTES
from tests.hostile.test_size_caps import gzip_bomb

FIX = Path(__file__).parents[1] / "fixtures" / "gpu"
HEALTHY = FIX / "h100-capture.json"


def health(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["health", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_unknown(result: tuple[int, str, str], source: Path, *pieces: str) -> None:
    code, _out, err = result
    assert code == 3, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert str(source) in err, err
    for piece in pieces:
        assert piece in err, err


def test_recording_with_a_duplicate_key_is_refused(capsys, tmp_path: Path) -> None:
    text = HEALTHY.read_text(encoding="utf-8")
    bad = tmp_path / "dup.json"
    bad.write_text(text.replace('"version":', '"version": 1, "version":', 1), encoding="utf-8")
    assert_unknown(health(capsys, "--replay", str(bad)), bad, "duplicate key")


def test_recording_nested_too_deeply_is_refused(capsys, tmp_path: Path) -> None:
    data = json.loads(HEALTHY.read_text(encoding="utf-8"))
    deep: object = 1
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    data["extra"] = deep
    bad = tmp_path / "deep.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    assert_unknown(health(capsys, "--replay", str(bad)), bad, "nested too deeply")


def test_recording_gzip_bomb_stops_at_the_cap(capsys, tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "bomb.json.gz", MAX_RECORDING_BYTES + 1024 * 1024)
    assert_unknown(health(capsys, "--replay", str(bomb)), bomb, "the size limit")


def test_gzipped_recording_is_read(capsys, tmp_path: Path) -> None:
    import gzip

    packed = tmp_path / "healthy.json.gz"
    packed.write_bytes(gzip.compress(HEALTHY.read_bytes()))
    code, out, err = health(capsys, "--json", "--replay", str(packed))
    assert code == 0, err
    assert json.loads(out)["status"] == "ok"


def test_site_file_alias_bomb_is_refused_quickly(capsys, tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 10)]
    site = tmp_path / "bomb.yaml"
    site.write_text("\n".join(lines) + "\n", encoding="utf-8")
    started = time.monotonic()
    result = health(capsys, "--config", str(site), "--replay", str(HEALTHY))
    assert time.monotonic() - started < 1.0
    assert_unknown(result, site, "aliases expand to more than")


def test_site_file_self_referencing_alias_is_refused(capsys, tmp_path: Path) -> None:
    site = tmp_path / "loop.yaml"
    site.write_text("thermal: &t {margin_warn_c: *t}\n", encoding="utf-8")
    assert_unknown(
        health(capsys, "--config", str(site), "--replay", str(HEALTHY)),
        site,
        "an alias refers to a node that contains it",
    )


def test_host_and_summaries_from_a_recording_are_plain_text(capsys, tmp_path: Path) -> None:
    """The table's header and cells show a recording's host as text: markup is not interpreted,
    control characters are escaped, and a label's own markup is no label."""
    data = json.loads(HEALTHY.read_text(encoding="utf-8"))
    data["host"] = "[green]ok[/] \x1b]52;c;Zm9v\x07 \u202eevil"
    rec = tmp_path / "host.json"
    rec.write_text(json.dumps(data), encoding="utf-8")
    code, out, err = health(capsys, "--all", "--replay", str(rec))
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("[green]ok[/] \\x1b]52;c;Zm9v\\x07 \\u202eevil: ok, action none"), first
    assert "\x1b" not in out and "\u202e" not in out
