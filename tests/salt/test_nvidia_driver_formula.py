"""The nvidia_driver and gpu_base formulas render per OS family like roles/nvidia_driver decides.

Every render is a real ``salt-call --local state.show_sls`` with a temporary minion config whose
``grains:`` block stands in for the OS (Debian 12, Ubuntu 22.04 / 24.04, RHEL 9) and a temporary
pillar tree; nothing on this machine changes. The templates are rendered with ``cp.get_template``
and the context the states pass them; the GPU check script runs against a fake nvidia-smi.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.salt import (
    REPO,
    SALT_DIR,
    SaltError,
    get_template,
    pillar_minion_config,
    show_sls,
    state_args,
)

VERSIONS = yaml.safe_load((REPO / "sre_tools" / "data" / "versions.yml").read_text())
BRANCH = str(VERSIONS["nvidia_driver"]["branch"])
KERNEL = "6.1.0-28-amd64"
COMMON = {"kernelrelease": KERNEL, "cpuarch": "x86_64"}
GRAINS: dict[str, dict[str, Any]] = {
    "debian12": {
        "os_family": "Debian",
        "os": "Debian",
        "osfinger": "Debian-12",
        "osarch": "amd64",
        "oscodename": "bookworm",
        "osrelease": "12",
        "osmajorrelease": 12,
    },
    "ubuntu2204": {
        "os_family": "Debian",
        "os": "Ubuntu",
        "osfinger": "Ubuntu-22.04",
        "osarch": "amd64",
        "oscodename": "jammy",
        "osrelease": "22.04",
        "osmajorrelease": 22,
    },
    "ubuntu2404": {
        "os_family": "Debian",
        "os": "Ubuntu",
        "osfinger": "Ubuntu-24.04",
        "osarch": "amd64",
        "oscodename": "noble",
        "osrelease": "24.04",
        "osmajorrelease": 24,
    },
    "rhel9": {
        "os_family": "RedHat",
        "os": "RedHat",
        "osfinger": "Red Hat Enterprise Linux-9",
        "osarch": "x86_64",
        "oscodename": "Plow",
        "osrelease": "9.4",
        "osmajorrelease": 9,
    },
}
FINGERPRINT = "0123456789ABCDEF0123456789ABCDEF01234567"
# <formula>-<dir>-<file>-<module>-<function>[-<qualifier>]
STATE_ID = re.compile(
    r"^(?P<formula>nvidia_driver|gpu_base)-(?P<dir>[a-z]+)-(?P<file>[a-z]+)-(?P<mod>[a-z]+)-[a-z_-]+$"
)


pytestmark = pytest.mark.usefixtures("salt_call_installed")


def _conf(tmp: Path, os_name: str, pillar: dict[str, Any]) -> Path:
    return pillar_minion_config(tmp, pillar, grains={**GRAINS[os_name], **COMMON})


def _render(
    tmp: Path, os_name: str, pillar: dict[str, Any], sls: str = "nvidia_driver"
) -> dict[str, Any]:
    return show_sls(tmp, sls, pillar, grains={**GRAINS[os_name], **COMMON})


def _pkgs(args: dict[str, Any]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in args["pkgs"]:
        if isinstance(item, dict):
            out.update(item)
        else:
            out[item] = None
    return out


# Each case: OS, pillar; the renders run side by side once per module.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "debian12-defaults": ("debian12", {}),
    "debian12-open-headless": (
        "debian12",
        {
            "nvidia_driver": {
                "open": True,
                "headless": True,
                "version": "535.261.03",
                "hold": False,
                "module_options": {
                    "NVreg_EnableStreamMemOPs": 1,
                    "NVreg_DynamicPowerManagement": True,
                },
                "manage_service": False,
                "verify": False,
                "load_module": False,
            }
        },
    ),
    "ubuntu2204-distro": ("ubuntu2204", {"nvidia_driver": {"branch": "550", "pin": False}}),
    "ubuntu2204-precompiled": (
        "ubuntu2204",
        {"nvidia_driver": {"dkms": False, "headless": True, "branch": "570"}},
    ),
    "ubuntu2404-cuda-open": (
        "ubuntu2404",
        {
            "nvidia_driver": {
                "source": "cuda_repo",
                "open": True,
                "branch": "570",
                "version": "570.133.20",
                "verify_method": "nvml",
                "verify_gpu_count": 8,
            }
        },
    ),
    "rhel9-cuda": (
        "rhel9",
        {
            "nvidia_driver": {
                "source": "cuda_repo",
                "version": f"{BRANCH}.261.03",
                "cuda_repo_key_fingerprint": FINGERPRINT,
            }
        },
    ),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("nvidia_driver")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            case: pool.submit(_render, tmp / case, os_name, pillar)
            for case, (os_name, pillar) in CASES.items()
        }
        raw = {case: future.result() for case, future in futures.items()}
    return {
        case: {sid: state_args(state) for sid, state in high.items()} for case, high in raw.items()
    }


def test_state_ids_follow_the_convention(rendered: dict[str, dict[str, dict[str, Any]]]) -> None:
    raw_ids = {sid for high in rendered.values() for sid in high}
    for sid in raw_ids:
        m = STATE_ID.match(sid)
        assert m, sid
    for high in rendered.values():
        for sid, args in high.items():
            m = STATE_ID.match(sid)
            assert m and args["fun"].split(".")[0] == m["mod"], (sid, args["fun"])


def test_debian12_defaults_follow_the_shared_versions_file(
    rendered: dict[str, dict[str, dict[str, Any]]],
) -> None:
    high = rendered["debian12-defaults"]
    assert set(high) == {
        "nvidia_driver-package-repo-file-managed-debian",
        "nvidia_driver-package-repo-file-managed-pin",
        "nvidia_driver-package-repo-cmd-run-apt-update",
        "nvidia_driver-package-install-pkg-installed",
        "nvidia_driver-package-install-pkg-installed-unversioned",
        "nvidia_driver-package-install-cmd-run-dkms",
        "nvidia_driver-config-file-file-absent-module-options",
        "nvidia_driver-config-file-file-managed-persistenced",
        "nvidia_driver-config-file-cmd-run-daemon-reload",
        "nvidia_driver-config-file-file-managed-verify",
        "nvidia_driver-config-file-file-managed-nvml-probe",
        "nvidia_driver-service-running-kmod-present",
        "nvidia_driver-service-running-service-running",
        "nvidia_driver-service-verify-cmd-run",
    }
    install = high["nvidia_driver-package-install-pkg-installed"]
    # No version in versions.yml: the branch's newest, pinned to the branch.
    assert _pkgs(install) == {"nvidia-kernel-dkms": None, "nvidia-driver": None}
    assert install["hold"] is True and install["install_recommends"] is False
    assert install["require"] == [{"sls": "nvidia_driver.package.repo"}]
    assert _pkgs(high["nvidia_driver-package-install-pkg-installed-unversioned"]) == {
        "nvidia-persistenced": None
    }
    pin = high["nvidia_driver-package-repo-file-managed-pin"]
    derived = pin["context"]["nvidia_driver"]["derived"]
    assert derived["pin_version"] == f"{BRANCH}.*"
    assert (
        derived["pin_packages"] == "src:nvidia-graphics-drivers src:nvidia-open-gpu-kernel-modules"
    )
    assert pin["context"]["nvidia_driver"]["branch"] == BRANCH
    assert high["nvidia_driver-package-repo-cmd-run-apt-update"]["onchanges"] == [
        {"file": "nvidia_driver-package-repo-file-managed-debian"},
        {"file": "nvidia_driver-package-repo-file-managed-pin"},
    ]
    assert high["nvidia_driver-service-running-kmod-present"]["name"] == "nvidia-current"
    assert high["nvidia_driver-config-file-file-absent-module-options"]["name"] == (
        "/etc/modprobe.d/nvidia-driver-options.conf"
    )
    service = high["nvidia_driver-service-running-service-running"]
    assert service["name"] == "nvidia-persistenced.service" and service["enable"] is True
    assert service["watch"] == [{"sls": "nvidia_driver.config.file"}]
    verify = high["nvidia_driver-service-verify-cmd-run"]
    assert verify["name"].split()[2:] == [
        "--method",
        "nvidia_smi",
        "--expect",
        f"{BRANCH}.",
        "--count",
        "0",
        "--persistence",
    ]
    assert verify["unless"] == verify["name"] + " --silent"
    # The NVML probe goes next to the check, which runs it from there.
    probe = high["nvidia_driver-config-file-file-managed-nvml-probe"]
    assert probe["name"] == "/usr/local/libexec/sre-tools/nvml_probe.py"
    assert probe["source"] == "salt://nvidia_driver/files/default/nvml_probe.py"


def test_debian12_open_headless_version_no_hold(
    rendered: dict[str, dict[str, dict[str, Any]]],
) -> None:
    high = rendered["debian12-open-headless"]
    install = high["nvidia_driver-package-install-pkg-installed"]
    assert _pkgs(install) == {
        name: "535.261.03-*"
        for name in [
            "nvidia-open-kernel-dkms",
            "nvidia-smi",
            "libcuda1",
            "libnvidia-cfg1",
            "firmware-nvidia-gsp",
        ]
    }
    assert install["hold"] is False  # released, not merely left alone
    # persistenced unmanaged: no package, drop-in, service; no verify, no modprobe.
    for absent in (
        "nvidia_driver-package-install-pkg-installed-unversioned",
        "nvidia_driver-config-file-file-managed-persistenced",
        "nvidia_driver-service-running-service-running",
        "nvidia_driver-service-verify-cmd-run",
        "nvidia_driver-service-running-kmod-present",
    ):
        assert absent not in high
    options = high["nvidia_driver-config-file-file-managed-module-options"]
    derived = options["context"]["nvidia_driver"]["derived"]
    assert derived["kernel_module"] == "nvidia-current-open"
    assert derived["pin_version"] == "535.261.03-*"


def test_ubuntu_distro_branches(rendered: dict[str, dict[str, dict[str, Any]]]) -> None:
    high = rendered["ubuntu2204-distro"]
    assert _pkgs(high["nvidia_driver-package-install-pkg-installed"]) == {
        "nvidia-dkms-550-server": None,
        "nvidia-driver-550-server": None,
    }
    # No Debian components on Ubuntu; pin off removes the pin; nvidia-persistenced comes with
    # the driver's utils package there.
    assert "nvidia_driver-package-repo-file-managed-debian" not in high
    assert high["nvidia_driver-package-repo-file-absent-pin"]["name"] == (
        "/etc/apt/preferences.d/nvidia-driver.pref"
    )
    assert "nvidia_driver-package-install-pkg-installed-unversioned" not in high
    assert high["nvidia_driver-service-running-kmod-present"]["name"] == "nvidia"

    pre = rendered["ubuntu2204-precompiled"]
    assert _pkgs(pre["nvidia_driver-package-install-pkg-installed"]) == {
        f"linux-modules-nvidia-570-server-{KERNEL}": None,
        "nvidia-headless-570-server": None,
        "nvidia-utils-570-server": None,
    }
    assert "nvidia_driver-package-install-cmd-run-dkms" not in pre
    pin = pre["nvidia_driver-package-repo-file-managed-pin"]["context"]["nvidia_driver"]
    assert pin["derived"]["pin_packages"] == "src:nvidia-graphics-drivers-570-server"


def test_ubuntu2404_cuda_repo_with_a_checked_key(
    rendered: dict[str, dict[str, dict[str, Any]]],
) -> None:
    high = rendered["ubuntu2404-cuda-open"]
    base = "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64"
    download = high["nvidia_driver-package-repo-file-managed-key-download"]
    assert download["source"] == f"{base}/3bf863cc.pub"
    check = high["nvidia_driver-package-repo-cmd-run-key-fingerprint"]
    assert "fpr:::::::::EB693B3035CD5710E231E123A4B469963BF863CC:" in check["unless"]
    assert "exit 1" in check["name"]
    key = high["nvidia_driver-package-repo-file-managed-key"]
    assert key["name"] == "/etc/apt/keyrings/nvidia-cuda.asc"
    assert key["source"] == download["name"]
    assert key["require"] == [{"cmd": "nvidia_driver-package-repo-cmd-run-key-fingerprint"}]
    sources = high["nvidia_driver-package-repo-file-managed-cuda"]
    assert sources["context"]["nvidia_driver"]["derived"]["cuda_repo_base"] == base
    assert _pkgs(high["nvidia_driver-package-install-pkg-installed"]) == {
        "nvidia-open-570": "570.133.20-*"
    }
    verify = high["nvidia_driver-service-verify-cmd-run"]["name"].split()
    assert verify[2:8] == ["--method", "nvml", "--expect", "570.133.20", "--count", "8"]


def test_rhel9_uses_the_cuda_repository_and_versionlock(
    rendered: dict[str, dict[str, dict[str, Any]]],
) -> None:
    high = rendered["rhel9-cuda"]
    base = "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64"
    repo = high["nvidia_driver-package-repo-pkgrepo-managed"]
    assert repo["baseurl"] == base and repo["gpgcheck"] == 1
    assert high["nvidia_driver-package-repo-file-managed-key-download"]["source"] == (
        f"{base}/D42D0685.pub"
    )
    assert high["nvidia_driver-package-repo-cmd-run-rpm-key"]["unless"] == (
        f"rpm -q gpg-pubkey-{FINGERPRINT[-8:].lower()}"
    )
    stream = high["nvidia_driver-package-repo-cmd-run-dnf-module"]
    assert stream["name"] == f"dnf -y module enable nvidia-driver:{BRANCH}-dkms"
    assert "nvidia_driver-package-repo-file-managed-pin" not in high  # dnf: versionlock only
    assert high["nvidia_driver-package-install-pkg-installed-versionlock"]["name"] == (
        "python3-dnf-plugin-versionlock"
    )
    install = high["nvidia_driver-package-install-pkg-installed"]
    pkgs = _pkgs(install)
    assert pkgs["kmod-nvidia-latest-dkms"] == f"{BRANCH}.261.03*"
    assert set(pkgs) >= {"nvidia-driver", "nvidia-driver-NVML", "nvidia-persistenced"}
    assert install["hold"] is True
    assert high["nvidia_driver-config-file-file-absent-module-options"]["name"] == (
        "/etc/modprobe.d/nvidia.conf"
    )


@pytest.mark.parametrize(
    ("os_name", "pillar", "message"),
    [
        ("debian12", {"source": "nvidia"}, "nvidia_driver:source must be distro or cuda_repo"),
        ("rhel9", {}, "nvidia_driver:source=distro is not available on RedHat 9.4"),
        (
            "debian12",
            {"branch": "570"},
            "ships driver branches 535, not pillar nvidia_driver:branch=570",
        ),
        (
            "debian12",
            {"version": "550.54.15"},
            "nvidia_driver:version=550.54.15 is not an upstream version of branch 535",
        ),
        ("debian12", {"open": True}, "open kernel modules in version(s) 535.261.03 only"),
        ("debian12", {"dkms": False}, "set pillar nvidia_driver:dkms: true"),
        (
            "ubuntu2404",
            {"source": "cuda_repo", "headless": True},
            "nvidia_driver:headless selects distribution packages",
        ),
        ("rhel9", {"source": "cuda_repo"}, "set pillar nvidia_driver:cuda_repo_key_fingerprint"),
        ("debian12", {"hold": "yes"}, "nvidia_driver:hold must be true or false"),
        (
            "debian12",
            {"persistenced_state": "running"},
            "nvidia_driver:persistenced_state must be started or stopped",
        ),
        (
            "debian12",
            {"module_options": {"NVreg_X": "1; rm -rf /"}},
            "nvidia_driver:module_options:NVreg_X is not",
        ),
    ],
    ids=[
        "bad-source",
        "rhel-distro",
        "branch-not-shipped",
        "version-outside-branch",
        "open-version",
        "no-dkms-on-debian",
        "headless-cuda",
        "no-fingerprint",
        "bool",
        "persistenced-state",
        "module-option-injection",
    ],
)
def test_bad_pillar_is_one_line_naming_the_key(
    tmp_path: Path, os_name: str, pillar: dict[str, Any], message: str
) -> None:
    with pytest.raises(SaltError) as err:
        _render(tmp_path, os_name, {"nvidia_driver": pillar})
    text = str(err.value)
    assert message in text, text
    line = next(ln for ln in text.splitlines() if message in ln)
    assert "nvidia_driver: " in line


# --- templates and the clean states ------------------------------------------------------------


@pytest.fixture(scope="module")
def templates(
    rendered: dict[str, dict[str, dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("templates")
    context = rendered["debian12-open-headless"][
        "nvidia_driver-config-file-file-managed-module-options"
    ]["context"]["nvidia_driver"]
    jobs = {
        "pin": "apt-preferences.pref.jinja",
        "sources": "debian-nonfree.sources.jinja",
        "options": "nvidia-module-options.conf.jinja",
    }

    def render(name: str, template: str) -> str:
        conf = _conf(tmp / name, "debian12", {})
        source = f"salt://nvidia_driver/files/default/{template}"
        return get_template(conf, source, tmp / f"{name}.out", nvidia_driver=context)

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(render, name, tpl) for name, tpl in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def test_pin_template(templates: dict[str, str]) -> None:
    text = templates["pin"]
    assert text.startswith("# This file is managed by Salt")
    assert "Package: src:nvidia-graphics-drivers src:nvidia-open-gpu-kernel-modules\n" in text
    assert "Pin: version 535.261.03-*\nPin-Priority: 1001\n" in text
    assert "Explanation: nvidia_driver formula (distro, open modules)" in text


def test_debian_sources_template(templates: dict[str, str]) -> None:
    stanzas = templates["sources"].split("\n\n")
    assert (
        "Suites: bookworm bookworm-updates\nComponents: contrib non-free non-free-firmware"
        in (stanzas[0])
    )
    assert "URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security" in stanzas[1]
    assert (
        templates["sources"].count("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg") == 2
    )


def test_module_options_template(templates: dict[str, str]) -> None:
    lines = [ln for ln in templates["options"].splitlines() if not ln.startswith("#")]
    assert lines == [
        "options nvidia-current-open NVreg_DynamicPowerManagement=1 NVreg_EnableStreamMemOPs=1"
    ]


def test_clean_renders(tmp_path: Path) -> None:
    high = {
        sid: state_args(s)
        for sid, s in _render(tmp_path, "debian12", {}, "nvidia_driver.clean").items()
    }
    assert set(high) == {
        "nvidia_driver-service-clean-service-dead",
        "nvidia_driver-config-clean-file-absent",
        "nvidia_driver-config-clean-cmd-run-daemon-reload",
        "nvidia_driver-package-clean-pkg-unheld",
        "nvidia_driver-package-clean-pkg-removed",
        "nvidia_driver-package-clean-file-absent",
        "nvidia_driver-package-clean-cmd-run-apt-update",
    }
    assert high["nvidia_driver-package-clean-pkg-removed"]["require"] == [
        {"sls": "nvidia_driver.config.clean"},
        {"pkg": "nvidia_driver-package-clean-pkg-unheld"},
    ]


# --- gpu_base ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("os_name", "pillar", "packages", "rebuild"),
    [
        (
            "debian12",
            {},
            [f"linux-headers-{KERNEL}", "pciutils", "initramfs-tools"],
            "update-initramfs -u -k all",
        ),
        (
            "ubuntu2404",
            {"kernel_headers": "generic"},
            ["linux-headers-generic", "pciutils", "initramfs-tools"],
            "update-initramfs -u -k all",
        ),
        (
            "rhel9",
            {},
            [f"kernel-devel-{KERNEL}", f"kernel-headers-{KERNEL}", "pciutils", "dracut"],
            "dracut --force --regenerate-all",
        ),
        (
            "debian12",
            {"kernel_headers": "generic", "rebuild_initramfs": False},
            ["linux-headers-amd64", "pciutils"],
            None,
        ),
    ],
    ids=["debian12", "ubuntu2404-generic", "rhel9", "debian12-no-initramfs"],
)
def test_gpu_base_renders(
    tmp_path: Path, os_name: str, pillar: dict[str, Any], packages: list[str], rebuild: str | None
) -> None:
    raw = _render(tmp_path, os_name, {"gpu_base": pillar}, "gpu_base")
    high = {sid: state_args(s) for sid, s in raw.items()}
    for sid in high:
        assert STATE_ID.match(sid), sid
    assert high["gpu_base-package-install-pkg-installed"]["pkgs"] == packages
    blacklist = high["gpu_base-config-file-file-managed-blacklist"]
    assert blacklist["name"] == "/etc/modprobe.d/blacklist-nouveau.conf"
    if rebuild:
        initramfs = high["gpu_base-config-file-cmd-run-initramfs"]
        assert initramfs["name"] == rebuild
        assert initramfs["onchanges"] == [{"file": "gpu_base-config-file-file-managed-blacklist"}]
    else:
        assert "gpu_base-config-file-cmd-run-initramfs" not in high
    if os_name == "rhel9":
        ini = high["gpu_base-config-file-ini-options-present-dnf-automatic"]
        assert ini["sections"]["base"]["excludepkgs"].startswith("nvidia-*,libnvidia-*,")
    else:
        uu = high["gpu_base-config-file-file-managed-unattended-upgrades"]
        assert "nvidia-fabricmanager" in uu["context"]["exclude"]


def test_gpu_base_bad_pillar(tmp_path: Path) -> None:
    with pytest.raises(SaltError, match=r"gpu_base: pillar gpu_base:memlock_limit must be"):
        _render(tmp_path, "debian12", {"gpu_base": {"memlock_limit": "lots"}}, "gpu_base")


# --- the GPU check script ----------------------------------------------------------------------

VERIFY = SALT_DIR / "nvidia_driver" / "files" / "default" / "nvidia-driver-verify.py"


def _fake_smi(tmp_path: Path, lines: list[str], rc: int = 0) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    body = "".join(f"echo '{line}'\n" for line in lines)
    smi.write_text(f"#!/bin/sh\n{body}exit {rc}\n", encoding="utf-8")
    smi.chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("lines", "args", "rc", "message"),
    [
        (
            ["0, 535.261.03, Enabled", "1, 535.261.03, Enabled"],
            ["--expect", "535.", "--count", "2", "--persistence"],
            0,
            "2 GPU(s) on driver 535.261.03",
        ),
        (
            ["0, 535.261.03, Enabled"],
            ["--expect", "535.", "--count", "8"],
            1,
            "1 GPU(s), expected 8",
        ),
        (
            ["0, 550.54.15, Enabled"],
            ["--expect", "535.261.03"],
            1,
            "driver other than 535.261.03*: GPU 0: 550.54.15",
        ),
        (
            ["0, 535.261.03, Disabled"],
            ["--expect", "535.", "--persistence"],
            1,
            "persistence mode off on GPU(s) 0",
        ),
        ([], ["--expect", "535."], 1, "no GPU answers"),
    ],
    ids=["ok", "count", "version", "persistence", "none"],
)
def test_verify_script(
    tmp_path: Path, lines: list[str], args: list[str], rc: int, message: str
) -> None:
    env = _fake_smi(tmp_path, lines)
    proc = subprocess.run(
        [sys.executable, str(VERIFY), *args], capture_output=True, text=True, env=env, timeout=30
    )
    assert proc.returncode == rc, proc.stderr
    assert message in (proc.stdout + proc.stderr)
    silent = subprocess.run(
        [sys.executable, str(VERIFY), *args, "--silent"], capture_output=True, text=True, env=env
    )
    assert silent.returncode == rc and silent.stdout == silent.stderr == ""


def test_nvml_probe_is_the_roles_file() -> None:
    """One copy: the formula serves roles/nvidia_driver/files/nvml_probe.py through a link."""
    served = SALT_DIR / "nvidia_driver" / "files" / "default" / "nvml_probe.py"
    role_file = SALT_DIR.parent / "roles" / "nvidia_driver" / "files" / "nvml_probe.py"
    assert served.is_symlink()
    assert served.resolve() == role_file.resolve()


def test_verify_script_reads_nvml_through_the_probe(tmp_path: Path) -> None:
    """--method nvml runs nvml_probe.py from the check's directory and judges its JSON."""
    for name, body in (
        ("nvidia-driver-verify.py", VERIFY.read_text(encoding="utf-8")),
        (
            "nvml_probe.py",
            "import json\n"
            'print(json.dumps({"driver_version": "535.261.03", "gpus": ['
            '{"index": 0, "uuid": "GPU-0", "name": "H100", "driver_version": "535.261.03",'
            ' "persistence_mode": False}]}))\n',
        ),
    ):
        (tmp_path / name).write_text(body, encoding="utf-8")
    check = [sys.executable, str(tmp_path / "nvidia-driver-verify.py"), "--method", "nvml"]
    ok = subprocess.run([*check, "--expect", "535."], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert "1 GPU(s) on driver 535.261.03" in ok.stdout
    off = subprocess.run(
        [*check, "--expect", "535.", "--persistence"], capture_output=True, text=True, timeout=30
    )
    assert off.returncode == 1
    assert "persistence mode off on GPU(s) 0" in off.stderr


def test_verify_script_reports_why_nvml_cannot_answer() -> None:
    """The real probe (through the formula's link): without NVML, its one-line reason is the
    check's; on a GPU machine, the GPUs it found run no driver "0.0.0"."""
    proc = subprocess.run(
        [sys.executable, str(VERIFY), "--method", "nvml", "--expect", "0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("nvidia_driver verify: nvml_probe: ") or (
        "driver other than 0.0.0*" in proc.stderr
    ), proc.stderr


def test_verify_script_reports_a_failing_nvidia_smi(tmp_path: Path) -> None:
    env = _fake_smi(tmp_path, ["NVIDIA-SMI has failed because it could not communicate"], rc=9)
    proc = subprocess.run(
        [sys.executable, str(VERIFY), "--expect", "535."], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 1
    assert "nvidia-smi exited 9: NVIDIA-SMI has failed" in proc.stderr
