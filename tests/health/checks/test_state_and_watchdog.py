"""The state file survives corruption; a hung NVML call becomes a CRIT within the timeout."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sre_tools.gpu.backend import RecordedBackend
from sre_tools.health.model import Action, Severity
from sre_tools.health.policy import load_policy
from sre_tools.health.runner import run_health
from sre_tools.health.state import CounterState
from tests.health.checks.conftest import H100, T0, Runner, ok, only, patched


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"{not json", id="truncated"),
        pytest.param(b"\x00\xff\xfe binary", id="binary"),
        pytest.param(b'{"version": 99, "samples": {}}', id="wrong-version"),
        pytest.param(b'{"version": 1, "samples": {"k": [[1, "x"]]}, "meta": []}', id="bad-shape"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-100000-deep"),
        pytest.param(b'{"version": 1, "version": 1, "samples": {}}', id="duplicate-key"),
        pytest.param(b'{"version": 1, "samples": {"k": [[1, NaN]]}}', id="nan"),
    ],
)
def test_corrupt_state_file_starts_fresh(run: Runner, state_path: Path, garbage: bytes) -> None:
    state_path.parent.mkdir(parents=True)
    state_path.write_bytes(garbage)
    report = run(H100)
    assert report.exit_code == 0
    (f,) = only(report, "ecc.corrected_rate")
    assert f.evidence["note"] == "rate unknown yet"
    saved = json.loads(state_path.read_text(encoding="utf-8"))
    assert saved["version"] == 1
    assert any(k.startswith("ecc.corrected_volatile:GPU-") for k in saved["samples"])


def test_state_carries_rates_and_inforom_results_across_runs(run: Runner, state_path: Path) -> None:
    key = "ecc_errors(corrected,volatile)"
    run(patched(H100, {0: {key: ok(0), "inforom_valid": ok(True)}}), now=T0)
    saved = json.loads(state_path.read_text(encoding="utf-8"))
    assert saved["meta"]["inforom_validated_at"] == T0
    assert list(saved["meta"]["inforom_results"].values()) == [{"valid": True, "at": T0}]
    later = run(patched(H100, {0: {key: ok(5000)}}), now=T0 + 3600)
    (f,) = only(later, "ecc.corrected_rate")
    assert f.severity is Severity.WARN


class BlockingBackend(RecordedBackend):
    """A recorded backend whose ``read`` of one reading blocks until released."""

    def __init__(self, data: dict[str, Any], block_on: str, release: threading.Event):
        super().__init__(data, "<blocking>")
        self.block_on = block_on
        self.release = release

    def read(self, index: int, name: str, *args: Any) -> Any:
        if name == self.block_on:
            self.release.wait()
        return super().read(index, name, *args)


def test_hung_read_yields_collection_timeout_crit(tmp_path: Path) -> None:
    release = threading.Event()
    data = json.loads(H100.read_text(encoding="utf-8"))
    backend = BlockingBackend(data, "temperature_c", release)
    state = CounterState(tmp_path / "state.json")
    started = time.monotonic()
    try:
        report = run_health(
            backend,
            load_policy(),
            state=state,
            now=T0,
            sysfs=tmp_path,
            kernel_log_lines=[],
            host="node1",
            timeout=0.3,
        )
    finally:
        release.set()
    elapsed = time.monotonic() - started
    assert elapsed < 3.0
    (timeout,) = only(report, "collection.timeout")
    assert (timeout.severity, timeout.action) == (Severity.CRIT, Action.REBOOT)
    assert timeout.evidence["timeout_seconds"] == 0.3
    # What ran before the hang is kept; the hung cycle does not write the state file.
    assert [f.severity for f in only(report, "nvml.init")] == [Severity.OK]
    assert [f.severity for f in only(report, "ecc.mode")] == [Severity.OK]
    assert not (tmp_path / "state.json").exists()
    assert report.exit_code == 2


def test_timeout_comes_from_the_policy(tmp_path: Path) -> None:
    release = threading.Event()
    data = json.loads(H100.read_text(encoding="utf-8"))
    try:
        report = run_health(
            BlockingBackend(data, "pcie_link_width", release),
            load_policy(None, "collection:\n  timeout_seconds: 0.2\n"),
            state=CounterState(tmp_path / "state.json"),
            now=T0,
            sysfs=tmp_path,
            kernel_log_lines=[],
            host="node1",
        )
    finally:
        release.set()
    (timeout,) = only(report, "collection.timeout")
    assert timeout.evidence["timeout_seconds"] == 0.2


def test_state_path_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    """A device, a FIFO or a directory is not ours: never read without end (/dev/zero), never
    waited on (a FIFO without a writer), never replaced by the atomic save."""
    import os

    from sre_tools.exceptions import StoreError

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo):
        with pytest.raises(StoreError, match="not a regular file"):
            CounterState(path)


def test_oversized_state_file_is_refused_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sre_tools.exceptions import StoreError
    from sre_tools.health import state as state_module

    monkeypatch.setattr(state_module, "MAX_STATE_BYTES", 1024)
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "samples": {}, "pad": "' + "x" * 2000 + '"}')
    before = path.read_bytes()
    with pytest.raises(StoreError, match="larger than"):
        CounterState(path)
    assert path.read_bytes() == before
