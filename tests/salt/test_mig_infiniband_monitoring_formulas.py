"""The nvidia_mig, infiniband and gpu_monitoring formulas and sre_agent's Slurm wiring render.

Each scenario is one ``salt-call --local state.show_sls`` with its own pillar and grains (Debian
12, Ubuntu 24.04, Rocky 9); bad pillar must fail the render with one line naming the key. The
scripts the formulas install are rendered with ``cp.get_template`` and run here: the Slurm health
check wrapper against a recorded fault, the MIG apply script against Slurm states.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from sre_tools.exporter.metric_names import SCRAPE_JOB
from tests.helpers.salt import (
    SALT_DIR,
    SaltError,
    get_template,
    local_minion_config,
    show_sls,
    state_args,
)

pytestmark = pytest.mark.usefixtures("salt_installed")

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gpu"
VENV = Path(sys.executable).parent.parent
GRAINS = {
    "Debian": {
        "os_family": "Debian",
        "os": "Debian",
        "osrelease": "12",
        "osmajorrelease": 12,
        "osfinger": "Debian-12",
        "osarch": "amd64",
    },
    "Ubuntu": {
        "os_family": "Debian",
        "os": "Ubuntu",
        "osrelease": "24.04",
        "osmajorrelease": 24,
        "osfinger": "Ubuntu-24.04",
        "osarch": "amd64",
    },
    "RedHat": {
        "os_family": "RedHat",
        "os": "Rocky",
        "osrelease": "9.4",
        "osmajorrelease": 9,
        "osfinger": "Rocky Linux-9",
        "osarch": "x86_64",
    },
}
FORMULAS = "nvidia_mig,infiniband,gpu_monitoring"
FINGERPRINT = "0123456789ABCDEF0123456789ABCDEF01234567"
HASH = "sha256=" + "a" * 64
BASE_PILLAR: dict[str, Any] = {"nvidia_mig": {"manager": {"deb_hash": HASH}}}


def _show(tmp: Path, family: str, pillar: dict[str, Any], sls: str = FORMULAS) -> dict[str, Any]:
    return show_sls(tmp, sls, pillar, grains=GRAINS[family])


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "debian-defaults": ("Debian", BASE_PILLAR),
    "ubuntu-doca-binary": (
        "Ubuntu",
        _merge(
            BASE_PILLAR,
            {
                "nvidia_mig": {"apply": True, "drain_check": "assert", "node_drained": True},
                "infiniband": {
                    "stack": "doca_ofed",
                    "doca": {"repo_key_fingerprint": FINGERPRINT.lower()},
                    "ipoib": {
                        "backend": "ifupdown",
                        "interfaces": [
                            {
                                "name": "ib0",
                                "address": "10.1.0.5/16",
                                "mtu": 65520,
                                "mode": "connected",
                            }
                        ],
                    },
                    "peermem": {"load": False},
                },
                "gpu_monitoring": {
                    "node_exporter": {"source": "binary", "hash": "sha256=" + "b" * 64},
                    "dcgm_exporter": {"enabled": False},
                    "sre_exporter": {"basic_auth_users": {"prom": "sha256:" + "c" * 64}},
                    "file_sd": {"labels": {"cluster": "c1"}, "target_host": "n1.example"},
                    "grafana": {"enabled": True, "folder": "GPU: SRE"},
                    "alertmanager": {"enabled": True, "targets": ["am-1.example:9093"]},
                },
                "nvidia_driver": {"source": "cuda_repo"},
            },
        ),
    ),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("h2")
    with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
        futures = {
            name: pool.submit(_show, tmp / name, family, pillar)
            for name, (family, pillar) in SCENARIOS.items()
        }
        return {name: future.result() for name, future in futures.items()}


def test_state_ids_follow_the_convention(rendered: dict[str, dict[str, Any]]) -> None:
    for high in rendered.values():
        for state_id, state in high.items():
            formula, directory, file, module = state_id.split("-")[:4]
            assert state["__sls__"] == f"{formula}.{directory}.{file}", state_id
            assert module in state, state_id


def test_nvidia_mig_defaults(rendered: dict[str, dict[str, Any]]) -> None:
    high = rendered["debian-defaults"]
    ids = {i for i in high if i.startswith("nvidia_mig-")}
    assert ids == {
        "nvidia_mig-package-install-file-managed",
        "nvidia_mig-package-install-pkg-installed",
        "nvidia_mig-config-file-file-managed",
        "nvidia_mig-config-file-file-managed-hooks",
        "nvidia_mig-service-running-file-managed",
        "nvidia_mig-service-running-cmd-run-daemon-reload",
        "nvidia_mig-service-running-service-enabled",
    }
    deb = state_args(high["nvidia_mig-package-install-file-managed"], "file")
    assert deb["source"] == (
        "https://github.com/NVIDIA/mig-parted/releases/download/v0.12.1/"
        "nvidia-mig-manager_0.12.1-1_amd64.deb"
    )
    assert deb["source_hash"] == HASH
    pkg = state_args(high["nvidia_mig-package-install-pkg-installed"], "pkg")
    assert pkg["hold"] is True


def test_nvidia_mig_layout_check_cmd_validates_with_sre_tools(
    rendered: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """file.managed's check_cmd, run here with this venv's Python, as Salt would run it."""
    config = state_args(rendered["debian-defaults"]["nvidia_mig-config-file-file-managed"], "file")
    argv = shlex.split(config["check_cmd"])
    assert argv[0] == "/opt/sre-tools/venv/bin/python"
    argv[0] = sys.executable
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(
        "version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n",
        encoding="utf-8",
    )
    bad.write_text(
        "version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
        "      mig-devices:\n        4g.40gb: 2\n",
        encoding="utf-8",
    )
    assert subprocess.run([*argv, str(good)], capture_output=True).returncode == 0
    failed = subprocess.run([*argv, str(bad)], capture_output=True, text=True)
    assert failed.returncode != 0
    assert "mig-configs.a[0].mig-devices: instances need 8 compute" in failed.stderr


def test_nvidia_mig_apply_only_when_assert_fails(rendered: dict[str, dict[str, Any]]) -> None:
    apply = state_args(
        rendered["ubuntu-doca-binary"]["nvidia_mig-service-running-cmd-run-apply"], "cmd"
    )
    assert apply["name"] == "/etc/nvidia-mig-manager/sre-apply-if-drained.sh"
    assert apply["unless"] == (
        "/usr/bin/nvidia-mig-parted assert"
        " -f /etc/nvidia-mig-manager/sre-config.yaml -c all-disabled"
    )
    assert "nvidia_mig-service-running-cmd-run-apply" not in rendered["debian-defaults"]


def test_infiniband_inbox_and_doca(rendered: dict[str, dict[str, Any]]) -> None:
    inbox = state_args(
        rendered["debian-defaults"]["infiniband-package-install-pkg-installed"], "pkg"
    )
    assert inbox["pkgs"] == [
        "rdma-core",
        "ibverbs-providers",
        "ibverbs-utils",
        "infiniband-diags",
        "perftest",
    ]
    doca = rendered["ubuntu-doca-binary"]
    pkg = state_args(doca["infiniband-package-install-pkg-installed"], "pkg")
    assert pkg["pkgs"] == [{"doca-ofed": "2.10.0-*"}] and pkg["hold"] is True
    sources = state_args(doca["infiniband-package-install-file-managed-sources"], "file")
    base = sources["context"]["infiniband"]["derived"]["doca_repo_base"]
    assert base == "https://linux.mellanox.com/public/repo/doca/2.10.0/ubuntu24.04/x86_64"
    fingerprint = state_args(doca["infiniband-package-install-cmd-run-key-fingerprint"], "cmd")
    assert f"fpr:::::::::{FINGERPRINT}:" in fingerprint["unless"]
    ipoib = state_args(doca["infiniband-config-file-file-managed-ipoib"], "file")
    assert list(ipoib["names"][0]) == ["/etc/network/interfaces.d/ib0"]
    assert state_args(doca["infiniband-package-install-pkg-installed-ifupdown"], "pkg") == {
        "name": "ifupdown"
    }
    assert "infiniband-service-running-service-enabled-peermem" in doca


def test_gpu_monitoring_defaults(rendered: dict[str, dict[str, Any]]) -> None:
    high = rendered["debian-defaults"]
    pkg = state_args(high["gpu_monitoring-package-install-pkg-installed"], "pkg")
    assert pkg["pkgs"] == [
        {"datacenter-gpu-manager-4-core": "4.2.3-*"},
        {"datacenter-gpu-manager-4-cuda12": "4.2.3-*"},
        {"datacenter-gpu-manager-exporter": "4.2.3-4.1.3-*"},
    ]
    sources = state_args(high["gpu_monitoring-package-install-file-managed-sources"], "file")
    derived = sources["context"]["gpu_monitoring"]["derived"]
    assert derived["cuda_repo_base"] == (
        "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64"
    )
    # The distribution's node_exporter: at versions.yml's version, any revision, pinned and held.
    node_exporter = state_args(
        high["gpu_monitoring-package-install-pkg-installed-node-exporter"], "pkg"
    )
    assert node_exporter["pkgs"] == [{"prometheus-node-exporter": "1.5.0-*"}]
    assert node_exporter["hold"] is True and node_exporter["update_holds"] is True
    pin_state = high["gpu_monitoring-package-install-file-managed-node-exporter-pin"]
    assert "managed" in pin_state["file"]
    pin = state_args(pin_state, "file")
    assert pin["name"] == "/etc/apt/preferences.d/gpu-monitoring-node-exporter.pref"
    template = SALT_DIR / "gpu_monitoring" / "files" / "default" / "node_exporter.pref.jinja"
    text = jinja2.Template(template.read_text(encoding="utf-8")).render(pin["context"])
    assert "Package: prometheus-node-exporter\nPin: version 1.5.0-*\nPin-Priority: 1001" in text, (
        text
    )
    fsd = state_args(high["gpu_monitoring-config-file-file-serialize"], "file")
    names = {next(iter(n)): n[next(iter(n))] for n in fsd["names"]}
    node = names["/etc/prometheus/file_sd/node-gpu-node-01.json"][0]["dataset"]
    assert node == [
        {"targets": ["gpu-node-01:9100"], "labels": {"job": "gpu-node", "node": "gpu-node-01"}}
    ]
    assert set(names) == {
        f"/etc/prometheus/file_sd/{job}-gpu-node-01.json" for job in ("node", "dcgm", "sre")
    }
    # The sre exporter's job is the one the GPU alert rules and the dashboards select.
    sre = names["/etc/prometheus/file_sd/sre-gpu-node-01.json"][0]["dataset"]
    assert sre[0]["labels"]["job"] == SCRAPE_JOB


def test_gpu_monitoring_binary_secrets_and_shared_cuda_source(
    rendered: dict[str, dict[str, Any]],
) -> None:
    high = rendered["ubuntu-doca-binary"]
    archive = state_args(high["gpu_monitoring-package-install-archive-extracted"], "archive")
    assert archive["source"].endswith("/v1.9.1/node_exporter-1.9.1.linux-amd64.tar.gz")
    assert archive["source_hash"] == "sha256=" + "b" * 64
    # The binary source leaves no pin on the distribution's package behind.
    assert "gpu_monitoring-package-install-pkg-installed-node-exporter" not in high
    assert "absent" in high["gpu_monitoring-package-install-file-managed-node-exporter-pin"]["file"]
    # nvidia_driver adds the CUDA repository itself (pillar source: cuda_repo): not twice.
    assert "gpu_monitoring-package-install-file-managed-sources" not in high
    secrets = state_args(high["gpu_monitoring-config-file-file-managed-secrets"], "file")
    assert secrets["show_changes"] is False and secrets["mode"] == "0600"
    fsd = state_args(high["gpu_monitoring-config-file-file-serialize"], "file")
    datasets = [n[next(iter(n))][0]["dataset"][0] for n in fsd["names"]]
    assert {d["targets"][0] for d in datasets} == {"n1.example:9100", "n1.example:9835"}
    assert all(d["labels"]["cluster"] == "c1" for d in datasets)


BAD_PILLAR = [
    (
        "Debian",
        {"nvidia_mig": {"manager": {"deb_hash": ""}}},
        "nvidia_mig:manager:deb_hash is required",
    ),
    (
        "Debian",
        _merge(BASE_PILLAR, {"nvidia_mig": {"selected_config": "nope"}}),
        'pillar nvidia_mig:selected_config "nope" is not in nvidia_mig:configs',
    ),
    (
        "Debian",
        _merge(BASE_PILLAR, {"infiniband": {"stack": "doca_ofed"}}),
        "pillar infiniband:doca:repo_key_fingerprint must be the 40-hex-digit fingerprint",
    ),
    (
        "Debian",
        _merge(
            BASE_PILLAR,
            {
                "infiniband": {
                    "ipoib": {"interfaces": [{"name": "ib0", "address": "10.0.0.1/8", "mtu": 9000}]}
                }
            },
        ),
        "pillar infiniband:ipoib:interfaces[0]:mtu 9000 is above the datagram maximum (4092)",
    ),
    (
        "Debian",
        _merge(BASE_PILLAR, {"gpu_monitoring": {"node_exporter": {"source": "binary"}}}),
        "pillar gpu_monitoring:node_exporter:hash must be sha256=<64 hex digits>",
    ),
    (
        "Debian",
        _merge(BASE_PILLAR, {"gpu_monitoring": {"alertmanager": {"enabled": True}}}),
        "pillar gpu_monitoring:alertmanager:enabled needs gpu_monitoring:alertmanager:targets",
    ),
    (
        "Debian",
        _merge(
            BASE_PILLAR,
            {"gpu_monitoring": {"alertmanager": {"enabled": True, "targets": ["am-1"]}}},
        ),
        'pillar gpu_monitoring:alertmanager:targets[0] must be HOST:PORT, not "am-1"',
    ),
    ("RedHat", BASE_PILLAR, 'supports the Debian family (Debian, Ubuntu), not "RedHat"'),
]


def test_gpu_monitoring_grafana_and_alertmanager(rendered: dict[str, dict[str, Any]]) -> None:
    from sre_tools.dashboards.generate import DASHBOARDS, packaged_dir

    defaults = rendered["debian-defaults"]
    assert not [s for s in defaults if "dashboard" in s or "alertmanagers" in s]
    high = rendered["ubuntu-doca-binary"]
    recurse = state_args(high["gpu_monitoring-config-file-file-recurse-dashboards"], "file")
    assert recurse["name"] == "/var/lib/grafana/dashboards/sre-tools"
    assert recurse["source"] == "salt://gpu_monitoring/files/dashboards"
    # The formula's file tree serves the packaged dashboards (a link to sre_tools/data/dashboards).
    served = SALT_DIR / "gpu_monitoring" / "files" / "dashboards"
    assert sorted(p.name for p in served.glob("*.json")) == sorted(f"{n}.json" for n in DASHBOARDS)
    assert served.resolve() == packaged_dir().resolve()
    provider = state_args(
        high["gpu_monitoring-config-file-file-serialize-dashboard-provider"], "file"
    )
    assert provider["name"] == "/etc/grafana/provisioning/dashboards/sre-tools.yml"
    generated = yaml.safe_load((packaged_dir() / "sre-tools.yml").read_text())
    generated["providers"][0]["folder"] = "GPU: SRE"
    assert provider["dataset"] == generated
    am = state_args(high["gpu_monitoring-config-file-file-serialize-alertmanagers"], "file")
    assert am["name"] == "/etc/prometheus/alertmanager_sd/sre-tools.json"
    assert am["dataset"] == [{"targets": ["am-1.example:9093"]}]


@pytest.mark.parametrize(
    ("family", "pillar", "message"),
    BAD_PILLAR,
    ids=[
        "mig-no-hash",
        "mig-unknown-selection",
        "doca-no-fingerprint",
        "ipoib-mtu",
        "ne-no-hash",
        "am-no-targets",
        "am-no-port",
        "redhat",
    ],
)
def test_bad_pillar_fails_with_one_line(
    tmp_path: Path, family: str, pillar: dict[str, Any], message: str
) -> None:
    with pytest.raises(SaltError) as info:
        _show(tmp_path, family, pillar)
    # salt-call prints the render error JSON-escaped.
    assert message in str(info.value).replace('\\"', '"')


# --- scripts, rendered and run ----------------------------------------------------------------


def _template(tmp: Path, source: str, **context: Any) -> Path:
    conf = local_minion_config(tmp, grains=GRAINS["Debian"])
    dest = tmp / Path(source).name.replace(".jinja", "")
    get_template(conf, source, dest, **context)
    dest.chmod(dest.stat().st_mode | stat.S_IXUSR)
    return dest


def _stub(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return path


def test_slurm_healthcheck_wrapper_drains_on_critical(tmp_path: Path) -> None:
    """sre_agent:slurm: the wrapper runs this venv's sre against a double-bit-ECC recording."""
    record = tmp_path / "scontrol.argv"
    scontrol = _stub(tmp_path / "scontrol", f'for a in "$@"; do echo "$a"; done > {record}\n')
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (tmp_path / "policy.yaml").write_text("profile: generic\n", encoding="utf-8")
    sre_agent = {
        "venv": str(VENV),
        "config": {"dir": str(tmp_path), "file": "policy.yaml"},
        "service": {"state_dir": str(state_dir), "replay": "salt://x.json"},
        "slurm": {"drain": True, "scontrol": str(scontrol), "program": "", "interval": 300},
    }
    wrapper = _template(
        tmp_path / "t",
        "salt://sre_agent/files/default/sre-slurm-healthcheck.sh.jinja",
        sre_agent=sre_agent,
    )
    env = {**os.environ, "SLURMD_NODENAME": "gpu-node-01"}
    (state_dir / "replay.json").write_bytes((FIXTURES / "h100-capture.json").read_bytes())
    healthy = subprocess.run([str(wrapper)], capture_output=True, text=True, env=env, timeout=60)
    assert (healthy.returncode, healthy.stdout) == (0, ""), healthy.stderr
    assert not record.exists()
    (state_dir / "replay.json").write_bytes(
        (FIXTURES / "faults" / "dbe-volatile.json").read_bytes()
    )
    sick = subprocess.run([str(wrapper)], capture_output=True, text=True, env=env, timeout=60)
    assert sick.returncode == 2, sick.stderr
    assert sick.stdout.startswith("ERROR: nhc: Health check failed: GPU 0")
    argv = record.read_text(encoding="utf-8").splitlines()
    assert argv[:3] == ["update", "NodeName=gpu-node-01", "State=DRAIN"]
    assert argv[3].startswith("Reason=sre health: Health check failed: GPU 0")


@pytest.mark.parametrize(
    ("slurm_state", "applies"),
    [("IDLE+DRAIN", True), ("DOWN+DRAIN", True), ("MIXED+DRAIN", False), ("IDLE", False)],
)
def test_mig_apply_script_requires_a_drained_node(
    tmp_path: Path, slurm_state: str, applies: bool
) -> None:
    scontrol = _stub(
        tmp_path / "scontrol",
        f'echo "NodeName=$3 Arch=x86_64 CoresPerSocket=1 State={slurm_state} ThreadsPerCore=1"\n',
    )
    applied = tmp_path / "applied"
    parted = _stub(tmp_path / "parted", f'echo "$@" > {applied}\n')
    nvidia_mig = {
        "selected_config": "all-1g.10gb",
        "drain_check": "slurm",
        "slurm_node_name": "gpu-node-01",
        "scontrol": str(scontrol),
        "parted": str(parted),
        "config_file": "/etc/nvidia-mig-manager/sre-config.yaml",
        "hooks_file": "/etc/nvidia-mig-manager/sre-hooks.yaml",
        "node_drained": False,
    }
    script = _template(
        tmp_path / "t",
        "salt://nvidia_mig/files/default/sre-apply-if-drained.sh.jinja",
        nvidia_mig=nvidia_mig,
    )
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=60)
    if applies:
        assert result.returncode == 0, result.stderr
        expected = ["apply", "-f", nvidia_mig["config_file"], "-c", "all-1g.10gb"]
        assert applied.read_text().split() == [*expected, "-k", nvidia_mig["hooks_file"]]
    else:
        assert result.returncode == 1 and not applied.exists()
        assert result.stderr.strip() == (
            "nvidia_mig: refusing to apply MIG layout all-1g.10gb: node gpu-node-01 is not drained "
            f"(Slurm state {slurm_state}); drain it and wait for its jobs to end"
        )
