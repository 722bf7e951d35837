"""The whole top file renders with the example pillar: ``state.show_highstate`` per SKU.

``salt-call --local --file-root salt --pillar-root salt/pillar --id gpu-h100-01
state.show_highstate`` with a temporary config directory (``file_client: local``, Debian 12
grains): every formula top.sls names must exist and render, the per-SKU pillar must reach them.
"""

from __future__ import annotations

import getpass
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.salt import (
    SALT_DIR,
    TOP_FORMULAS,
    local_minion_config,
    salt_bin,
    salt_call,
    state_args,
)

GRAINS = {
    "os_family": "Debian",
    "os": "Debian",
    "osfinger": "Debian-12",
    "osarch": "amd64",
    "oscodename": "bookworm",
    "osrelease": "12",
    "osmajorrelease": 12,
    "kernelrelease": "6.1.0-28-amd64",
    "cpuarch": "x86_64",
}


pytestmark = pytest.mark.usefixtures("salt_call_installed")


def _top_formulas() -> list[str]:
    top = yaml.safe_load((SALT_DIR / "top.sls").read_text(encoding="utf-8"))
    return list(top["base"]["gpu-*"])


def test_top_file_names_every_formula_and_they_exist() -> None:
    assert _top_formulas() == TOP_FORMULAS
    missing = [f for f in TOP_FORMULAS if not (SALT_DIR / f / "init.sls").is_file()]
    assert not missing, f"formulas in salt/top.sls without salt/<name>/init.sls: {missing}"


def _show_highstate(workdir: Path, minion_id: str) -> dict[str, Any]:
    """The documented command line: --file-root / --pillar-root / --id on a temporary config."""
    conf = workdir / "conf"
    conf.mkdir(parents=True)
    minion = {
        "file_client": "local",
        "root_dir": str(workdir / "root"),
        "pki_dir": str(workdir / "root" / "pki"),
        "cachedir": str(workdir / "root" / "cache"),
        "sock_dir": str(workdir / "root" / "sock"),
        "log_file": str(workdir / "minion.log"),
        "user": getpass.getuser(),
        "grains": GRAINS,
    }
    (conf / "minion").write_text("---\n" + yaml.safe_dump(minion), encoding="utf-8")
    argv = [
        salt_bin("salt-call"),
        "--local",
        "-c",
        str(conf),
        "--file-root",
        str(SALT_DIR),
        "--pillar-root",
        str(SALT_DIR / "pillar"),
        "--id",
        minion_id,
        "--out",
        "json",
        "-l",
        "quiet",
        "state.show_highstate",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)["local"]
    assert isinstance(data, dict), data
    return data


@pytest.mark.parametrize(
    ("minion_id", "profile", "verify"),
    [("gpu-h100-01", "h100-sxm-8", "nvml"), ("gpu-a100-01", "a100-sxm-8", "nvidia_smi")],
)
def test_show_highstate_per_sku(tmp_path: Path, minion_id: str, profile: str, verify: str) -> None:
    high = _show_highstate(tmp_path, minion_id)
    formulas = {state["__sls__"].split(".")[0] for state in high.values()}
    assert formulas == set(TOP_FORMULAS), f"formulas without states: {set(TOP_FORMULAS) - formulas}"
    policy = state_args(high["sre_agent-config-file-file-managed"])["context"]["policy"]
    assert policy["profile"] == profile
    check = state_args(high["nvidia_driver-service-verify-cmd-run"])["name"].split()
    assert check[check.index("--method") + 1] == verify
    assert check[check.index("--count") + 1] == "8"
    blacklist = high["gpu_base-config-file-file-managed-blacklist"]
    assert state_args(blacklist)["name"] == "/etc/modprobe.d/blacklist-nouveau.conf"


def test_pillar_per_sku(tmp_path: Path) -> None:
    """gpu-a100-* gets the A100 pillar, every other gpu-* the H100 one; both get the beacon."""
    for minion_id, profile in (("gpu-a100-07", "a100-sxm-8"), ("gpu-node-01", "h100-sxm-8")):
        conf = local_minion_config(tmp_path / minion_id, minion_id=minion_id, grains=GRAINS)
        pillar = salt_call(conf, "pillar.items", "unmask=True")
        assert pillar["sre_tools"]["profile"] == profile, minion_id
        assert "gpu_health" in pillar["beacons"], minion_id
        assert pillar["nvidia_driver"]["verify_gpu_count"] == 8, minion_id
