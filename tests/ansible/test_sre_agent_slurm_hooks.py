"""The sre_agent role's Slurm hooks, rendered by the role's own configure tasks on localhost
(every path under the test directory) and then run as slurmd runs them: the environment slurmd
gives (no PATH, SLURMD_NODENAME, SLURM_JOB_ID), the real ``sre diag run``, a stand-in ``dcgmi``
printing a recorded result (tests/fixtures/diag/dcgm) and a stand-in ``scontrol`` that records
its argv. The same hooks under real slurmd: tests/diag/test_slurm_hooks_cluster.py."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.ansible.conftest import ROOT, play_role_tasks

VENV = Path(sys.executable).parent.parent
DCGM = ROOT / "tests" / "fixtures" / "diag" / "dcgm"


def configure(tmp_path: Path, **options: Any) -> Any:
    (tmp_path / "state").mkdir(exist_ok=True)
    extra = {
        "sre_agent_venv": str(VENV),
        "sre_agent_manage_service": False,  # no systemd here: the timer is not the subject
        "sre_agent_config_dir": str(tmp_path / "etc"),
        "sre_agent_state_dir": str(tmp_path / "state"),
        "sre_agent_slurm_prolog_program": str(tmp_path / "sbin" / "sre-slurm-prolog"),
        "sre_agent_slurm_epilog_program": str(tmp_path / "sbin" / "sre-slurm-epilog"),
        "sre_agent_slurm_hooks_conf_fragment": str(tmp_path / "etc" / "slurm-hooks.conf"),
        "sre_agent_slurm_hooks_log": str(tmp_path / "log" / "slurm-hooks.jsonl"),
        "sre_agent_slurm_scontrol": str(tmp_path / "bin" / "scontrol"),
        "sre_agent_slurm_hooks_path": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        **options,
    }
    (tmp_path / "sbin").mkdir(exist_ok=True)
    proc = play_role_tasks(tmp_path, "sre_agent", "configure.yml", extra)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc


def stand_ins(tmp_path: Path, dcgm: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    dcgmi = bin_dir / "dcgmi"
    dcgmi.write_text(f"#!/bin/sh\ncat {DCGM / dcgm}.json\n", encoding="utf-8")
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(bin_dir / 'scontrol.argv')!r}, 'w').write(json.dumps(sys.argv[1:]))\n",
        encoding="utf-8",
    )
    for path in (dcgmi, scontrol):
        path.chmod(0o755)
    return bin_dir


def run_hook(program: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # What slurmd sets (no PATH); PYTHONPATH only so the venv's python imports this checkout.
    base = {"SLURMD_NODENAME": "gpu-node-07", "SLURM_JOB_ID": "99", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [str(program)], env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_the_role_installs_hooks_that_refuse_a_job_on_a_failing_level_1(tmp_path: Path) -> None:
    bin_dir = stand_ins(tmp_path, "level1-row-remap-pending-gpu0")
    configure(
        tmp_path,
        sre_agent_slurm_prolog=True,
        sre_agent_slurm_epilog=True,
        sre_agent_slurm_hooks_diag_args=["--profile", "h100-sxm-8"],
    )
    prolog = tmp_path / "sbin" / "sre-slurm-prolog"
    epilog = tmp_path / "sbin" / "sre-slurm-epilog"
    assert stat.S_IMODE(prolog.stat().st_mode) == 0o755
    text = prolog.read_text(encoding="utf-8")
    assert text.startswith(f"#!{VENV}/bin/python\n")
    argv = json.loads(text.rsplit("main(", 1)[1].rsplit("))", 1)[0])
    assert argv[:5] == ["prolog", "--level", "1", "--timeout", "25"]
    assert argv[argv.index("--sre") + 1] == f"{VENV}/bin/sre"
    assert argv[-2:] == ["--diag-arg=--profile", "--diag-arg=h100-sxm-8"]
    fragment = (tmp_path / "etc" / "slurm-hooks.conf").read_text(encoding="utf-8")
    lines = [x for x in fragment.splitlines() if x and not x.startswith("#")]
    assert lines == [
        f"Prolog={prolog}",
        "PrologFlags=Alloc",
        f"Epilog={epilog}",
        "PrologEpilogTimeout=360",
    ]

    refused = run_hook(prolog)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    drain = json.loads((bin_dir / "scontrol.argv").read_text())
    assert drain[:3] == ["update", "NodeName=gpu-node-07", "State=DRAIN"]
    assert drain[3].startswith("Reason=sre: diag ev=prolog:gpu-node-07:99: level 1 CRIT: GPU 0")
    (record,) = [
        json.loads(x) for x in (tmp_path / "log" / "slurm-hooks.jsonl").read_text().splitlines()
    ]
    assert (record["outcome"], record["class"], record["job_id"]) == ("drained", "crit", "99")

    # A successful job: the epilog runs nothing.
    done = run_hook(epilog, SLURM_JOB_EXIT_CODE="0", SLURM_JOB_DERIVED_EC="0")
    assert done.returncode == 0 and "no diagnostic" in done.stdout, done.stdout + done.stderr


def test_a_passing_level_1_lets_the_job_run(tmp_path: Path) -> None:
    bin_dir = stand_ins(tmp_path, "level1-pass")
    configure(tmp_path, sre_agent_slurm_prolog=True)
    allowed = run_hook(tmp_path / "sbin" / "sre-slurm-prolog")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "level 1 OK, job allowed" in allowed.stdout
    assert not (bin_dir / "scontrol.argv").exists()
    assert not (tmp_path / "sbin" / "sre-slurm-epilog").exists()
    fragment = (tmp_path / "etc" / "slurm-hooks.conf").read_text(encoding="utf-8")
    lines = [x for x in fragment.splitlines() if x and not x.startswith("#")]
    assert lines == [
        f"Prolog={tmp_path / 'sbin' / 'sre-slurm-prolog'}",
        "PrologFlags=Alloc",
        "PrologEpilogTimeout=85",
    ]


def test_off_by_default_and_removed_when_turned_off(tmp_path: Path) -> None:
    stand_ins(tmp_path, "level1-pass")
    configure(tmp_path, sre_agent_slurm_prolog=True, sre_agent_slurm_epilog=True)
    assert (tmp_path / "sbin" / "sre-slurm-epilog").exists()
    configure(tmp_path)  # the defaults: both off
    for name in ("sbin/sre-slurm-prolog", "sbin/sre-slurm-epilog", "etc/slurm-hooks.conf"):
        assert not (tmp_path / name).exists(), name
    assert os.listdir(tmp_path / "sbin") == []
