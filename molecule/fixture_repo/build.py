#!/usr/bin/env python3
"""Build the local TEST FIXTURE apt repository (signed) that molecule scenarios install from.

NVIDIA's repositories cannot be reached from CI, so small packages carrying NVIDIA's package
names (and nothing of NVIDIA's) are built here with dpkg-deb, laid out like NVIDIA's flat
repositories, indexed and signed with a throwaway GPG key generated for the build. Roles point
their repository URL at ``file:///srv/sre-fixture-repo/...`` and their key fingerprint at the
``FINGERPRINT`` file, so repository set-up, key checks, pinning, holds and version choices run
for real. Every package's Description starts with "TEST FIXTURE".

Usage: build.py OUTDIR [--archive FILE.tar.gz] [--packages DIR]

Package definitions: one YAML file per component in packages/ (schema in README.md). The build is
cached by a hash of this script and the definitions: OUTDIR/BUILD_HASH equal to the new hash
means nothing to do. Needs dpkg-deb (dpkg) and gpg (gnupg); Python's standard library plus
PyYAML. Exit status 0, or 1 with a one-line error naming the file and field.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
KEY_UID = "SRE tools TEST FIXTURE repository key (NOT NVIDIA) <sre-fixture@invalid>"
DESCRIPTION_PREFIX = "TEST FIXTURE"
NOT_NVIDIA = (
    "This is NOT NVIDIA's package: an empty stand-in built by sre-tools' molecule fixture "
    "repository so that repository, pin and hold logic can be tested without NVIDIA's servers."
)
MAINTAINER = "SRE tools test fixtures <sre-fixture@invalid>"
SCRIPT_NAMES = ("preinst", "postinst", "prerm", "postrm")
TIMEOUT = 120


class FixtureError(Exception):
    """A bad package definition or a failed build step; the message names file and field."""


@dataclass(frozen=True)
class Repository:
    name: str
    path: str
    keys: tuple[str, ...]
    origin: str
    label: str


@dataclass
class Package:
    name: str
    version: str
    architecture: str
    repository: str
    description: str
    depends: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    files: list[dict[str, str]] = field(default_factory=list)
    scripts: dict[str, str] = field(default_factory=dict)
    source: str = ""


def expand(text: str, name: str, version: str) -> str:
    """@NAME@, @VERSION@ (Debian version) and @UPSTREAM@ (before the last '-') in ``text``."""
    upstream = version.rsplit("-", 1)[0]
    return (
        text.replace("@NAME@", name).replace("@VERSION@", version).replace("@UPSTREAM@", upstream)
    )


def _require(mapping: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in mapping:
        raise FixtureError(f"{where}: missing field {key!r}")
    value = mapping[key]
    if not isinstance(value, kind):
        raise FixtureError(f"{where}: field {key!r} must be a {kind.__name__}")
    return value


def load_definitions(directory: Path) -> tuple[dict[str, Repository], list[Package]]:
    """Repositories and packages from every packages/*.yml, validated."""
    repositories: dict[str, Repository] = {}
    packages: list[Package] = []
    references: list[tuple[str, str]] = []
    files = sorted(directory.glob("*.yml"))
    if not files:
        raise FixtureError(f"{directory}: no package definitions (*.yml)")
    for path in files:
        where = str(path.relative_to(HERE) if path.is_relative_to(HERE) else path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise FixtureError(f"{where}: not YAML: {error}") from error
        if not isinstance(data, dict):
            raise FixtureError(f"{where}: top level must be a mapping")
        for name, spec in (data.get("repositories") or {}).items():
            field_where = f"{where}: repositories.{name}"
            if not isinstance(spec, dict):
                raise FixtureError(f"{field_where}: must be a mapping")
            repo = Repository(
                name=name,
                path=_require(spec, "path", str, field_where).strip("/"),
                keys=tuple(spec.get("keys") or ()),
                origin=str(spec.get("origin", "sre-tools-fixture")),
                label=str(spec.get("label", f"TEST FIXTURE {name}")),
            )
            if name in repositories and repositories[name] != repo:
                raise FixtureError(f"{field_where}: defined differently in another file")
            repositories[name] = repo
        if not isinstance(data.get("packages", []), list):
            raise FixtureError(f"{where}: field 'packages' must be a list")
        for index, spec in enumerate(data.get("packages") or []):
            field_where = f"{where}: packages[{index}]"
            if not isinstance(spec, dict):
                raise FixtureError(f"{field_where}: must be a mapping")
            name = _require(spec, "name", str, field_where)
            field_where = f"{where}: packages[{index}] ({name})"
            versions = _require(spec, "versions", list, field_where)
            if not versions or not all(isinstance(v, str) and "-" in v for v in versions):
                raise FixtureError(
                    f"{field_where}: field 'versions' must list Debian versions like '1.2.3-1'"
                )
            description = _require(spec, "description", str, field_where).strip()
            scripts = spec.get("scripts") or {}
            unknown = set(scripts) - set(SCRIPT_NAMES)
            if unknown:
                raise FixtureError(f"{field_where}: field 'scripts' has unknown {sorted(unknown)}")
            for file_index, item in enumerate(spec.get("files") or []):
                file_where = f"{field_where}: files[{file_index}]"
                if not isinstance(item, dict):
                    raise FixtureError(f"{file_where}: must be a mapping")
                path_value = _require(item, "path", str, file_where)
                if not path_value.startswith("/") or ".." in path_value.split("/"):
                    raise FixtureError(f"{file_where}: field 'path' must be absolute, without '..'")
                _require(item, "content", str, file_where)
            for version in versions:
                packages.append(
                    Package(
                        name=name,
                        version=version,
                        architecture=str(spec.get("architecture", "amd64")),
                        repository=_require(spec, "repository", str, field_where),
                        description=description,
                        depends=[expand(d, name, version) for d in spec.get("depends") or []],
                        provides=[expand(d, name, version) for d in spec.get("provides") or []],
                        conflicts=[expand(d, name, version) for d in spec.get("conflicts") or []],
                        files=[
                            {
                                "path": f["path"],
                                "mode": str(f.get("mode", "0644")),
                                "content": expand(f["content"], name, version),
                            }
                            for f in spec.get("files") or []
                        ],
                        scripts={k: expand(v, name, version) for k, v in scripts.items()},
                        source=str(spec.get("source", "")),
                    )
                )
            references.append((field_where, spec["repository"]))
    for field_where, repository in references:
        if repository not in repositories:
            raise FixtureError(
                f"{field_where}: field 'repository' names {repository!r}, "
                "which no packages/*.yml defines under repositories"
            )
    seen: set[tuple[str, str]] = set()
    for package in packages:
        key = (package.name, package.version)
        if key in seen:
            raise FixtureError(f"{package.name} {package.version}: defined twice")
        seen.add(key)
    return repositories, packages


def content_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in [Path(__file__).resolve(), *sorted(directory.glob("*.yml"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=TIMEOUT, check=False, **kwargs
        )
    except FileNotFoundError as error:
        raise FixtureError(f"{argv[0]} is not installed (apt-get install dpkg gnupg)") from error
    except subprocess.TimeoutExpired as error:
        raise FixtureError(f"{argv[0]} took over {TIMEOUT} s") from error
    if result.returncode != 0:
        raise FixtureError(f"{' '.join(argv[:3])} failed: {result.stderr.strip()}")
    return result


def build_deb(package: Package, workdir: Path, dest: Path) -> Path:
    root = workdir / f"{package.name}_{package.version}"
    (root / "DEBIAN").mkdir(parents=True)
    for item in package.files:
        target = root / item["path"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item["content"], encoding="utf-8")
        target.chmod(int(item["mode"], 8))
    installed_kib = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) // 1024 + 1
    summary, _, rest = package.description.partition("\n")
    long_lines = [line.strip() for line in rest.splitlines() if line.strip()]
    long_lines.append(NOT_NVIDIA)
    control = [
        f"Package: {package.name}",
        f"Version: {package.version}",
        f"Architecture: {package.architecture}",
        f"Maintainer: {MAINTAINER}",
        f"Installed-Size: {installed_kib}",
        "Section: misc",
        "Priority: optional",
    ]
    if package.source:
        control.append(f"Source: {package.source}")
    for key, values in (
        ("Depends", package.depends),
        ("Provides", package.provides),
        ("Conflicts", package.conflicts),
    ):
        if values:
            control.append(f"{key}: {', '.join(values)}")
    control.append(f"Description: {DESCRIPTION_PREFIX}: {summary}")
    control.extend(f" {line}" for line in long_lines)
    (root / "DEBIAN" / "control").write_text("\n".join(control) + "\n", encoding="utf-8")
    conffiles = [f["path"] for f in package.files if f["path"].startswith("/etc/")]
    if conffiles:
        (root / "DEBIAN" / "conffiles").write_text("\n".join(conffiles) + "\n", encoding="utf-8")
    for script, body in package.scripts.items():
        path = root / "DEBIAN" / script
        path.write_text(body, encoding="utf-8")
        path.chmod(0o755)
    dest.mkdir(parents=True, exist_ok=True)
    deb = dest / f"{package.name}_{package.version}_{package.architecture}.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)])
    return deb


def packages_index(debs: list[Path], repo_dir: Path) -> str:
    stanzas = []
    for deb in sorted(debs):
        control = run(["dpkg-deb", "--field", str(deb)]).stdout.rstrip("\n")
        data = deb.read_bytes()
        stanzas.append(
            "\n".join(
                [
                    control,
                    f"Filename: ./{deb.relative_to(repo_dir)}",
                    f"Size: {len(data)}",
                    f"MD5sum: {hashlib.md5(data).hexdigest()}",  # noqa: S324 - apt's index field
                    f"SHA256: {hashlib.sha256(data).hexdigest()}",
                ]
            )
        )
    return "\n\n".join(stanzas) + "\n"


def release_file(repo: Repository, repo_dir: Path, architectures: list[str]) -> str:
    lines = [
        f"Origin: {repo.origin}",
        f"Label: {repo.label}",
        f"Architectures: {' '.join(architectures)}",
        f"Date: {formatdate(time.time(), usegmt=True)}",
        f"Description: {DESCRIPTION_PREFIX} repository laid out like NVIDIA's {repo.path}; "
        "not NVIDIA's.",
    ]
    for algorithm, label in (("md5", "MD5Sum"), ("sha256", "SHA256")):
        lines.append(f"{label}:")
        for name in ("Packages", "Packages.gz"):
            data = (repo_dir / name).read_bytes()
            lines.append(f" {hashlib.new(algorithm, data).hexdigest()} {len(data):>8} {name}")
    return "\n".join(lines) + "\n"


class Signer:
    """The repository's throwaway signing key, in a temporary GnuPG home (removed on exit).

    The secret key is kept in ``key_file`` (mode 0600, next to the build, never in git) so that
    rebuilds sign with the same key: a molecule instance prepared before a rebuild still trusts
    the repository. A missing file means a new key.
    """

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file

    def __enter__(self) -> Signer:
        self.home = Path(tempfile.mkdtemp(prefix="sre-fixture-gpg-"))
        self.home.chmod(0o700)
        if self.key_file.is_file():
            run(self._gpg("--import", str(self.key_file)))
        else:
            run(
                self._gpg(
                    "--passphrase", "", "--quick-gen-key", KEY_UID, "ed25519", "sign", "never"
                )
            )
        colons = run(self._gpg("--list-secret-keys", "--with-colons")).stdout
        self.fingerprint = next(
            line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:")
        )
        if not self.key_file.is_file():
            secret = run(self._gpg("--armor", "--export-secret-keys", self.fingerprint)).stdout
            descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="ascii") as stream:
                stream.write(secret)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        shutil.rmtree(self.home, ignore_errors=True)

    def _gpg(self, *args: str) -> list[str]:
        return ["gpg", "--homedir", str(self.home), "--batch", "--pinentry-mode", "loopback", *args]

    def public_key(self) -> str:
        return run(self._gpg("--armor", "--export", self.fingerprint)).stdout

    def sign(self, release: Path) -> None:
        base = self._gpg("--yes", "--local-user", self.fingerprint, "--digest-algo", "SHA256")
        run([*base, "--clearsign", "--output", str(release.parent / "InRelease"), str(release)])
        detached = ["--armor", "--detach-sign", "--output", str(release) + ".gpg", str(release)]
        run([*base, *detached])


def build(outdir: Path, definitions: Path) -> str:
    """Build the repository tree in ``outdir`` (replaced); its fingerprint."""
    repositories, packages = load_definitions(definitions)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=outdir.parent))
    try:
        key_file = outdir.with_name(outdir.name + ".signing-key.asc")
        with (
            tempfile.TemporaryDirectory(prefix="sre-fixture-pkg-") as work,
            Signer(key_file) as signer,
        ):
            for repo in repositories.values():
                repo_dir = staging / repo.path
                members = [p for p in packages if p.repository == repo.name]
                debs = [build_deb(p, Path(work), repo_dir) for p in members]
                index = packages_index(debs, repo_dir)
                (repo_dir / "Packages").write_text(index, encoding="utf-8")
                (repo_dir / "Packages.gz").write_bytes(gzip.compress(index.encode(), mtime=0))
                architectures = sorted({p.architecture for p in members} | {"amd64"})
                (repo_dir / "Release").write_text(
                    release_file(repo, repo_dir, architectures), encoding="utf-8"
                )
                signer.sign(repo_dir / "Release")
            key = signer.public_key()
            (staging / "sre-fixture-key.asc").write_text(key, encoding="utf-8")
            for repo in repositories.values():
                for key_path in repo.keys:
                    target = staging / key_path.strip("/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(key, encoding="utf-8")
            (staging / "FINGERPRINT").write_text(signer.fingerprint + "\n", encoding="utf-8")
            (staging / "README-FIXTURE.txt").write_text(
                f"{DESCRIPTION_PREFIX} apt repositories built by molecule/fixture_repo/build.py.\n"
                f"{NOT_NVIDIA}\nSigned by {signer.fingerprint} ({KEY_UID}).\n",
                encoding="utf-8",
            )
            fingerprint = signer.fingerprint
        for path in [staging, *staging.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        old = outdir.with_name(outdir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if outdir.exists():
            outdir.rename(old)
        staging.rename(outdir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return fingerprint


def write_archive(outdir: Path, archive: Path) -> None:
    """A reproducible tar.gz of the tree (its top directory is sre-fixture-repo/)."""
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in [outdir, *sorted(outdir.rglob("*"))]:
            info = tar.gettarinfo(
                str(path), arcname=str(Path("sre-fixture-repo") / path.relative_to(outdir))
            )
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if path.is_file():
                with path.open("rb") as stream:
                    tar.addfile(info, stream)
            else:
                tar.addfile(info)
    tmp.replace(archive)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--archive", type=Path, help="also write this .tar.gz of the tree")
    parser.add_argument("--packages", type=Path, default=HERE / "packages")
    args = parser.parse_args(argv)
    outdir: Path = args.outdir.resolve()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    want = content_hash(args.packages)
    try:
        with open(outdir.with_name(outdir.name + ".lock"), "w", encoding="utf-8") as lock:
            # Concurrent molecule runs share the cache: one builds, the others wait and reuse.
            fcntl.flock(lock, fcntl.LOCK_EX)
            stamp = outdir / "BUILD_HASH"
            archive_stamp = None
            if args.archive is not None:
                archive_stamp = args.archive.with_name(args.archive.name + ".hash")
            if stamp.is_file() and stamp.read_text().strip() == want:
                if archive_stamp is None or (
                    args.archive.is_file()
                    and archive_stamp.is_file()
                    and archive_stamp.read_text().strip() == want
                ):
                    print(f"unchanged {outdir} {want[:12]}")
                    return 0
            else:
                fingerprint = build(outdir, args.packages)
                stamp.write_text(want + "\n", encoding="utf-8")
                print(f"built {outdir} {want[:12]} key {fingerprint}")
            if args.archive is not None and archive_stamp is not None:
                write_archive(outdir, args.archive.resolve())
                archive_stamp.write_text(want + "\n", encoding="utf-8")
                print(f"archived {args.archive}")
    except FixtureError as error:
        print(f"build.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
