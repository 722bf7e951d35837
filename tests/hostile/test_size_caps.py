"""Size caps (sre_tools.inputs): a spec, CSV, event, report or kernel log past its cap, /dev/zero
or a gzip bomb is refused with one line and exit 2; a corrupt gzip file too."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import pytest

from sre_tools import inputs
from sre_tools.exceptions import ValidationError
from sre_tools.inputs import read_capped
from tests.hostile.conftest import Sre, assert_input_error


def gzip_bomb(path: Path, unpacked: int) -> Path:
    """``unpacked`` zero bytes, gzipped (about 1000:1), written without holding them."""
    chunk = b"\0" * (1024 * 1024)
    with gzip.open(path, "wb", compresslevel=9) as fh:
        for _ in range(unpacked // len(chunk)):
            fh.write(chunk)
    return path


@pytest.mark.parametrize("limit", [0, 1, 10, 4096])
def test_read_capped_boundary(tmp_path: Path, limit: int) -> None:
    exact = tmp_path / "exact"
    exact.write_bytes(b"x" * limit)
    assert read_capped(str(exact), limit) == (b"x" * limit, str(exact))
    over = tmp_path / "over"
    over.write_bytes(b"x" * (limit + 1))
    with pytest.raises(ValidationError, match="the size limit"):
        read_capped(str(over), limit)


def test_dev_zero_stops_at_the_cap() -> None:
    with pytest.raises(ValidationError, match="larger than 1 MiB") as info:
        read_capped("/dev/zero", inputs.MiB)
    assert info.value.source == "/dev/zero"


def test_stdin_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"y" * 2048)))
    with pytest.raises(ValidationError, match="standard input larger than 1 KiB"):
        read_capped("-", 1024)


CORRUPT_GZIP = {
    "not-gzip": b"plain text, not gzip\n",
    "truncated": gzip.compress(b"a,b\n" * 1000)[:40],
    "bad-crc": gzip.compress(b"hello")[:-8] + b"\0" * 8,
    "bad-deflate": gzip.compress(b"hello")[:10] + b"\xff" * 20,
    "empty": b"",
    "zlib-not-gzip": zlib.compress(b"hello"),
}


@pytest.mark.parametrize("data", CORRUPT_GZIP.values(), ids=CORRUPT_GZIP.keys())
def test_corrupt_gzip_is_an_input_error(sre: Sre, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "incidents.csv.gz"
    path.write_bytes(data)
    code, _out, err = sre("incident", "import", str(path), "--store", str(tmp_path / "s.db"))
    if data == b"":  # an empty gzip file is an empty CSV
        assert code == 2 and "internal error" not in err
        return
    assert_input_error((code, _out, err), str(path), "not a valid gzip file")


# (argv with FILE where the file goes, cap)
CAPPED = {
    "slo-spec": (["slo", "validate", "FILE"], inputs.MAX_SPEC_BYTES),
    "alert-windows": (
        ["slo", "validate", "sre_tools/data/examples/slos/gpu-cluster.sloth.yaml",
         "--alert-windows", "FILE"],
        inputs.MAX_SPEC_BYTES,
    ),
    "incident-csv": (["incident", "import", "FILE"], inputs.MAX_CSV_BYTES),
    "sli-csv": (["sli", "import", "FILE"], inputs.MAX_CSV_BYTES),
    "health-report": (["remediation", "decide", "--report", "FILE"], inputs.MAX_REPORT_BYTES),
    "remediation-config": (["remediation", "status", "--config", "FILE"], inputs.MAX_SPEC_BYTES),
    "kernel-log": (["xid", "explain", "-f", "FILE"], inputs.MAX_KERNEL_LOG_BYTES),
}  # fmt: skip


@pytest.mark.parametrize(("argv", "cap"), CAPPED.values(), ids=CAPPED.keys())
def test_dev_zero_is_refused_at_the_cap(
    sre: Sre, tmp_path: Path, remediation_env: None, argv: list[str], cap: int
) -> None:
    args = [a.replace("FILE", "/dev/zero") for a in argv]
    if args[0] in {"incident", "sli"}:
        args += ["--store", str(tmp_path / "s.db")]
    assert_input_error(sre(*args), "/dev/zero", f"larger than {cap // inputs.MiB} MiB")


@pytest.mark.parametrize("name", ["incident-csv", "sli-csv", "slo-spec"])
def test_gzip_bomb_is_refused_at_the_cap(
    sre: Sre, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Small caps keep the bomb small; the same code path reads with the real ones.
    monkeypatch.setattr(inputs, "MAX_CSV_BYTES", inputs.MiB)
    monkeypatch.setattr("sre_tools.cli.incident.MAX_CSV_BYTES", inputs.MiB)
    monkeypatch.setattr(inputs, "MAX_SPEC_BYTES", inputs.MiB)
    monkeypatch.setattr("sre_tools.slo.loader.MAX_SPEC_BYTES", inputs.MiB)
    bomb = gzip_bomb(tmp_path / "bomb.gz", 3 * inputs.MiB)
    assert bomb.stat().st_size < 64 * 1024
    args = [a.replace("FILE", str(bomb)) for a in CAPPED[name][0]]
    if args[0] in {"incident", "sli"}:
        args += ["--store", str(tmp_path / "s.db")]
    assert_input_error(sre(*args), str(bomb), "unpacked gzip content larger than 1 MiB")
