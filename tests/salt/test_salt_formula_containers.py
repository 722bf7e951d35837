"""Masterless ``state.apply`` of the remaining formulas in Debian 12 systemd containers.

nvidia_fabricmanager, cuda_toolkit, nvidia_mig, gpu_monitoring, container_runtime and infiniband,
with real apt, dpkg and systemd (tests/helpers/salt_containers.py; ``converge`` runs test=True on
the fresh node, the apply, a second apply that must change nothing, and test=True on the
converged node; each test then checks the system itself).

NVIDIA's repositories cannot be reached from CI: NVIDIA's packages come from the signed TEST
FIXTURE repository (molecule/fixture_repo, copied to /srv/sre-fixture-repo in the container), whose
packages carry NVIDIA's names and nothing of NVIDIA's (their daemons are stand-ins that run
without a GPU). Debian's own packages (containerd, rdma-core, prometheus-node-exporter, ...) come
from Debian's mirror.

CI time is scarce (2 cores), so the six formulas share two containers, grouped by what they need:
the CUDA repository users and the sre-tools users in one (they also write the same CUDA source,
which must stay stable when several formulas manage it), the libnvidia-container repository and
Debian's RDMA stack in the other. Marked ``molecule`` (deselected by default).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.salt_containers import (
    FIXTURE_REPO_DIR,
    ROOT,
    SaltContainer,
    apt_candidate,
    apt_held,
    converge,
    dpkg_version,
    sre_tools_index,
)

pytestmark = pytest.mark.molecule

FIXTURE_URL = "file:///srv/sre-fixture-repo"
DRIVER_VERSION = "535.261.03"  # the fixture has 535.288.01 too: the pin must hold it back
MIG_DEB = "mig-parted/deb/amd64/nvidia-mig-manager_0.12.1-1_amd64.deb"
REPLAY = "/var/lib/sre-tools/replay.json"
# --network host: every container shares the host's ports; these are used by no other test.
NODE_EXPORTER_PORT = 29150
DCGM_EXPORTER_PORT = 29450
SRE_EXPORTER_PORT = 29850

# GET a URL from inside the container, retrying while a service (re)starts; prints the body.
FETCH = """
import sys, time, urllib.request
for attempt in range(60):
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
        break
    except OSError as exc:
        error = exc
        time.sleep(1)
else:
    sys.exit(f"{sys.argv[1]}: {error}")
"""


def _fetch(node: SaltContainer, url: str) -> str:
    return node.exec("python3", "-c", FETCH, url, timeout=120).stdout


def _systemctl_show(node: SaltContainer, unit: str, *props: str) -> dict[str, str]:
    argv = ["systemctl", "show", unit, *(f"--property={p}" for p in props)]
    out = node.exec(*argv).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _active(node: SaltContainer, unit: str) -> str:
    return node.exec("systemctl", "is-active", unit, check=False).stdout.strip()


def _enabled(node: SaltContainer, unit: str) -> str:
    return node.exec("systemctl", "is-enabled", unit, check=False).stdout.strip()


# --- nvidia_fabricmanager + cuda_toolkit + nvidia_mig + gpu_monitoring ---------------------------

CUDA_SLS = "nvidia_fabricmanager,cuda_toolkit,nvidia_mig,gpu_monitoring"
CUDA_MUST_CHANGE = {
    # The CUDA repository, written by three formulas with the same content.
    "nvidia_fabricmanager-package-repo-file-managed-key",
    "nvidia_fabricmanager-package-repo-file-managed-cuda",
    "nvidia_fabricmanager-package-repo-file-managed-pin",
    "nvidia_fabricmanager-package-install-pkg-installed",
    "nvidia_fabricmanager-config-file-file-keyvalue",
    "nvidia_fabricmanager-service-running-service-running",
    "cuda_toolkit-package-install-pkg-installed",
    "cuda_toolkit-config-file-file-managed",
    "cuda_toolkit-config-file-cmd-run-alternatives",
    "nvidia_mig-package-install-file-managed",
    "nvidia_mig-package-install-pkg-installed",
    "nvidia_mig-config-file-file-managed",
    "nvidia_mig-config-file-file-managed-hooks",
    "nvidia_mig-service-running-file-managed",
    "nvidia_mig-service-running-service-enabled",
    "nvidia_mig-service-running-cmd-run-apply",
    "gpu_monitoring-package-install-file-managed-node-exporter-pin",
    "gpu_monitoring-package-install-pkg-installed-node-exporter",
    "gpu_monitoring-package-install-file-managed-pin",
    "gpu_monitoring-package-install-pkg-installed",
    "gpu_monitoring-config-file-file-managed-node-exporter-args",
    "gpu_monitoring-config-file-file-managed-units",
    "gpu_monitoring-config-file-file-serialize",
    "gpu_monitoring-service-running-service-running-node-exporter",
    "gpu_monitoring-service-running-service-dcgm",
    "gpu_monitoring-service-running-service-dcgm-exporter",
    "gpu_monitoring-service-running-service-sre-exporter",
}
CUDA_DRY_RUN_CANNOT_TELL = frozenset(
    {
        # onlyif test -d /usr/local/cuda-<default>: the toolkit is not there before the apply.
        "cuda_toolkit-config-file-cmd-run-alternatives",
        # onlyif test -f <downloaded key>: nothing is downloaded before the apply (the download
        # and the fingerprint check announce their work instead).
        "nvidia_fabricmanager-package-repo-file-managed-key",
        # onlyif test -f fabricmanager.cfg: the package that ships it is not installed yet.
        "nvidia_fabricmanager-config-file-file-keyvalue",
    }
)


def _cuda_pillar(fingerprint: str, index: str, mig_sha256: str) -> dict[str, Any]:
    cuda_repos = f"{FIXTURE_URL}/cuda/repos"
    return {
        # Not applied here: Fabric Manager follows the driver version the pillar names.
        "nvidia_driver": {"version": DRIVER_VERSION},
        "nvidia_fabricmanager": {
            "install": "always",  # no NVSwitch in a container
            "cuda_repo_url": cuda_repos,
            "cuda_repo_key_fingerprint": fingerprint,
            "config": {"LOG_LEVEL": 3, "FABRIC_MODE": 1},
            # The fixture's nv-fabricmanager reads its configuration and sleeps: it runs without
            # NVSwitches, so the service is started (NVIDIA's would exit: stop it on such nodes).
        },
        "cuda_toolkit": {
            "versions": ["12.6", "12.8"],
            # The older one behind /usr/local/cuda, against the newer one's higher priority.
            "default_version": "12.6",
            "cuda_repo_url": cuda_repos,
            "cuda_repo_key_fingerprint": fingerprint,
        },
        "sre_agent": {"source": {"requirement": "sre-tools", "index_url": index}},
        "nvidia_mig": {
            "manager": {
                "deb_url": f"{FIXTURE_URL}/{MIG_DEB}",
                "deb_hash": f"sha256={mig_sha256}",
            },
            "gpu_memory": "80gb",
            "selected_config": "all-1g.10gb",
            # The fixture's nvidia-mig-parted touches no GPU: it records the applied layout and
            # runs the hooks, so the drained-node apply path runs for real.
            "apply": True,
            "drain_check": "assert",
            "node_drained": True,
            # nvidia-mig-manager.service is enabled for boot, not started (Salt only enables it).
        },
        "gpu_monitoring": {
            "node_exporter": {"listen_address": f"127.0.0.1:{NODE_EXPORTER_PORT}"},
            "cuda_repo": {"url": cuda_repos, "key_fingerprint": fingerprint},
            # The fixture's nv-hostengine sleeps and its dcgm-exporter serves one fixed metric:
            # both run without a GPU, so both services are running.
            "dcgm_exporter": {"listen_address": f"127.0.0.1:{DCGM_EXPORTER_PORT}"},
            "sre_exporter": {
                "listen_address": f"127.0.0.1:{SRE_EXPORTER_PORT}",
                "replay": REPLAY,  # no NVML in a container: a recording
            },
            "file_sd": {"labels": {"cluster": "salt-containers"}},
        },
    }


def test_cuda_repo_formulas(record_property: Any) -> None:
    """Fabric Manager, CUDA toolkits, MIG manager and the monitoring stack on one node, from the
    fixture's CUDA repository (and its mig-parted .deb), sre-tools from a local index."""
    with SaltContainer("gpu-h100-05") as node:
        fingerprint = node.add_fixture_repo()
        mig_sha256 = hashlib.sha256((FIXTURE_REPO_DIR / MIG_DEB).read_bytes()).hexdigest()
        index = sre_tools_index(node)
        node.exec("mkdir", "-p", str(Path(REPLAY).parent))
        node.copy_in(ROOT / "tests" / "fixtures" / "gpu" / "h100-capture.json", REPLAY)
        node.set_pillar(_cuda_pillar(fingerprint, index, mig_sha256))
        timings = converge(
            node, CUDA_SLS, CUDA_MUST_CHANGE, dry_run_cannot_tell=CUDA_DRY_RUN_CANNOT_TELL
        )
        record_property("timings", timings)
        print(f"timings {CUDA_SLS}: {timings}")

        # One CUDA source and keyring, trusted by apt (three formulas manage them).
        sources = node.read_file("/etc/apt/sources.list.d/nvidia-cuda.sources")
        assert f"URIs: {FIXTURE_URL}/cuda/repos/debian12/x86_64/" in sources, sources
        assert "Signed-By: /etc/apt/keyrings/nvidia-cuda.asc" in sources
        policy = node.exec("apt-cache", "policy").stdout
        assert "file:/srv/sre-fixture-repo/cuda/repos/debian12/x86_64" in policy, policy

        # nvidia_fabricmanager: the driver's exact version (535.288.01 is newer), pinned, held,
        # its configuration keys set, the daemon running with it.
        held = apt_held(node)
        assert dpkg_version(node, "nvidia-fabricmanager-535") == f"{DRIVER_VERSION}-1"
        assert apt_candidate(node, "nvidia-fabricmanager-535") == f"{DRIVER_VERSION}-1"
        madison = node.exec("apt-cache", "madison", "nvidia-fabricmanager-535").stdout
        assert "535.288.01-1" in madison, madison
        assert "nvidia-fabricmanager-535" in held
        pin = node.read_file("/etc/apt/preferences.d/nvidia-fabricmanager.pref")
        assert "Package: nvidia-fabricmanager-535" in pin
        assert f"Pin: version {DRIVER_VERSION}-*" in pin and "Pin-Priority: 1001" in pin
        fm_config = node.read_file("/usr/share/nvidia/nvswitch/fabricmanager.cfg").splitlines()
        assert "LOG_LEVEL=3" in fm_config and "FABRIC_MODE=1" in fm_config, fm_config
        assert "BIND_INTERFACE_IP=127.0.0.1" in fm_config  # the package's other keys stay
        assert _active(node, "nvidia-fabricmanager") == "active"
        assert _enabled(node, "nvidia-fabricmanager") == "enabled"

        # cuda_toolkit: both toolkits; 12.6 is the default against 12.8's higher priority; a
        # login shell finds its nvcc.
        assert dpkg_version(node, "cuda-toolkit-12-6").startswith("12.6.")
        assert dpkg_version(node, "cuda-toolkit-12-8").startswith("12.8.")
        for name in ("cuda", "cuda-12"):
            query = node.exec("update-alternatives", "--query", name).stdout
            assert "Status: manual" in query and "Value: /usr/local/cuda-12.6" in query, query
        link = node.exec("readlink", "-f", "/usr/local/cuda").stdout.strip()
        assert link == "/usr/local/cuda-12.6"
        login = node.exec("bash", "-lc", 'echo "$CUDA_HOME"; command -v nvcc; nvcc').stdout
        assert login.splitlines()[:2] == ["/usr/local/cuda", "/usr/local/cuda/bin/nvcc"], login
        assert "release 12.6" in login, login

        # nvidia_mig: the .deb (checked against its sha256) installed and held, the layouts
        # (validated by sre-tools), hooks, the unit's drop-in, and the selected layout applied.
        assert dpkg_version(node, "nvidia-mig-manager") == "0.12.1-1"
        assert "nvidia-mig-manager" in held
        config_file = "/etc/nvidia-mig-manager/sre-config.yaml"
        layouts = yaml.safe_load(node.read_file(config_file))
        assert layouts["version"] == "v1"
        assert {"all-disabled", "all-1g.10gb"} <= set(layouts["mig-configs"]), layouts
        hooks = yaml.safe_load(node.read_file("/etc/nvidia-mig-manager/sre-hooks.yaml"))
        assert set(hooks["hooks"]) == {"pre-apply-mode", "pre-apply-config", "apply-exit"}
        for script in ("sre-hooks.sh", "sre-apply-if-drained.sh"):
            node.exec("test", "-x", f"/etc/nvidia-mig-manager/{script}")
        unit = _systemctl_show(node, "nvidia-mig-manager.service", "Environment", "DropInPaths")
        assert f"MIG_PARTED_CONFIG_FILE={config_file}" in unit["Environment"], unit
        assert "MIG_PARTED_SELECTED_CONFIG=all-1g.10gb" in unit["Environment"], unit
        assert unit["DropInPaths"].endswith("10-sre-tools.conf"), unit
        assert _enabled(node, "nvidia-mig-manager") == "enabled"
        node.exec("nvidia-mig-parted", "assert", "-f", config_file, "-c", "all-1g.10gb")

        # gpu_monitoring: DCGM and dcgm-exporter at their pinned versions (4.3.0 is newer), held;
        # every exporter answers on its loopback port; node_exporter reads the textfile
        # directory; the file_sd fragments name this node.
        versions = {
            "datacenter-gpu-manager-4-core": "4.2.3-1",
            "datacenter-gpu-manager-4-cuda12": "4.2.3-1",
            "datacenter-gpu-manager-exporter": "4.2.3-4.1.3-1",
        }
        for package, version in versions.items():
            assert dpkg_version(node, package) == version, package
            assert apt_candidate(node, package) == version, package
        assert set(versions) <= held, held
        # Debian's node_exporter at versions.yml's version (any Debian revision), pinned and held.
        assert dpkg_version(node, "prometheus-node-exporter").startswith("1.5.0-")
        assert "prometheus-node-exporter" in held, held
        pin = node.read_file("/etc/apt/preferences.d/gpu-monitoring-node-exporter.pref")
        assert "Package: prometheus-node-exporter\nPin: version 1.5.0-*\nPin-Priority: 1001" in pin
        node.write_file("/var/lib/prometheus/node-exporter/sre_test.prom", "sre_test_marker 42\n")
        metrics = _fetch(node, f"http://127.0.0.1:{NODE_EXPORTER_PORT}/metrics")
        assert "node_exporter_build_info" in metrics
        assert "sre_test_marker 42" in metrics  # the textfile collector reads our directory
        dcgm = _fetch(node, f"http://127.0.0.1:{DCGM_EXPORTER_PORT}/metrics")
        assert "DCGM_FI_DEV_GPU_TEMP" in dcgm, dcgm
        sre = _fetch(node, f"http://127.0.0.1:{SRE_EXPORTER_PORT}/metrics")
        assert "gpu_count 1.0" in sre, sre[-2000:]
        for unit_name in ("nvidia-dcgm", "dcgm-exporter", "sre-exporter"):
            assert _active(node, unit_name) == "active", node.journal(unit_name)
        for job, port in (
            ("node", NODE_EXPORTER_PORT),
            ("dcgm", DCGM_EXPORTER_PORT),
            ("sre", SRE_EXPORTER_PORT),
        ):
            fragment = json.loads(node.read_file(f"/etc/prometheus/file_sd/{job}-gpu-h100-05.json"))
            assert fragment == [
                {
                    "targets": [f"gpu-h100-05:{port}"],
                    "labels": {
                        "job": "sre-gpu-exporter" if job == "sre" else f"gpu-{job}",
                        "node": "gpu-h100-05",
                        "cluster": "salt-containers",
                    },
                }
            ], fragment


# --- container_runtime + infiniband ------------------------------------------------------------

RUNTIME_SLS = "infiniband,container_runtime"  # top.sls order
TOOLKIT_VERSION = "1.17.7"  # the fixture has 1.17.8 too: the pin must hold it back
TOOLKIT_PACKAGES = [
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
]
RDMA_PACKAGES = ["rdma-core", "ibverbs-providers", "ibverbs-utils", "infiniband-diags", "perftest"]
RUNTIME_MUST_CHANGE = {
    "infiniband-package-install-pkg-installed",
    "infiniband-config-file-file-managed-ipoib",
    "infiniband-config-file-file-managed-peermem",
    "infiniband-service-running-service-enabled-peermem",
    "container_runtime-package-repo-file-managed-key",
    "container_runtime-package-repo-file-managed-sources",
    "container_runtime-package-repo-file-managed-pin",
    "container_runtime-package-repo-cmd-run-apt-update",
    "container_runtime-package-install-pkg-installed-containerd",
    "container_runtime-package-install-pkg-installed",
    "container_runtime-config-file-file-managed-containerd",
    "container_runtime-config-file-file-managed-nvidia",
    "container_runtime-config-file-cmd-run-cdi",
    "container_runtime-service-running-service-running",
}


def test_container_runtime_and_infiniband(record_property: Any) -> None:
    """containerd with the NVIDIA runtime (the toolkit from the fixture's libnvidia-container
    repository, pinned to the older of two versions) and Debian's RDMA stack with IPoIB files."""
    with SaltContainer("gpu-h100-06") as node:
        fingerprint = node.add_fixture_repo()
        node.set_pillar(
            {
                "container_runtime": {
                    "nvidia_container_toolkit_version": TOOLKIT_VERSION,
                    "nvidia_repo_url": f"{FIXTURE_URL}/libnvidia-container/stable",
                    "nvidia_repo_key_url": f"{FIXTURE_URL}/libnvidia-container/gpgkey",
                    "nvidia_repo_key_fingerprint": fingerprint,
                },
                "infiniband": {
                    "ipoib": {
                        "interfaces": [
                            {"name": "ib0", "address": "10.10.0.11/16", "mtu": 2044},
                            {
                                "name": "ib1",
                                "address": "fd00:10::11/64",
                                "mtu": 65520,
                                "mode": "connected",
                            },
                        ],
                        # No IPoIB device in a container: the files are written, networkd (the
                        # host's network, shared) is left alone.
                        "manage_service": False,
                    },
                    # No NVIDIA driver: the nvidia-peermem unit is enabled for boot, not started.
                    "peermem": {"load": False},
                },
            }
        )
        timings = converge(
            node,
            RUNTIME_SLS,
            RUNTIME_MUST_CHANGE,
            # onlyif test -f <downloaded key>: nothing is downloaded before the apply (the
            # download and the fingerprint check announce their work instead).
            dry_run_cannot_tell=frozenset({"container_runtime-package-repo-file-managed-key"}),
        )
        record_property("timings", timings)
        print(f"timings {RUNTIME_SLS}: {timings}")

        # container_runtime: the toolkit at the pinned (older) version, held; containerd runs
        # with the nvidia runtime from the drop-in and the systemd cgroup driver.
        held = apt_held(node)
        for package in TOOLKIT_PACKAGES:
            assert dpkg_version(node, package) == f"{TOOLKIT_VERSION}-1", package
            assert apt_candidate(node, package) == f"{TOOLKIT_VERSION}-1", package
        assert set(TOOLKIT_PACKAGES) <= held, held
        madison = node.exec("apt-cache", "madison", "nvidia-container-toolkit").stdout
        assert "1.17.8-1" in madison, madison
        pin = node.read_file("/etc/apt/preferences.d/nvidia-container-toolkit.pref")
        assert f"Pin: version {TOOLKIT_VERSION}-*" in pin and "Pin-Priority: 1001" in pin
        assert "Package: " + " ".join(TOOLKIT_PACKAGES) in pin
        sources = node.read_file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources")
        assert f"URIs: {FIXTURE_URL}/libnvidia-container/stable/deb/amd64/" in sources
        assert "Signed-By: /etc/apt/keyrings/nvidia-container-toolkit.asc" in sources
        assert _active(node, "containerd") == "active", node.journal("containerd")
        assert _enabled(node, "containerd") == "enabled"
        node.exec("test", "-f", "/etc/containerd/conf.d/50-nvidia.toml")
        dump = tomllib.loads(node.exec("containerd", "config", "dump").stdout)
        cri = dump["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
        assert cri["default_runtime_name"] == "runc"
        nvidia = cri["runtimes"]["nvidia"]
        assert nvidia["runtime_type"] == "io.containerd.runc.v2"
        assert nvidia["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
        assert nvidia["options"]["SystemdCgroup"] is True
        assert cri["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
        spec = node.read_file("/etc/cdi/nvidia.yaml")
        assert spec == node.exec("nvidia-ctk", "cdi", "generate").stdout

        # infiniband: Debian's RDMA stack installed, the IPoIB files written (not brought up),
        # the nvidia-peermem unit enabled and, without a driver, not started.
        for package in RDMA_PACKAGES:
            assert dpkg_version(node, package), package
        node.exec("sh", "-c", "command -v ibstat && command -v ib_write_bw")
        ib0 = node.read_file("/etc/systemd/network/50-ipoib-ib0.network")
        for line in ("Name=ib0", "Type=infiniband", "Address=10.10.0.11/16", "MTUBytes=2044"):
            assert line in ib0.splitlines(), ib0
        assert "Mode=datagram" in ib0
        ib1 = node.read_file("/etc/systemd/network/50-ipoib-ib1.network")
        assert "Address=fd00:10::11/64" in ib1 and "Mode=connected" in ib1, ib1
        assert _enabled(node, "nvidia-peermem-load") == "enabled"
        assert _active(node, "nvidia-peermem-load") != "active"
        after = _systemctl_show(node, "nvidia-peermem-load.service", "After")["After"]
        assert "rdma-load-modules@infiniband.service" in after, after
