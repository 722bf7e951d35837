"""The Slurm Prolog/Epilog hooks' decisions (sre_tools.diag.slurm_hooks) with a recording command
runner: what they run, with which environment, what they drain and how they exit. The same hooks
run under real slurmd in tests/diag/test_slurm_hooks_cluster.py."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from sre_tools.diag import slurm_hooks as hooks
from sre_tools.diag.slurm_hooks import Completed, HookConfig, main, read_job_env, run_hook

SRE = "/opt/sre-tools/venv/bin/sre"
# The first line `sre diag run --level 2 --format nhc` prints for
# tests/fixtures/diag/dcgm/level2-memory-fail-gpu3.json.
NHC_CRIT = (
    "ERROR: nhc: Health check failed: GPU 3 (GPU-386eb5c4-8593-5584-afb0-c98a99c45c48, "
    "00000000:5D:00.0): diag.dcgm.memory: GPU 3 failed memory: Found 12 faulty memory elements "
    "on GPU 3 (DCGM error 52) [crit, action rma_candidate]\n"
)


class Recorder:
    """Answers ``sre diag run`` with (rc, stdout) and scontrol with 0; records every call."""

    def __init__(self, diag: Completed, scontrol_rc: int = 0):
        self.diag = diag
        self.scontrol_rc = scontrol_rc
        self.calls: list[tuple[list[str], float, dict[str, str]]] = []

    def __call__(self, argv: Sequence[str], timeout: float, env: Mapping[str, str]) -> Completed:
        self.calls.append((list(argv), timeout, dict(env)))
        if argv[0].endswith("scontrol"):
            return Completed(self.scontrol_rc, "", "" if self.scontrol_rc == 0 else "denied")
        return self.diag

    @property
    def argvs(self) -> list[list[str]]:
        return [c[0] for c in self.calls]


def config(hook: str = "prolog", **more: object) -> HookConfig:
    return HookConfig(
        hook=hook,
        sre=SRE,
        level=hooks.DEFAULT_LEVEL[hook],
        timeout_seconds=hooks.DEFAULT_TIMEOUT[hook],
        **more,  # type: ignore[arg-type]
    )


PROLOG_ENV = {
    "SLURMD_NODENAME": "gpu07",
    "SLURM_JOB_ID": "4242",
    "SLURM_SCRIPT_CONTEXT": "prolog_slurmd",
}
FAILED_JOB = {
    "SLURMD_NODENAME": "gpu07",
    "SLURM_JOB_ID": "4243",
    "SLURM_JOB_EXIT_CODE": "768",  # as slurmd 22.05 sets it for `exit 3`: a wait(2) status
    "SLURM_JOB_EXIT_CODE2": "3:0",
    "SLURM_JOB_DERIVED_EC": "768",
}


def test_prolog_passes_and_runs_level_1_with_a_path_and_the_node() -> None:
    rec = Recorder(Completed(0, ""))
    result = run_hook(config(), PROLOG_ENV, run=rec)
    assert (result.exit_code, result.outcome, result.diag_class) == (0, "passed", "ok")
    ((argv, timeout, env),) = rec.calls
    assert argv == [SRE, "diag", "run", "--level", "1", "--format", "nhc", "--node", "gpu07"]
    assert timeout == 25.0  # well under 30 s
    assert env["PATH"] == hooks.DEFAULT_PATH  # slurmd gives the prolog no PATH
    assert "SLURM_JOB_ID" not in env  # nothing of the job's environment is passed on


def test_prolog_refuses_the_job_and_drains_with_our_reason() -> None:
    rec = Recorder(Completed(2, NHC_CRIT))
    result = run_hook(config(), PROLOG_ENV, run=rec)
    assert (result.exit_code, result.outcome, result.diag_class) == (1, "drained", "crit")
    drain = rec.argvs[1]
    assert drain[:4] == ["/usr/bin/scontrol", "update", "NodeName=gpu07", "State=DRAIN"]
    assert drain[4] == (
        "Reason=sre: diag ev=prolog:gpu07:4242: level 1 CRIT: GPU 3 (GPU-386eb5c4-8593-5584-"
        "afb0-c98a99c45c48, 00000000:5D:00.0): diag.dcgm.memory: GPU 3 failed memory: Found 12 "
        "faulty memory elements on GPU 3 (DCGM error 52) [crit, action rma_candidate]"
    )
    assert len(drain) == 5  # one argv element per value: no shell, no splitting
    assert result.message.startswith("sre prolog: level 1 CRIT, drained: sre: diag ev=")


@pytest.mark.parametrize(
    ("done", "klass"),
    [
        pytest.param(Completed(1, "ERROR: nhc: warm\n"), "warn", id="warn"),
        pytest.param(
            Completed(3, "ERROR: nhc: dcgmi: host engine not running\n"), "unknown", id="unknown"
        ),
        pytest.param(Completed(None), "timeout", id="timeout"),
        pytest.param(Completed(None, error="cannot run sre: No such file"), "unknown", id="no-sre"),
        pytest.param(Completed(127, ""), "unknown", id="odd-exit"),
    ],
)
def test_prolog_lets_the_job_run_unless_the_class_is_in_fail_on(
    done: Completed, klass: str
) -> None:
    rec = Recorder(done)
    allowed = run_hook(config(), PROLOG_ENV, run=rec)
    assert (allowed.exit_code, allowed.outcome, allowed.diag_class) == (0, "passed", klass)
    assert len(rec.calls) == 1  # no drain
    rec = Recorder(done)
    refused = run_hook(config(fail_on=frozenset({"crit", klass})), PROLOG_ENV, run=rec)
    assert (refused.exit_code, refused.outcome) == (1, "drained")
    assert f"level 1 {klass.upper()}" in rec.argvs[1][4]


def test_prolog_without_a_valid_node_name_refuses_without_scontrol() -> None:
    rec = Recorder(Completed(2, NHC_CRIT))
    env = {**PROLOG_ENV, "SLURMD_NODENAME": "gpu07;reboot"}
    result = run_hook(config(), env, run=rec)
    assert (result.exit_code, result.outcome) == (1, "no_node")
    assert result.details["ignored_env"] == ["SLURMD_NODENAME"]
    assert "gpu07;reboot" not in json.dumps(result.details) + result.message
    assert len(rec.calls) == 1 and "--node" not in rec.argvs[0]


def test_prolog_still_refuses_when_the_drain_fails() -> None:
    rec = Recorder(Completed(2, NHC_CRIT), scontrol_rc=1)
    result = run_hook(config(), PROLOG_ENV, run=rec)
    assert (result.exit_code, result.outcome) == (1, "drain_failed")
    assert result.details["drain_error"] == "denied"


def test_hostile_diag_output_is_one_clean_reason_line() -> None:
    nasty = "ERROR: nhc: \x1b]0;pwned\x07bad\u202egpu" + "x" * 400 + "\nsecond line\n"
    rec = Recorder(Completed(2, nasty))
    run_hook(config(), PROLOG_ENV, run=rec)
    reason = rec.argvs[1][4]
    assert len(reason) <= len("Reason=") + 256
    assert "\x1b" not in reason and "\u202e" not in reason and "\n" not in reason
    assert "second line" not in reason


@pytest.mark.parametrize(
    ("env", "ran"),
    [
        pytest.param(FAILED_JOB, True, id="exit-3"),
        pytest.param(
            {
                **FAILED_JOB,
                "SLURM_JOB_EXIT_CODE": "0",
                "SLURM_JOB_EXIT_CODE2": "0:0",
                "SLURM_JOB_DERIVED_EC": "0",
            },
            False,
            id="success",
        ),
        pytest.param(
            {
                **FAILED_JOB,
                "SLURM_JOB_EXIT_CODE": "9",
                "SLURM_JOB_EXIT_CODE2": "0:9",
                "SLURM_JOB_DERIVED_EC": "0",
            },
            True,
            id="killed-by-signal",
        ),
        pytest.param({"SLURMD_NODENAME": "gpu07", "SLURM_JOB_ID": "1"}, False, id="no-exit-code"),
        pytest.param(
            {
                **FAILED_JOB,
                "SLURM_JOB_EXIT_CODE": "$(reboot)",
                "SLURM_JOB_EXIT_CODE2": "x",
                "SLURM_JOB_DERIVED_EC": "768",
            },
            True,
            id="garbage-ignored-derived-counts",
        ),
    ],
)
def test_epilog_runs_level_2_only_after_a_failed_job(env: dict[str, str], ran: bool) -> None:
    rec = Recorder(Completed(0, ""))
    result = run_hook(config("epilog"), env, run=rec)
    assert result.exit_code == 0
    if ran:
        ((argv, timeout, _),) = rec.calls
        assert argv[3:5] == ["--level", "2"] and timeout == 300.0
        assert result.outcome == "passed"
    else:
        assert rec.calls == [] and result.outcome == "skipped"


def test_epilog_drains_a_failing_node_and_exits_0_unless_the_drain_fails() -> None:
    rec = Recorder(Completed(2, NHC_CRIT))
    result = run_hook(config("epilog"), FAILED_JOB, run=rec)
    assert (result.exit_code, result.outcome) == (0, "drained")
    assert rec.argvs[1][4].startswith("Reason=sre: diag ev=epilog:gpu07:4243: level 2 CRIT: ")
    rec = Recorder(Completed(2, NHC_CRIT), scontrol_rc=1)
    result = run_hook(config("epilog"), FAILED_JOB, run=rec)
    assert (result.exit_code, result.outcome) == (1, "drain_failed")  # Slurm drains it then


def test_scontrol_gets_slurmds_configuration_and_nothing_else(tmp_path: Path) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=x\n", encoding="utf-8")
    rec = Recorder(Completed(2, NHC_CRIT))
    run_hook(config(), {**PROLOG_ENV, "SLURM_CONF": str(conf), "LD_PRELOAD": "/x.so"}, run=rec)
    (_, _, diag_env), (_, _, scontrol_env) = rec.calls
    assert scontrol_env == {**diag_env, "SLURM_CONF": str(conf)}
    assert "LD_PRELOAD" not in diag_env and "SLURM_CONF" not in diag_env
    for bad in ("relative/slurm.conf", str(tmp_path / "missing.conf"), f"{conf} x"):
        rec = Recorder(Completed(2, NHC_CRIT))
        result = run_hook(config(), {**PROLOG_ENV, "SLURM_CONF": bad}, run=rec)
        assert "SLURM_CONF" not in rec.calls[1][2], bad
        assert result.details["ignored_env"] == ["SLURM_CONF"], bad


def test_read_job_env_validates_every_value() -> None:
    env = read_job_env(
        {
            "SLURMD_NODENAME": "-rf",
            "SLURM_JOB_ID": "12 34",
            "SLURM_JOB_EXIT_CODE": "256",
            "SLURM_JOB_EXIT_CODE2": "1:0",
            "SLURM_JOB_DERIVED_EC": "",
        }
    )
    assert (env.node, env.job_id, env.exit_status, env.exit_code2, env.derived_ec) == (
        None,
        None,
        256,
        (1, 0),
        None,
    )
    assert env.ignored == ("SLURMD_NODENAME", "SLURM_JOB_ID")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["prolog", "--sre", "sre"], "--sre: must be an absolute path"),
        (["prolog", "--sre", SRE, "--level", "5"], "--level: must be 1, 2, 3 or 4"),
        (["prolog", "--sre", SRE, "--timeout", "0"], "--timeout: must be in (0, 3600]"),
        (["prolog", "--sre", SRE, "--fail-on", "crit,sometimes"], "--fail-on: unknown class"),
        (["prolog", "--sre", SRE, "--scontrol", "scontrol"], "--scontrol: must be an absolute"),
    ],
)
def test_bad_options_fail_closed_with_one_line(args: list[str], words: str) -> None:
    out = io.StringIO()
    assert main(args, environ=PROLOG_ENV, out=out) == 1
    assert words in out.getvalue() and out.getvalue().count("\n") == 1, out.getvalue()


def test_main_runs_a_real_command_and_logs_json(tmp_path: Path) -> None:
    """main() with a real child process (a stand-in `sre` that exits 2 with an NHC line, and
    `scontrol` that records its argv): the JSON log line and the exit code."""
    sre = tmp_path / "sre"
    sre.write_text(f"#!/bin/sh\nprintf '%s' {json.dumps(NHC_CRIT)!s}\nexit 2\n", encoding="utf-8")
    sre.chmod(0o755)
    scontrol = tmp_path / "scontrol"
    called = tmp_path / "scontrol.argv"
    scontrol.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(called)!r}, 'w').write(json.dumps(sys.argv[1:]))\n",
        encoding="utf-8",
    )
    scontrol.chmod(0o755)
    log = tmp_path / "hooks.jsonl"
    out = io.StringIO()
    code = main(
        ["prolog", "--sre", str(sre), "--scontrol", str(scontrol), "--log", str(log)],
        environ=PROLOG_ENV,
        out=out,
    )
    assert code == 1, out.getvalue()
    assert json.loads(called.read_text())[1] == "NodeName=gpu07"
    (record,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert (record["hook"], record["outcome"], record["class"], record["diag_rc"]) == (
        "prolog",
        "drained",
        "crit",
        2,
    )
    assert record["job_id"] == "4242" and record["reason"].startswith("sre: diag ev=prolog:")
    assert oct(os.stat(log).st_mode & 0o777) == "0o640"


def test_the_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A diagnostic that hangs (and its children) is killed at the timeout."""
    pid_file = tmp_path / "child.pid"
    sre = tmp_path / "sre"
    sre.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {pid_file}\nwait\n", encoding="utf-8")
    sre.chmod(0o755)
    start = time.monotonic()
    done = hooks.run_command([str(sre)], 1.0, {"PATH": "/usr/bin:/bin"})
    assert done.returncode is None and time.monotonic() - start < 10
    child = int(pid_file.read_text())
    time.sleep(0.2)
    stat = Path(f"/proc/{child}/stat")
    # Gone, or a zombie waiting for its new parent (init here need not reap it at once).
    assert not stat.exists() or stat.read_text().split(") ", 1)[1].startswith("Z"), stat.read_text()
