"""The TEST FIXTURE apt repository (molecule/fixture_repo/build.py), checked with real apt.

The repository is built into a temporary directory and read by apt-get/apt-cache running against
a throwaway root (Dir=..., an empty dpkg status), no container needed: the signatures verify
against the exported key, apt sees every version, a pin chooses among them, tampering is refused,
and every package says it is a test fixture. A missing dpkg-deb, gpg or apt FAILS these tests.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ansible.conftest import ROOT

BUILD = ROOT / "molecule" / "fixture_repo" / "build.py"
PACKAGES = ROOT / "molecule" / "fixture_repo" / "packages"
TIMEOUT = 120


def need(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (apt-get install dpkg gnupg apt)", pytrace=False)
    return found


def build(outdir: Path, *extra: str, packages: Path = PACKAGES) -> subprocess.CompletedProcess[str]:
    for name in ("dpkg-deb", "gpg", "apt-get"):
        need(name)
    return subprocess.run(
        [sys.executable, str(BUILD), str(outdir), "--packages", str(packages), *extra],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def definitions() -> tuple[dict, list[dict]]:
    repositories: dict = {}
    packages: list[dict] = []
    for path in sorted(PACKAGES.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        repositories.update(data.get("repositories") or {})
        packages.extend(data.get("packages") or [])
    return repositories, packages


class Apt:
    """apt-get / apt-cache on a throwaway root that lists the fixture's repositories."""

    def __init__(self, root: Path, repo: Path, repositories: dict) -> None:
        self.root = root
        for sub in (
            "etc/apt/sources.list.d",
            "etc/apt/preferences.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg",
        ):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "var/lib/dpkg/status").touch()
        key = root / "fixture-key.asc"
        shutil.copy(repo / "sre-fixture-key.asc", key)
        stanzas = [
            f"Types: deb\nURIs: file://{repo}/{spec['path']}/\nSuites: /\nSigned-By: {key}\n"
            for spec in repositories.values()
        ]
        (root / "etc/apt/sources.list.d/fixture.sources").write_text("\n".join(stanzas))
        self.options = [
            f"-oDir={root}",
            f"-oDir::State::status={root}/var/lib/dpkg/status",
            f"-oDir::Etc={root}/etc/apt",
            "-oDir::Etc::sourcelist=/dev/null",
            "-oAPT::Sandbox::User=root",
            "-oDebug::NoLocking=1",
            "-oAPT::Architecture=amd64",
            "-oAPT::Architectures::=amd64",
        ]

    def __call__(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [need(tool), *self.options, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("fixture") / "repo"
    result = build(outdir, "--archive", str(outdir.parent / "repo.tar.gz"))
    assert result.returncode == 0, result.stderr
    return outdir


@pytest.fixture()
def apt(repo: Path, tmp_path: Path) -> Apt:
    repositories, _packages = definitions()
    apt = Apt(tmp_path / "root", repo, repositories)
    result = apt("apt-get", "update")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not signed" not in result.stderr and "NO_PUBKEY" not in result.stderr, result.stderr
    return apt


def test_layout_matches_nvidia_and_key_is_published(repo: Path) -> None:
    repositories, _ = definitions()
    fingerprint = (repo / "FINGERPRINT").read_text().strip()
    assert re.fullmatch(r"[0-9A-F]{40}", fingerprint)
    key = (repo / "sre-fixture-key.asc").read_text()
    for spec in repositories.values():
        directory = repo / spec["path"]
        for name in ("InRelease", "Release", "Release.gpg", "Packages", "Packages.gz"):
            assert (directory / name).is_file(), (spec["path"], name)
        for key_path in spec.get("keys") or []:
            assert (repo / key_path).read_text() == key
    assert (repo / "cuda/repos/debian12/x86_64/3bf863cc.pub").is_file()
    assert (repo / "libnvidia-container/gpgkey").is_file()
    shown = subprocess.run(
        [need("gpg"), "--show-keys", "--with-colons", str(repo / "sre-fixture-key.asc")],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    ).stdout
    assert f"fpr:::::::::{fingerprint}:" in shown
    assert "TEST FIXTURE" in shown and "NOT NVIDIA" in shown


def test_apt_sees_every_version_of_every_package(apt: Apt) -> None:
    _, packages = definitions()
    for spec in packages:
        madison = apt("apt-cache", "madison", spec["name"]).stdout
        listed = {line.split("|")[1].strip() for line in madison.splitlines()}
        assert listed == set(spec["versions"]), (spec["name"], madison)


def test_every_package_says_it_is_a_test_fixture(repo: Path) -> None:
    _, packages = definitions()
    for index in repo.rglob("Packages.gz"):
        for stanza in gzip.decompress(index.read_bytes()).decode().split("\n\n"):
            if not stanza.strip():
                continue
            assert re.search(r"^Description: TEST FIXTURE: ", stanza, re.M), stanza
            assert "NOT NVIDIA's package" in stanza, stanza
    assert packages


def test_a_pin_chooses_an_older_build(apt: Apt) -> None:
    pref = apt.root / "etc/apt/preferences.d/fm.pref"
    pref.write_text("Package: nvidia-fabricmanager\nPin: version 580.*\nPin-Priority: 1001\n")
    policy = apt("apt-cache", "policy", "nvidia-fabricmanager").stdout
    assert "Candidate: 580.105.08-1" in policy, policy
    pref.write_text("Package: nvidia-fabricmanager\nPin: version 580.95.05-*\nPin-Priority: 1001\n")
    policy = apt("apt-cache", "policy", "nvidia-fabricmanager").stdout
    assert "Candidate: 580.95.05-1" in policy, policy


def test_dependencies_resolve_at_one_version(apt: Apt) -> None:
    result = apt("apt-get", "install", "-s", "cuda-toolkit-12-8", "nvidia-container-toolkit")
    assert result.returncode == 0, result.stdout + result.stderr
    planned = dict(re.findall(r"^Inst (\S+) \((\S+)", result.stdout, re.M))
    assert planned["nvidia-container-toolkit"] == "1.17.8-1"
    assert planned["nvidia-container-toolkit-base"] == "1.17.8-1"
    assert planned["cuda-nvcc-12-8"].startswith("12.8.")
    # An older toolkit alone cannot be installed: its exact-version dependencies need a pin too.
    mixed = apt("apt-get", "install", "-s", "nvidia-container-toolkit=1.17.7-1")
    assert mixed.returncode != 0


def test_tampered_index_is_refused(repo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy)
    inrelease = copy / "cuda/repos/debian12/x86_64/InRelease"
    inrelease.write_text(inrelease.read_text().replace("Label: TEST FIXTURE", "Label: TAMPERED"))
    repositories, _ = definitions()
    apt = Apt(tmp_path / "root", copy, {"cuda": repositories["cuda"]})
    result = apt("apt-get", "update")
    assert "BADSIG" in result.stdout + result.stderr or result.returncode != 0, result.stdout


def test_wrong_key_is_refused(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert build(other).returncode == 0
    repositories, _ = definitions()
    apt = Apt(tmp_path / "root", repo, {"cuda": repositories["cuda"]})
    shutil.copy(other / "sre-fixture-key.asc", apt.root / "fixture-key.asc")
    result = apt("apt-get", "update")
    assert "NO_PUBKEY" in result.stdout + result.stderr, result.stdout + result.stderr


def test_rebuild_is_cached_by_content(repo: Path) -> None:
    result = build(repo, "--archive", str(repo.parent / "repo.tar.gz"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("unchanged "), result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "packages: [{name: x, repository: cuda, versions: ['1-1']}]",
            "missing field 'description'",
        ),
        (
            "packages: [{name: x, repository: nope, versions: ['1-1'], description: d}]",
            "field 'repository' names 'nope'",
        ),
        (
            "packages: [{name: x, repository: cuda, versions: ['1'], description: d}]",
            "field 'versions' must list",
        ),
        (
            "packages: [{name: x, repository: cuda, versions: ['1-1'], description: d,"
            " files: [{path: rel, content: c}]}]",
            "field 'path' must be absolute",
        ),
    ],
    ids=["no-description", "unknown-repository", "no-revision", "relative-path"],
)
def test_bad_definition_is_one_line_naming_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    packages = tmp_path / "packages"
    packages.mkdir()
    shutil.copy(PACKAGES / "_repositories.yml", packages)
    (packages / "broken.yml").write_text(text)
    result = build(tmp_path / "out", packages=packages)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "broken.yml" in lines[0] and message in lines[0], lines[0]


def test_rebuild_after_a_change_keeps_the_signing_key(tmp_path: Path) -> None:
    packages = tmp_path / "packages"
    shutil.copytree(PACKAGES, packages)
    outdir = tmp_path / "repo"
    assert build(outdir, packages=packages).returncode == 0
    first = (outdir / "FINGERPRINT").read_text()
    key_file = tmp_path / "repo.signing-key.asc"
    assert key_file.stat().st_mode & 0o777 == 0o600
    (packages / "extra.yml").write_text(
        "packages: [{name: extra, repository: cuda, versions: ['1.0-1'], description: x}]\n"
    )
    rebuilt = build(outdir, packages=packages)
    assert rebuilt.stdout.startswith("built "), rebuilt.stdout + rebuilt.stderr
    assert (outdir / "FINGERPRINT").read_text() == first
    assert (outdir / "cuda/repos/debian12/x86_64/extra_1.0-1_amd64.deb").is_file()
