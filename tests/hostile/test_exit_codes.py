"""Exit codes of the commands other than ``sre health`` on hostile values: bad numbers are input
errors (2) with one line naming the option; a corrupt or unusable store is a runtime error (1)
naming the file. Never "internal error", never a traceback."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.conftest import Sre

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "sre_tools/data/examples/slos/gpu-cluster.sloth.yaml")
CLOSED = "http://127.0.0.1:9"  # never reached: the value is refused first

TIMEOUT = ["slo", "report", SPEC, "--prometheus", CLOSED, "--timeout"]
PLAN = ["reliability", "plan"]
BAD_VALUES = {
    # (argv, message piece)
    "timeout-nan": ([*TIMEOUT, "nan"], "--timeout: must be"),
    "timeout-negative": ([*TIMEOUT, "-1"], "--timeout: must be"),
    "timeout-inf": ([*TIMEOUT, "inf"], "--timeout: must be"),
    "timeout-huge": ([*TIMEOUT, "1e400"], "--timeout: must be"),
    "timeout-zero": ([*TIMEOUT, "0"], "--timeout: must be"),
    "timeout-word": ([*TIMEOUT, "soon"], "--timeout: must be"),
    "plan-mtbf-nan": ([*PLAN, "--mtbf", "nan", "--checkpoint-cost", "1m"], "--mtbf"),
    "plan-mtbf-negative": ([*PLAN, "--mtbf", "-5h", "--checkpoint-cost", "1m"], "--mtbf"),
    "plan-cost-inf": ([*PLAN, "--mtbf", "5h", "--checkpoint-cost", "infs"], "--checkpoint-cost"),
    "plan-gpus-huge": (
        [*PLAN, "--gpus", "9" * 40, "--gpu-mtbf", "1h", "--checkpoint-cost", "1m"],
        "--gpus",
    ),
    "report-gpus-huge": (["reliability", "report", "--gpus", "9" * 400], "--gpus"),
    "report-nodes-negative": (["reliability", "report", "--nodes", "-3"], "--nodes"),
    "resolve-id-huge": (["incident", "resolve", "9" * 30], "ID"),
    "xid-huge": (["incident", "open", "--component", "gpu", "--xid", "9" * 30], "--xid"),
    "period-nan": (["slo", "validate", SPEC, "--period", "nan"], "--period"),
    "at-garbage": (["slo", "report", SPEC, "--at", "9999-99-99"], "--at"),
    "url-port-range": (["slo", "report", SPEC, "--prometheus", "http://h:70000"], "--prometheus"),
    "url-no-scheme": (["slo", "report", SPEC, "--prometheus", "h:9090"], "--prometheus"),
}


@pytest.mark.parametrize(("argv", "piece"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_are_input_errors(sre: Sre, tmp_path: Path, argv: list[str], piece: str) -> None:
    if argv[0] in {"incident", "reliability"} and argv[1] != "plan":
        argv = [*argv, "--store", str(tmp_path / "s.db")]
    code, out, err = sre(*argv)
    assert code == 2, out + err
    assert err.count("\n") == 1 and "internal error" not in err and "Traceback" not in err, err
    assert err.startswith(("sre: error: ", "sre: usage error: ")) and piece in err, err


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
def test_fuzz_timeout(sre: Sre, value: float | str) -> None:
    text = repr(value) if isinstance(value, float) else value
    if text.startswith("-") or not text.strip():
        text = f" {text}"  # not an option name; still a bad value
    code, _out, err = sre(
        "slo", "report", SPEC, "--prometheus", CLOSED, "--timeout", text, "--slo", "x"
    )
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and 0 < number <= 3600:
        assert code == 2 and "--slo: unknown SLO" in err  # the value passed; the next check ran
    else:
        assert code == 2 and err.startswith("sre: error: --timeout: must be"), err
    assert err.count("\n") == 1


def _corrupt(path: Path, good: Path) -> None:
    data = bytearray(good.read_bytes())
    for i in range(len(data) - 8 * 4096, len(data), 7):
        data[i] = 0xAB
    path.write_bytes(bytes(data))


@pytest.fixture
def good_store(sre: Sre, tmp_path: Path) -> Path:
    store = tmp_path / "good.db"
    for i in range(300):
        code, _out, err = sre(
            "incident", "open", "--store", str(store), "--component", "gpu", "--cause", "x" * 300,
            "--started", f"2026-11-{1 + i % 28:02d}T00:00:00Z",
        )  # fmt: skip
        assert code == 0, err
    return store


STORE_COMMANDS = {
    "incident-list": ["incident", "list"],
    "reliability-report": ["reliability", "report"],
    "report": ["report", "--no-gpu"],
    "incident-open": ["incident", "open", "--component", "gpu"],
    "reliability-metrics": ["reliability", "metrics", "--once"],
}


@pytest.mark.parametrize("argv", STORE_COMMANDS.values(), ids=STORE_COMMANDS.keys())
@pytest.mark.parametrize("damage", ["garbage", "pages", "truncated", "under-a-file"])
def test_unusable_store_is_a_runtime_error_naming_it(
    sre: Sre, tmp_path: Path, good_store: Path, argv: list[str], damage: str
) -> None:
    store = tmp_path / "bad.db"
    if damage == "garbage":
        store.write_bytes(os.urandom(8192))
    elif damage == "pages":
        _corrupt(store, good_store)
    elif damage == "truncated":
        store.write_bytes(good_store.read_bytes()[: 3 * 4096 + 100])
    else:
        store = good_store / "store.db"  # a path under a regular file
    code, out, err = sre(*argv, "--store", str(store))
    assert code == 1, out + err
    assert err.startswith(f"sre: error: {store}: ") and err.count("\n") == 1, err


def test_read_only_store_is_a_runtime_error(sre: Sre, tmp_path: Path, good_store: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    store = folder / "s.db"
    shutil.copy(good_store, store)
    argv = ["incident", "open", "--component", "gpu", "--store", str(store)]
    if os.geteuid() == 0:
        # Root writes through file modes: the folder is made read-only by a read-only bind mount
        # in a private mount namespace (util-linux unshare), as a read-only file system would.
        script = shutil.which("sre", path=str(Path(sys.executable).parent))
        assert script, "the sre console script is not installed: pip install -e ."
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
             'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"',
             "sh", str(folder), script, *argv],
            capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
        code, err = done.returncode, done.stderr
    else:
        store.chmod(0o444)
        folder.chmod(0o555)
        try:
            code, _out, err = sre(*argv)
        finally:
            folder.chmod(0o755)
    assert code == 1 and err.startswith(f"sre: error: {store}: ") and err.count("\n") == 1, err
    assert store.read_bytes() == good_store.read_bytes()  # nothing stored is lost or changed
