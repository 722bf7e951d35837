"""``sre exporter``: --once, flag validation, --alert-rules, serving and graceful shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from sre_tools.cli.main import main
from sre_tools.exporter import metric_names as c
from tests.exporter.conftest import FAULTS, HEALTHY, UUID0, one, samples, values
from tests.helpers.procs import free_port

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["exporter", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_once_prints_the_exposition_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--replay", str(FAULTS), "--once", "--profile", "generic")
    assert code == 0
    assert one(out, c.GPU_UP, uuid=UUID0) == 1
    assert one(out, c.GPU_UP, gpu="1") == 0
    assert one(out, c.GPU_ECC_ERRORS, uuid=UUID0, error_type="uncorrected", counter="volatile") == 2
    assert one(out, c.EXPORTER_COLLECTIONS) == 1
    assert "process_cpu_seconds_total" not in out  # --once shows the GPU metrics only
    assert {name for name, _, _ in samples(out)} >= {c.GPU_INFO, c.GPU_HEALTH_STATUS}


def test_once_applies_the_profile_and_site_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run_cli(capsys, "--replay", str(HEALTHY), "--once", "--profile", "h100-sxm-8")
    assert code == 0
    assert one(out, c.GPU_EXPECTED_COUNT) == 8
    site = tmp_path / "site.yaml"
    site.write_text("profile: h100-sxm-8\nexpected_gpus: 2\n")
    code, out, _ = run_cli(capsys, "--replay", str(HEALTHY), "--once", "--config", str(site))
    assert code == 0
    assert one(out, c.GPU_EXPECTED_COUNT) == 2
    code, out, _ = run_cli(capsys, "--replay", str(HEALTHY), "--once")
    assert values(out, c.GPU_EXPECTED_COUNT) == []  # generic: no expectation


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "soon"], "--interval: invalid duration"),
        (["--interval", "0s"], "--interval: duration '0s' must be greater than zero"),
        (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--runbook-base", "https://x"], "--runbook-base: only with --alert-rules"),
        (["--replay", "/nonexistent.json"], "cannot read recording"),
        (["--profile", "nope"], "unknown profile 'nope'"),
        (["--listen", "9835"], "--listen: invalid address"),
    ],
    ids=["interval", "zero-interval", "tls-pair", "runbook-base", "replay", "profile", "listen"],
)
def test_invalid_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    extra = [] if "--replay" in args else ["--replay", str(HEALTHY)]
    if "--listen" not in args:
        extra.append("--once")
    code, _, err = run_cli(capsys, *extra, *args)
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_alert_rules_are_printed_with_an_optional_runbook_base(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(capsys, "--alert-rules")
    assert code == 0
    plain = yaml.safe_load(out)
    urls = [r["annotations"]["runbook_url"] for g in plain["groups"] for r in g["rules"]]
    assert all(u.startswith("runbooks/gpu-") for u in urls)
    code, out, _ = run_cli(
        capsys, "--alert-rules", "--runbook-base", "https://git.example.com/sre/runbooks/"
    )
    based = yaml.safe_load(out)
    urls = [r["annotations"]["runbook_url"] for g in based["groups"] for r in g["rules"]]
    assert all(u.startswith("https://git.example.com/sre/runbooks/gpu-") for u in urls)
    assert "https://git.example.com/sre/runbooks/gpu-ecc.md#uncorrected" in urls
    # Nothing else changed.
    for g_plain, g_based in zip(plain["groups"], based["groups"], strict=True):
        for r1, r2 in zip(g_plain["rules"], g_based["rules"], strict=True):
            assert r1["expr"] == r2["expr"] and r1["labels"] == r2["labels"]


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sre_tools.cli.main", "exporter", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exporter exited {proc.returncode}: {proc.communicate()}")
        try:
            with NO_PROXY.open(f"{url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("exporter not ready in time")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serves_then_shuts_down_cleanly_on_a_signal(sig: signal.Signals) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(["--replay", str(HEALTHY), "--listen", f"127.0.0.1:{port}", "--interval", "1s"])
    try:
        _wait_ready(url, proc)
        with NO_PROXY.open(f"{url}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert one(body, c.GPU_TEMPERATURE, uuid=UUID0) == 33
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "shutting down" in err and "stopped" in err
    assert f"serving http://127.0.0.1:{port}/metrics" in err


# --- --kernel-log FILE: kernel-log lines from a file, read again every collection -------------

XID79 = "[ 1234.5] NVRM: Xid (PCI:0000:18:00): 79, pid=0, name=, GPU has fallen off the bus."
XID13 = "[ 1240.1] NVRM: Xid (PCI:0000:18:00): 13, pid=1234, name=python, Graphics SM Warp"


def test_once_reads_the_kernel_log_file_through_the_xid_pipeline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "kern.log"
    log.write_text(f"{XID79}\n")
    code, out, _ = run_cli(
        capsys, "--replay", str(HEALTHY), "--kernel-log", str(log), "--once", "--profile", "generic"
    )
    assert code == 0
    assert one(out, c.GPU_XID_EVENTS, xid="79", uuid=UUID0) == 1
    # The health engine's xid check read the same line: XID 79 is critical (3) on GPU 0.
    assert one(out, c.GPU_HEALTH_CHECK_STATUS, check="xid", uuid=UUID0) == 3


def test_the_file_is_read_every_collection_and_replaces_the_recordings_log(
    tmp_path: Path,
) -> None:
    from sre_tools.cli.exporter import _build_loop
    from tests.exporter.conftest import load_data, scrape

    data = load_data(HEALTHY)
    data["kernel_log"] = [XID13]  # the recording's own line: not read once the file is given
    recording = tmp_path / "rec.json"
    recording.write_text(json.dumps(data))
    log = tmp_path / "kern.log"
    log.write_text("")
    loop = _build_loop(recording, None, "generic", None, 1.0, log)
    loop.collect_once()
    assert values(scrape(loop), c.GPU_XID_EVENTS) == []
    with log.open("a") as fh:  # appended while the exporter runs, as a drill does
        fh.write(f"{XID79}\n")
    loop.collect_once()
    loop.collect_once()  # the same line on the next cycle: counted once
    text = scrape(loop)
    assert one(text, c.GPU_XID_EVENTS, xid="79", uuid=UUID0) == 1
    assert values(text, c.GPU_XID_EVENTS, xid="13") == []
    log.unlink()  # gone mid-run: the last lines are kept and an xid error is counted
    loop.collect_once()
    text = scrape(loop)
    assert one(text, c.GPU_XID_EVENTS, xid="79", uuid=UUID0) == 1
    assert one(text, c.EXPORTER_COLLECTION_ERRORS, reason="xid") == 1


def test_an_unreadable_kernel_log_file_is_invalid_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_cli(
        capsys, "--replay", str(HEALTHY), "--kernel-log", str(tmp_path / "missing"), "--once"
    )
    assert code == 2
    assert out == ""
    assert "cannot read file" in err
