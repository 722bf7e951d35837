"""The nvidia_fabricmanager, cuda_toolkit and container_runtime formulas render per OS family.

Like tests/salt/test_formula.py: ``salt-call --local`` with a minion configuration in a
temporary directory, OS families from a ``grains:`` block, pillar from a temporary pillar root;
nothing on this machine is changed. NVSwitch detection reads a fake sysfs tree (pillar
``nvidia_fabricmanager:lookup:sysfs_root``). Rendered templates are checked by what reads them:
containerd's TOML by tomllib, the CUDA profile by a real shell. Salt missing fails.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.salt import (
    SALT_DIR,
    SaltError,
    SaltMissingError,
    get_template,
    local_minion_config,
    salt_bin,
    show_sls,
    state_args,
)

pytestmark = pytest.mark.usefixtures("salt_installed")

FORMULAS = ("nvidia_fabricmanager", "cuda_toolkit", "container_runtime")
VERSIONS = yaml.safe_load((SALT_DIR / "sre_versions.yaml").read_text(encoding="utf-8"))
GRAINS = {
    "Debian": {
        "os_family": "Debian",
        "os": "Debian",
        "osfinger": "Debian-12",
        "osarch": "amd64",
        "cpuarch": "x86_64",
        "osmajorrelease": 12,
        "osrelease": "12.12",
        "oscodename": "bookworm",
    },
    "Ubuntu": {
        "os_family": "Debian",
        "os": "Ubuntu",
        "osfinger": "Ubuntu-22.04",
        "osarch": "amd64",
        "cpuarch": "x86_64",
        "osmajorrelease": 22,
        "osrelease": "22.04",
        "oscodename": "jammy",
    },
    "RedHat": {
        "os_family": "RedHat",
        "os": "Rocky",
        "osfinger": "Rocky Linux-9",
        "osarch": "x86_64",
        "cpuarch": "x86_64",
        "osmajorrelease": 9,
        "osrelease": "9.4",
    },
}
CRI = "io.containerd.grpc.v1.cri"


def fake_sysfs(root: Path, devices: dict[str, tuple[str, str, str]], loaded: str = "") -> Path:
    """A sysfs tree with PCI devices {address: (vendor, device, class)} and a loaded driver."""
    for address, (vendor, device, pci_class) in devices.items():
        base = root / "bus" / "pci" / "devices" / address
        base.mkdir(parents=True)
        for name, value in (("vendor", vendor), ("device", device), ("class", pci_class)):
            (base / name).write_text(value + "\n", encoding="ascii")
    if loaded:
        (root / "module" / "nvidia").mkdir(parents=True)
        (root / "module" / "nvidia" / "version").write_text(loaded + "\n", encoding="ascii")
    return root


H100_GPU = ("0x10de", "0x2330", "0x030200")
NVSWITCH = ("0x10de", "0x22a3", "0x068000")


def render(
    workdir: Path, family: str, pillar: dict[str, Any], sls: str = ",".join(FORMULAS)
) -> dict[str, Any]:
    return show_sls(workdir, sls, pillar, grains=GRAINS[family])


def fm_pillar(sysfs: Path, **extra: Any) -> dict[str, Any]:
    return {"lookup": {"sysfs_root": str(sysfs), "proc_root": str(sysfs / "noproc")}, **extra}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every render the tests look at, run side by side (independent salt-call processes)."""
    tmp = tmp_path_factory.mktemp("h1")
    switch_box = fake_sysfs(
        tmp / "sys-nvswitch", {"0000:05:00.0": NVSWITCH, "0000:18:00.0": H100_GPU}
    )
    gpu_only = fake_sysfs(tmp / "sys-gpu", {"0000:18:00.0": H100_GPU}, loaded="580.95.05")
    loaded_580 = fake_sysfs(tmp / "sys-580", {"0000:18:00.0": H100_GPU}, loaded="580.95.05")
    jobs: dict[str, tuple[str, dict[str, Any], str]] = {
        # Defaults everywhere; an NVSwitch on the bus.
        "defaults": ("Debian", {"nvidia_fabricmanager": fm_pillar(switch_box)}, ",".join(FORMULAS)),
        # The alternative scenarios' settings.
        "overrides": (
            "Debian",
            {
                "nvidia_fabricmanager": fm_pillar(
                    loaded_580,
                    install="always",
                    branch="580",
                    hold=False,
                    service_enabled=False,
                    service_state="stopped",
                    config={"FABRIC_MODE": 1, "LOG_LEVEL": 3},
                ),
                "cuda_toolkit": {"versions": ["12.6", "12.8"], "default_version": "12.8"},
                "container_runtime": {
                    "nvidia_default_runtime": True,
                    "nvidia_hold": False,
                    "cdi": False,
                    "nvidia_container_toolkit_version": "1.17.7",
                },
            },
            ",".join(FORMULAS),
        ),
        # No NVSwitch: Fabric Manager renders nothing. Debian's toolkit as the source.
        "no_nvswitch": (
            "Debian",
            {
                "nvidia_fabricmanager": fm_pillar(gpu_only),
                "cuda_toolkit": {"source": "distro", "install_packages": False},
            },
            "nvidia_fabricmanager,cuda_toolkit",
        ),
        # Ubuntu: NVIDIA's repository directory, no Debian non-free file; the driver's pillar.
        "ubuntu": (
            "Ubuntu",
            {
                "nvidia_driver": {"branch": "570", "version": "570.195.03"},
                "nvidia_fabricmanager": fm_pillar(switch_box),
                "cuda_toolkit": {"source": "distro"},
            },
            "nvidia_fabricmanager,cuda_toolkit",
        ),
        "clean": (
            "Debian",
            {"nvidia_fabricmanager": fm_pillar(switch_box)},
            ",".join(f"{name}.clean" for name in FORMULAS),
        ),
    }

    def run(name: str, family: str, pillar: dict[str, Any], sls: str) -> Any:
        return render(tmp / name, family, pillar, sls)

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(run, name, *job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


# --- nvidia_fabricmanager ------------------------------------------------------------------------


def test_fabricmanager_follows_the_shared_driver_branch(rendered: dict[str, Any]) -> None:
    high = rendered["defaults"]
    branch = VERSIONS["nvidia_driver"]["branch"]
    version = VERSIONS["nvidia_driver"]["version"]
    pkg = state_args(high["nvidia_fabricmanager-package-install-pkg-installed"], "pkg")
    expected = (
        "nvidia-fabricmanager"
        if int(branch) >= int(VERSIONS["nvidia_fabricmanager"]["rename_branch"])
        else f"nvidia-fabricmanager-{branch}"
    )
    assert pkg["name"] == expected
    assert pkg["hold"] is True and pkg["update_holds"] is True
    if version:
        assert pkg["version"] == f"{version}-*"
    pin = state_args(high["nvidia_fabricmanager-package-repo-file-managed-pin"], "file")["context"]
    assert pin["package"] == expected
    assert pin["pin_version"] == (f"{version}-*" if version else f"{branch}.*")
    service = state_args(high["nvidia_fabricmanager-service-running-service-running"], "service")
    assert service["name"] == "nvidia-fabricmanager.service" and service["enable"] is True
    assert service["watch"] == [
        {"sls": "nvidia_fabricmanager.package.install"},
        {"sls": "nvidia_fabricmanager.config.file"},
    ]
    # No configuration keys by default: the package's file stays as it is.
    assert "nvidia_fabricmanager-config-file-file-keyvalue" not in high


def test_fabricmanager_key_is_checked_before_it_is_trusted(rendered: dict[str, Any]) -> None:
    high = rendered["defaults"]
    check = state_args(high["nvidia_fabricmanager-package-repo-cmd-run-key-fingerprint"], "cmd")
    assert "fpr:::::::::EB693B3035CD5710E231E123A4B469963BF863CC:" in check["unless"]
    key = state_args(high["nvidia_fabricmanager-package-repo-file-managed-key"], "file")
    assert key["name"] == "/etc/apt/keyrings/nvidia-cuda.asc"
    assert key["require"] == [{"cmd": "nvidia_fabricmanager-package-repo-cmd-run-key-fingerprint"}]
    sources = state_args(high["nvidia_fabricmanager-package-repo-file-managed-cuda"], "file")
    assert sources["context"]["base"] == (
        "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64"
    )


def test_fabricmanager_580_renamed_follows_the_loaded_driver(rendered: dict[str, Any]) -> None:
    high = rendered["overrides"]
    pkg = state_args(high["nvidia_fabricmanager-package-install-pkg-installed"], "pkg")
    assert pkg["name"] == "nvidia-fabricmanager"
    assert pkg["version"] == "580.95.05-*"  # the loaded driver's (fake sysfs)
    assert pkg["hold"] is False
    keyvalue = state_args(high["nvidia_fabricmanager-config-file-file-keyvalue"], "file")
    assert keyvalue["name"] == "/usr/share/nvidia/nvswitch/fabricmanager.cfg"
    assert keyvalue["key_values"] == {"FABRIC_MODE": "1", "LOG_LEVEL": "3"}
    assert keyvalue["separator"] == "="
    dead = state_args(high["nvidia_fabricmanager-service-running-service-dead"], "service")
    assert dead["enable"] is False


def test_fabricmanager_only_where_there_is_an_nvswitch(rendered: dict[str, Any]) -> None:
    states = [sid for sid in rendered["no_nvswitch"] if sid.startswith("nvidia_fabricmanager-")]
    assert states == []


def test_fabricmanager_takes_the_driver_pillar_on_ubuntu(rendered: dict[str, Any]) -> None:
    high = rendered["ubuntu"]
    pkg = state_args(high["nvidia_fabricmanager-package-install-pkg-installed"], "pkg")
    assert pkg == {**pkg, "name": "nvidia-fabricmanager-570", "version": "570.195.03-*"}
    sources = state_args(high["nvidia_fabricmanager-package-repo-file-managed-cuda"], "file")
    assert sources["context"]["base"].endswith("/ubuntu2204/x86_64")


# --- cuda_toolkit --------------------------------------------------------------------------------


def test_cuda_toolkit_defaults_from_versions_file(rendered: dict[str, Any]) -> None:
    high = rendered["defaults"]
    versions = VERSIONS["cuda_toolkit"]["versions"]
    pkgs = state_args(high["cuda_toolkit-package-install-pkg-installed"], "pkg")["pkgs"]
    assert pkgs == ["cuda-toolkit-" + v.replace(".", "-") for v in versions]
    # update-alternatives --set (Salt 3008 has no alternatives state module any more).
    alternatives = state_args(high["cuda_toolkit-config-file-cmd-run-alternatives"], "cmd")
    major = versions[0].split(".")[0]
    assert [next(iter(n)) for n in alternatives["names"]] == [
        f"update-alternatives --set cuda /usr/local/cuda-{versions[0]}",
        f"update-alternatives --set cuda-{major} /usr/local/cuda-{versions[0]}",
    ]
    # The same sources file and keyring as nvidia_fabricmanager, with the same content.
    ours = state_args(high["cuda_toolkit-package-repo-file-managed-cuda"], "file")
    theirs = state_args(high["nvidia_fabricmanager-package-repo-file-managed-cuda"], "file")
    assert ours["name"] == theirs["name"] and ours["context"] == theirs["context"]
    source_text = (SALT_DIR / "cuda_toolkit/files/default/cuda.sources.jinja").read_text()
    assert (
        source_text
        == (SALT_DIR / "nvidia_fabricmanager/files/default/cuda.sources.jinja").read_text()
    )


def test_cuda_toolkit_several_versions_and_a_default(rendered: dict[str, Any]) -> None:
    high = rendered["overrides"]
    pkgs = state_args(high["cuda_toolkit-package-install-pkg-installed"], "pkg")["pkgs"]
    assert pkgs == ["cuda-toolkit-12-6", "cuda-toolkit-12-8"]
    profile = state_args(high["cuda_toolkit-config-file-file-managed"], "file")
    assert profile["name"] == "/etc/profile.d/cuda.sh"
    assert profile["context"]["default"] == "12.8"


def test_cuda_toolkit_distro_source(rendered: dict[str, Any]) -> None:
    high = rendered["no_nvswitch"]
    assert "cuda_toolkit-package-install-pkg-installed" not in high  # install_packages: false
    debian = state_args(high["cuda_toolkit-package-repo-file-managed-debian"], "file")
    assert debian["context"]["components"] == ["contrib", "non-free", "non-free-firmware"]
    assert debian["context"]["codename"] == "bookworm"
    assert "cuda_toolkit-package-repo-file-managed-cuda" not in high
    assert "cuda_toolkit-config-file-cmd-run-alternatives" not in high
    assert (
        state_args(high["cuda_toolkit-config-file-file-absent"], "file")["name"]
        == "/etc/profile.d/cuda.sh"
    )
    # Ubuntu: multiverse is already a source; only the package.
    ubuntu = rendered["ubuntu"]
    assert "cuda_toolkit-package-repo-file-managed-debian" not in ubuntu
    assert state_args(ubuntu["cuda_toolkit-package-install-pkg-installed"], "pkg")["pkgs"] == [
        "nvidia-cuda-toolkit"
    ]


# --- container_runtime ---------------------------------------------------------------------------


def test_container_runtime_defaults(rendered: dict[str, Any]) -> None:
    high = rendered["defaults"]
    version = VERSIONS["container_runtime"]["nvidia_container_toolkit_version"]
    pkg = state_args(high["container_runtime-package-install-pkg-installed"], "pkg")
    assert pkg["pkgs"] == [
        {name: f"{version}-*"}
        for name in (
            "nvidia-container-toolkit",
            "nvidia-container-toolkit-base",
            "libnvidia-container-tools",
            "libnvidia-container1",
        )
    ]
    assert pkg["hold"] is True
    check = state_args(high["container_runtime-package-repo-cmd-run-key-fingerprint"], "cmd")
    assert "fpr:::::::::C95B321B61E88C1809C4F759DDCAE044F796ECB0:" in check["unless"]
    sources = state_args(high["container_runtime-package-repo-file-managed-sources"], "file")
    assert (
        sources["context"]["base"]
        == "https://nvidia.github.io/libnvidia-container/stable/deb/amd64"
    )
    main = state_args(high["container_runtime-config-file-file-managed-containerd"], "file")
    assert main["check_cmd"] == (
        """sh -c 'containerd --config "$1" config dump >/dev/null' containerd-config-check"""
    )
    cdi = state_args(high["container_runtime-config-file-cmd-run-cdi"], "cmd")
    assert cdi["unless"] == "/usr/bin/nvidia-ctk cdi generate | cmp -s - /etc/cdi/nvidia.yaml"
    service = state_args(high["container_runtime-service-running-service-running"], "service")
    assert service["name"] == "containerd.service"
    assert {"sls": "container_runtime.config.file"} in service["watch"]


def test_container_runtime_overrides(rendered: dict[str, Any]) -> None:
    high = rendered["overrides"]
    pkg = state_args(high["container_runtime-package-install-pkg-installed"], "pkg")
    assert pkg["hold"] is False and pkg["pkgs"][0] == {"nvidia-container-toolkit": "1.17.7-*"}
    assert state_args(high["container_runtime-config-file-file-absent-cdi"], "file")["name"] == (
        "/etc/cdi/nvidia.yaml"
    )
    dropin = state_args(high["container_runtime-config-file-file-managed-nvidia"], "file")
    assert dropin["context"]["default_runtime"] == "nvidia"


@pytest.fixture(scope="module")
def containerd_files(
    rendered: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The main configuration and the drop-in, rendered as the highstate would, parsed as TOML."""
    tmp = tmp_path_factory.mktemp("toml")
    high = rendered["overrides"]
    jobs = {
        "main": (
            "config.toml.jinja",
            high["container_runtime-config-file-file-managed-containerd"],
        ),
        "nvidia": (
            "50-nvidia.toml.jinja",
            high["container_runtime-config-file-file-managed-nvidia"],
        ),
    }

    def one(name: str, template: str, state: dict[str, Any]) -> dict[str, Any]:
        conf = local_minion_config(tmp / name, grains=GRAINS["Debian"])
        source = f"salt://container_runtime/files/default/{template}"
        context = state_args(state, "file")["context"]
        return tomllib.loads(get_template(conf, source, tmp / f"{name}.toml", **context))

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(one, name, *job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def test_containerd_configuration_is_valid_toml_with_systemd_cgroup(
    containerd_files: dict[str, dict[str, Any]],
) -> None:
    main, dropin = containerd_files["main"], containerd_files["nvidia"]
    assert main["version"] == 2 and main["imports"] == ["/etc/containerd/conf.d/*.toml"]
    runc = main["plugins"][CRI]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is True
    # containerd replaces the whole CRI section from the drop-in: it must carry runc too.
    runtimes = dropin["plugins"][CRI]["containerd"]["runtimes"]
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    assert runtimes["nvidia"]["options"] == {
        "BinaryName": "/usr/bin/nvidia-container-runtime",
        "SystemdCgroup": True,
    }
    assert dropin["plugins"][CRI]["containerd"]["default_runtime_name"] == "nvidia"


# --- rendered profile, clean, errors, lint --------------------------------------------------------


def test_cuda_profile_in_a_real_shell(rendered: dict[str, Any], tmp_path: Path) -> None:
    state = state_args(rendered["overrides"]["cuda_toolkit-config-file-file-managed"], "file")
    conf = local_minion_config(tmp_path, grains=GRAINS["Debian"])
    dest = tmp_path / "cuda.sh"
    get_template(conf, "salt://cuda_toolkit/files/default/cuda.sh.jinja", dest, **state["context"])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        ["sh", "-c", f'. "{dest}"; . "{dest}"; echo "$PATH|$LD_LIBRARY_PATH|$CUDA_HOME"'],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    ).stdout.strip()
    assert out == "/usr/local/cuda/bin:/usr/bin:/bin|/usr/local/cuda/lib64|/usr/local/cuda"
    assert "CUDA 12.8 is the default toolkit" in dest.read_text()


def test_clean_renders(rendered: dict[str, Any]) -> None:
    high = rendered["clean"]
    assert state_args(high["nvidia_fabricmanager-package-clean-pkg-removed"], "pkg")["require"] == [
        {"sls": "nvidia_fabricmanager.config.clean"}
    ]
    assert "container_runtime-config-clean-cmd-run" in high
    assert (
        state_args(high["cuda_toolkit-config-clean-file-absent"], "file")["name"]
        == "/etc/profile.d/cuda.sh"
    )


FM_VERSION = {"install": "always", "branch": "535", "version": "550.1.2"}
BAD_INPUT = {
    "cuda-redhat": ("RedHat", {}, "cuda_toolkit", "cuda_toolkit: supports the Debian family"),
    "runtime-redhat": (
        "RedHat",
        {},
        "container_runtime",
        "container_runtime: supports the Debian family",
    ),
    "fm-redhat": (
        "RedHat",
        {"nvidia_fabricmanager": {"install": "always"}},
        "nvidia_fabricmanager",
        "nvidia_fabricmanager: supports the Debian family",
    ),
    "cuda-version": (
        "Debian",
        {"cuda_toolkit": {"versions": ["12"]}},
        "cuda_toolkit",
        "pillar cuda_toolkit:versions has",
    ),
    "cuda-default": (
        "Debian",
        {"cuda_toolkit": {"versions": ["12.8"], "default_version": "12.6"}},
        "cuda_toolkit",
        "pillar cuda_toolkit:default_version=12.6 is not in",
    ),
    "fm-version": (
        "Debian",
        {"nvidia_fabricmanager": FM_VERSION},
        "nvidia_fabricmanager",
        "pillar nvidia_fabricmanager:version=550.1.2 is not a version of branch 535",
    ),
    "ctk-version": (
        "Debian",
        {"container_runtime": {"nvidia_container_toolkit_version": "latest"}},
        "container_runtime",
        "pillar container_runtime:nvidia_container_toolkit_version",
    ),
}


@pytest.mark.parametrize(
    ("family", "pillar", "sls", "message"), list(BAD_INPUT.values()), ids=list(BAD_INPUT)
)
def test_bad_input_is_one_error_naming_the_key(
    tmp_path: Path, family: str, pillar: dict[str, Any], sls: str, message: str
) -> None:
    with pytest.raises(SaltError) as error:
        render(tmp_path, family, pillar, sls)
    assert message in str(error.value)


def test_redhat_without_fabricmanager_renders_nothing(tmp_path: Path) -> None:
    high = render(
        tmp_path, "RedHat", {"nvidia_fabricmanager": {"install": "never"}}, "nvidia_fabricmanager"
    )
    assert high == {}


def test_salt_lint_is_clean() -> None:
    try:
        lint = salt_bin("salt-lint")
    except SaltMissingError as exc:
        pytest.fail(f"{exc} (salt-lint ships in the salt extra)", pytrace=False)
    files = sorted(str(p) for name in FORMULAS for p in (SALT_DIR / name).rglob("*.sls"))
    assert len(files) >= 3 * 8
    proc = subprocess.run([lint, *files], capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
