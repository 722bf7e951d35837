"""The sre_agent formula's Slurm prolog/epilog hooks (pillar sre_agent:slurm:prolog, :epilog):
the states render with the pillar, bad pillar fails the render with one line naming the key, and
the hook rendered by ``cp.get_template`` runs as slurmd runs it (no PATH, SLURMD_NODENAME,
SLURM_JOB_ID) with the real ``sre diag run``, a stand-in ``dcgmi`` printing a recorded result
(tests/fixtures/diag/dcgm) and a stand-in ``scontrol`` that records its argv. The Ansible role's
twin: tests/ansible/test_sre_agent_slurm_hooks.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.salt import SaltError, get_template, local_minion_config, show_sls, state_args

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
DCGM = ROOT / "tests" / "fixtures" / "diag" / "dcgm"
DEBIAN = {"os_family": "Debian", "os": "Debian", "osfinger": "Debian-12", "osarch": "amd64"}

pytestmark = pytest.mark.usefixtures("salt_installed")


def test_hooks_render_with_the_pillar(tmp_path: Path) -> None:
    pillar = {"sre_agent": {"slurm": {"prolog": True, "epilog": True}}}
    high = show_sls(tmp_path, "sre_agent.config.slurm", pillar, grains=DEBIAN)
    prolog = state_args(high["sre_agent-config-slurm-file-managed-prolog"], "file")
    assert prolog["name"] == "/usr/local/sbin/sre-slurm-prolog" and prolog["mode"] == "0755"
    assert prolog["context"]["hook"] == "prolog"
    epilog = state_args(high["sre_agent-config-slurm-file-managed-epilog"], "file")
    assert epilog["name"] == "/usr/local/sbin/sre-slurm-epilog"
    fragment = state_args(high["sre_agent-config-slurm-file-managed-hooks-fragment"], "file")
    assert fragment["name"] == "/etc/sre-tools/slurm-hooks.conf"
    off = state_args(high["sre_agent-config-slurm-file-absent-hooks-off"], "file")
    assert off["names"] == []


def test_hooks_off_by_default_are_kept_absent(tmp_path: Path) -> None:
    high = show_sls(tmp_path, "sre_agent.config.slurm", {}, grains=DEBIAN)
    assert not [k for k in high if k.startswith("sre_agent-config-slurm-file-managed")]
    off = state_args(high["sre_agent-config-slurm-file-absent-hooks-off"], "file")
    assert off["names"] == [
        "/usr/local/sbin/sre-slurm-prolog",
        "/usr/local/sbin/sre-slurm-epilog",
        "/etc/sre-tools/slurm-hooks.conf",
    ]


@pytest.mark.parametrize(
    ("slurm", "message"),
    [
        ({"prolog": True, "prolog_timeout": 45}, "sre_agent:slurm:prolog_timeout must be 1-30"),
        ({"epilog": True, "epilog_timeout": 0}, "sre_agent:slurm:epilog_timeout must be 1-3600"),
        (
            {"prolog": True, "hooks_fail_on": ["crit", "sometimes"]},
            "sre_agent:slurm:hooks_fail_on must be a non-empty list of crit, warn",
        ),
        ({"prolog": True, "hooks_diag_args": "--site x"}, "sre_agent:slurm:hooks_diag_args"),
        (
            {"epilog": True, "epilog_program": "sre-epilog"},
            "sre_agent:slurm:epilog_program must be an absolute path",
        ),
    ],
    ids=["prolog-timeout", "epilog-timeout", "fail-on", "diag-args", "relative-program"],
)
def test_bad_hook_pillar_fails_with_one_line(
    tmp_path: Path, slurm: dict[str, Any], message: str
) -> None:
    with pytest.raises(SaltError) as info:
        show_sls(tmp_path, "sre_agent.config.slurm", {"sre_agent": {"slurm": slurm}}, grains=DEBIAN)
    assert message in str(info.value).replace('\\"', '"')


def _context(tmp_path: Path, **slurm: Any) -> dict[str, Any]:
    return {
        "venv": str(VENV),
        "slurm": {
            "scontrol": str(tmp_path / "bin" / "scontrol"),
            "hooks_fail_on": ["crit"],
            "hooks_reason_prefix": "sre:",
            "hooks_path": f"{tmp_path / 'bin'}:/usr/bin:/bin",
            "hooks_log": str(tmp_path / "hooks.jsonl"),
            "hooks_diag_args": ["--profile", "h100-sxm-8"],
            "prolog": True,
            "epilog": False,
            "prolog_timeout": 25,
            "epilog_timeout": 300,
            "prolog_program": "/usr/local/sbin/sre-slurm-prolog",
            "epilog_program": "/usr/local/sbin/sre-slurm-epilog",
            "prolog_flags": "Alloc",
            **slurm,
        },
    }


def test_the_rendered_prolog_refuses_a_job_on_a_failing_level_1(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dcgmi = bin_dir / "dcgmi"
    dcgmi.write_text(
        f"#!/bin/sh\ncat {DCGM}/level1-row-remap-pending-gpu0.json\n", encoding="utf-8"
    )
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(bin_dir / 'argv')!r}, 'w').write(json.dumps(sys.argv[1:]))\n",
        encoding="utf-8",
    )
    for path in (dcgmi, scontrol):
        path.chmod(0o755)
    conf = local_minion_config(tmp_path / "minion", grains=DEBIAN)
    context = _context(tmp_path)
    hook = tmp_path / "sre-slurm-prolog"
    text = get_template(
        conf,
        "salt://sre_agent/files/default/sre-slurm-hook.py.jinja",
        hook,
        sre_agent=context,
        hook="prolog",
    )
    assert text.startswith(f"#!{VENV}/bin/python\n")
    hook.chmod(0o755)
    env = {"SLURMD_NODENAME": "gpu-node-07", "SLURM_JOB_ID": "12", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([str(hook)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    argv = json.loads((bin_dir / "argv").read_text())
    assert argv[:3] == ["update", "NodeName=gpu-node-07", "State=DRAIN"]
    assert argv[3].startswith("Reason=sre: diag ev=prolog:gpu-node-07:12: level 1 CRIT: GPU 0")
    (record,) = [json.loads(x) for x in (tmp_path / "hooks.jsonl").read_text().splitlines()]
    assert record["outcome"] == "drained"

    fragment = get_template(
        conf,
        "salt://sre_agent/files/default/slurm-hooks.conf.jinja",
        tmp_path / "slurm-hooks.conf",
        sre_agent=_context(tmp_path, epilog=True),
    )
    lines = [x for x in fragment.splitlines() if x and not x.startswith("#")]
    assert lines == [
        "Prolog=/usr/local/sbin/sre-slurm-prolog",
        "PrologFlags=Alloc",
        "Epilog=/usr/local/sbin/sre-slurm-epilog",
        "PrologEpilogTimeout=360",
    ]
