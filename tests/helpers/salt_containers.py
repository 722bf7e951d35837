"""Masterless Salt in Debian 12 podman containers with systemd as PID 1 (the molecule image).

:func:`salt_image` derives an image from ``scripts/podman-image.sh``'s: Salt (the host's version,
3008.x) in a virtualenv at ``/opt/salt`` (``--system-site-packages``, so Salt's apt code sees
Debian's python3-apt), installed offline from wheels. The wheels are built or downloaded on the
host once (``pip wheel salt==<version>``, about 40 s; Salt itself builds from its sdist) into
``$SRE_SALT_WHEEL_CACHE`` (default ``/var/tmp/sre-salt-wheels/<version>``) and the image is tagged
by a hash of the base image, the Salt version and this recipe, so later runs reuse both.

:class:`SaltContainer` starts a container from it (``sre-salt-<random>``, removed by name however
the test ends), copies ``salt/`` in as ``/srv/salt`` with links resolved (``sre_versions.yaml``
becomes the real versions file), writes a pillar tree to ``/srv/pillar`` and runs
``salt-call --local --out=json state.apply`` there. :class:`StateRun` reads the result: which
states failed, which changed anything. :func:`converge` runs the five steps every container test
of a formula goes through; :func:`apt_candidate`, :func:`dpkg_version` and :func:`apt_held` read
apt's view of the result.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.podman import PODMAN, RUN_FLAGS, base_image, host_python, wait_systemd
from tests.helpers.procs import CommandError, file_lock, run
from tests.helpers.salt import SALT_DIR, SaltMissingError, salt_version

ROOT = Path(__file__).resolve().parents[2]
IMAGE_REPO = "localhost/sre-salt-debian12"
SALT_VENV = "/opt/salt"
SALT_CALL = f"{SALT_VENV}/bin/salt-call"
NAME_PREFIX = os.environ.get("SRE_SALT_CONTAINER_PREFIX", "sre-salt-")
RECIPE_VERSION = "1"
BOOT_TIMEOUT_SECONDS = 120.0
FIXTURE_REPO_BUILD = ROOT / "molecule" / "fixture_repo" / "build.py"
FIXTURE_REPO_DIR = ROOT / "molecule" / "fixture_repo" / ".build" / "repo"
FIXTURE_REPO_IN_CONTAINER = "/srv/sre-fixture-repo"


class ContainerError(CommandError):
    """A container, the image build or a command in the container failed; with its output."""


def salt_wheels(version: str) -> Path:
    """Wheels of ``salt==version``, its dependencies and pip, for CPython 3.11 (Debian 12's)."""
    default = Path("/var/tmp/sre-salt-wheels") / version
    cache = Path(os.environ.get("SRE_SALT_WHEEL_CACHE", str(default)))
    done = cache / "COMPLETE"
    with file_lock(f"sre-salt-wheels-{version}"):
        if done.exists():
            return cache
        cache.mkdir(parents=True, exist_ok=True)
        run(
            [
                host_python(),
                "-m",
                "pip",
                "wheel",
                "-q",
                "-w",
                str(cache),
                f"salt=={version}",
                "pip",
            ],
            timeout=900,
        )
        done.write_text(f"salt=={version}\n", encoding="utf-8")
    return cache


def _image_exists(tag: str) -> bool:
    return run(["podman", "image", "exists", tag], check=False).returncode == 0


def salt_image(base: str | None = None) -> str:
    """``base`` (default: :func:`base_image`) plus Salt in ``/opt/salt``; built once (about a
    minute), then reused. The base is part of the tag: benchmarks/bench_fanout.py layers Salt on
    the SSH node image (tests/helpers/podman_nodes.py)."""
    try:
        version = salt_version()
    except SaltMissingError as exc:
        raise ContainerError(str(exc)) from None
    base = base or base_image()
    recipe = f"{base}\nsalt=={version}\nvenv={SALT_VENV}\nrecipe={RECIPE_VERSION}"
    tag = f"{IMAGE_REPO}:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    with file_lock("sre-salt-debian12"):
        if _image_exists(tag):
            return tag
        wheels = salt_wheels(version)
        pip_wheel = sorted(wheels.glob("pip-*.whl"))
        if not pip_wheel:
            raise ContainerError(f"no pip wheel in {wheels}: remove the directory and retry")
        name = f"{NAME_PREFIX}build-{secrets.token_hex(4)}"
        try:
            run([*PODMAN, "run", "-d", "--name", name, *RUN_FLAGS, base, "/sbin/init"])
            run([*PODMAN, "cp", str(wheels), f"{name}:/root/wheels"])
            steps = [
                ["python3", "-m", "venv", "--system-site-packages", "--without-pip", SALT_VENV],
                # pip runs from its own wheel: no ensurepip (python3-venv) needed in the image.
                [
                    f"{SALT_VENV}/bin/python",
                    f"/root/wheels/{pip_wheel[-1].name}/pip",
                    "install",
                    "-q",
                    "--no-index",
                    "--find-links",
                    "/root/wheels",
                    "pip",
                    f"salt=={version}",
                ],
                ["rm", "-rf", "/root/wheels"],
                ["ln", "-sf", SALT_CALL, "/usr/local/bin/salt-call"],
            ]
            for step in steps:
                run([*PODMAN, "exec", name, *step], timeout=900)
            run([*PODMAN, "stop", "--time", "5", name])
            run(
                [*PODMAN, "commit", "--quiet", "--change", 'CMD ["/sbin/init"]', name, tag],
                timeout=300,
            )
        finally:
            run([*PODMAN, "rm", "--force", "--time", "2", name], check=False)
    return tag


def fixture_repo() -> Path:
    """The fixture apt repository (molecule/fixture_repo), built or reused; its directory."""
    if not FIXTURE_REPO_BUILD.exists():
        raise ContainerError(f"{FIXTURE_REPO_BUILD} is missing")
    run(
        [
            host_python(),
            str(FIXTURE_REPO_BUILD),
            str(FIXTURE_REPO_DIR),
        ],
        timeout=300,
    )
    return FIXTURE_REPO_DIR


def sre_tools_index(node: SaltContainer) -> str:
    """A PEP 503 package index in ``node`` (``file:///srv/sre-wheels/simple``) holding this
    checkout's sre-tools wheel and its dependencies, built on the host; returns its URL."""
    with tempfile.TemporaryDirectory(prefix="sre-salt-wheels-") as tmp:
        wheels = Path(tmp) / "wheels"
        run(
            [host_python(), "-m", "pip", "wheel", "-q",
             "-w", str(wheels), str(ROOT)],
            timeout=600,
        )  # fmt: skip
        simple = Path(tmp) / "sre-wheels" / "simple"
        for wheel in sorted(wheels.glob("*.whl")):
            project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
            (simple / project).mkdir(parents=True, exist_ok=True)
            (simple / project / wheel.name).write_bytes(wheel.read_bytes())
        for project_dir in simple.iterdir():
            links = "".join(
                f'<a href="{w.name}">{w.name}</a>\n' for w in sorted(project_dir.glob("*.whl"))
            )
            (project_dir / "index.html").write_text(
                f"<!DOCTYPE html><html><body>\n{links}</body></html>\n", encoding="utf-8"
            )
        node.exec("rm", "-rf", "/srv/sre-wheels")
        node.copy_in(simple.parent, "/srv/sre-wheels")
    return "file:///srv/sre-wheels/simple"


@dataclass
class StateRun:
    """One ``state.apply``'s JSON return: ``{state key: {result, changes, comment, ...}}``."""

    states: dict[str, dict[str, Any]]
    test: bool

    @property
    def failed(self) -> dict[str, str]:
        """State id -> comment for every state whose result is False (or None outside test)."""
        out = {}
        for key, ret in self.states.items():
            result = ret.get("result")
            if result is False or (result is None and not self.test):
                out[ret.get("__id__", key)] = str(ret.get("comment", ""))[-1500:]
        return out

    @property
    def changed(self) -> dict[str, Any]:
        """State id -> changes for every state that changed (or would, under test=True)."""
        out = {}
        for key, ret in self.states.items():
            if ret.get("changes") or (self.test and ret.get("result") is None):
                out[ret.get("__id__", key)] = ret.get("changes") or ret.get("comment")
        return out

    def ids(self) -> set[str]:
        return {ret.get("__id__", key) for key, ret in self.states.items()}

    def get(self, state_id: str) -> dict[str, Any]:
        for ret in self.states.values():
            if ret.get("__id__") == state_id:
                return ret
        raise KeyError(f"no state {state_id} in the run: {sorted(self.ids())}")


class SaltContainer:
    """A Debian 12 systemd container with masterless Salt and this repository's salt/ tree."""

    def __init__(self, minion_id: str = "gpu-h100-01", image: str | None = None):
        self.name = f"{NAME_PREFIX}{secrets.token_hex(4)}"
        self.minion_id = minion_id
        self.image = image
        self.started = False

    def __enter__(self) -> SaltContainer:
        try:
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def start(self) -> None:
        image = self.image or salt_image()
        self.started = True  # before `run`: remove() cleans up whatever happens next
        run(
            [
                *PODMAN,
                "run",
                "-d",
                "--name",
                self.name,
                "--hostname",
                self.minion_id,
                *RUN_FLAGS,
                image,
                "/sbin/init",
            ]
        )
        wait_systemd(self.name, BOOT_TIMEOUT_SECONDS)
        self.exec("mkdir", "-p", "/etc/salt", "/srv")
        minion = {
            "id": self.minion_id,
            "file_client": "local",
            "file_roots": {"base": ["/srv/salt"]},
            "pillar_roots": {"base": ["/srv/pillar"]},
            "log_level_logfile": "info",
        }
        self.write_file("/etc/salt/minion", "---\n" + yaml.safe_dump(minion, sort_keys=False))
        self.copy_salt_tree()

    def remove(self) -> None:
        if self.started:
            run([*PODMAN, "rm", "--force", "--time", "2", self.name], timeout=120, check=False)
            self.started = False

    # --- files -------------------------------------------------------------------------------

    def exec(
        self, *argv: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run([*PODMAN, "exec", self.name, *argv], timeout=timeout, check=check)

    def copy_in(self, src: Path, dest: str) -> None:
        run([*PODMAN, "cp", str(src), f"{self.name}:{dest}"])

    def write_file(self, path: str, text: str) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".tmp", delete=False) as fh:
            fh.write(text)
        try:
            self.copy_in(Path(fh.name), path)
        finally:
            os.unlink(fh.name)
        self.exec("chmod", "0644", path)

    def read_file(self, path: str) -> str:
        return self.exec("cat", path).stdout

    def copy_salt_tree(self, salt_dir: Path = SALT_DIR) -> None:
        """salt/ as /srv/salt, links resolved, without the example pillar (pillar is per test)."""
        with tempfile.TemporaryDirectory(prefix="sre-salt-tree-") as tmp:
            tree = Path(tmp) / "salt"
            shutil.copytree(
                salt_dir,
                tree,
                symlinks=False,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "pillar"),
            )
            self.exec("rm", "-rf", "/srv/salt")
            self.copy_in(tree, "/srv/salt")

    def set_pillar(self, pillar: Mapping[str, Any]) -> None:
        """A pillar tree with one file holding ``pillar``, for every minion."""
        with tempfile.TemporaryDirectory(prefix="sre-salt-pillar-") as tmp:
            root = Path(tmp) / "pillar"
            root.mkdir()
            (root / "top.sls").write_text("base:\n  '*':\n    - test\n", encoding="utf-8")
            (root / "test.sls").write_text(json.dumps(dict(pillar), indent=1), encoding="utf-8")
            self.exec("rm", "-rf", "/srv/pillar")
            self.copy_in(root, "/srv/pillar")

    def add_fixture_repo(self) -> str:
        """Copy the fixture apt repository in; returns its fingerprint."""
        repo = fixture_repo()
        self.exec("rm", "-rf", FIXTURE_REPO_IN_CONTAINER)
        self.copy_in(repo, FIXTURE_REPO_IN_CONTAINER)
        return (repo / "FINGERPRINT").read_text(encoding="utf-8").strip()

    # --- salt ----------------------------------------------------------------------------------

    def apply(self, sls: str, *, test: bool = False, timeout: float = 1500) -> StateRun:
        """``salt-call --local state.apply SLS [test=True]``; its states, parsed."""
        argv = [SALT_CALL, "--local", "--out=json", "-l", "quiet", "state.apply", sls]
        if test:
            argv.append("test=True")
        proc = self.exec(*argv, timeout=timeout, check=False)
        try:
            data = json.loads(proc.stdout)["local"]
        except (ValueError, KeyError) as exc:
            raise ContainerError(
                f"{' '.join(argv)} exited {proc.returncode}, unparsable ({exc}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            ) from None
        if not isinstance(data, dict):
            raise ContainerError(f"{' '.join(argv)} did not render: {data}")
        return StateRun(states=data, test=test)

    def call(self, *args: str, timeout: float = 300) -> Any:
        """``salt-call --local --out=json ARGS``: the ``local`` return."""
        proc = self.exec(SALT_CALL, "--local", "--out=json", "-l", "quiet", *args, timeout=timeout)
        return json.loads(proc.stdout)["local"]

    def journal(self, unit: str) -> str:
        return self.exec("journalctl", "--no-pager", "-n", "80", "-u", unit, check=False).stdout


# --- the five steps of a formula test, and apt's view of the result ------------------------------


def converge(
    node: SaltContainer,
    sls: str,
    must_change: set[str],
    fresh_failures: list[str] | None = None,
    timeout: float = 1500,
    dry_run_cannot_tell: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Apply ``sls`` (one sls or a comma-separated list) in five steps; returns the timings in
    seconds (``test_first``, ``apply``, ``apply_again``, ``test_converged``):

    1. ``test=True`` on the fresh node: nothing fails, and the ``must_change`` states say they
       would act;
    2. ``state.apply``: every result True, and every ``must_change`` state changed something;
    3. (the caller's checks of the result on the system come after this function);
    4. ``state.apply`` again: every result True, no changes at all, the same states;
    5. ``test=True`` on the converged node: no changes reported.

    With ``fresh_failures`` (a list), failures of step 1 are appended there instead of failing at
    once, so the other steps still run; the caller decides. ``dry_run_cannot_tell``: states of
    ``must_change`` that test=True on a fresh node cannot announce (their ``onlyif`` needs an
    earlier state's result)."""
    timings: dict[str, Any] = {}
    start = time.monotonic()
    dry = node.apply(sls, test=True)
    timings["test_first"] = round(time.monotonic() - start, 1)
    if fresh_failures is not None and dry.failed:
        fresh_failures.extend(f"{sid}: {comment}" for sid, comment in dry.failed.items())
    else:
        assert not dry.failed, f"test=True failed on a fresh node: {dry.failed}"
        announced = must_change - dry_run_cannot_tell
        assert announced <= set(dry.changed), (
            f"test=True does not announce {announced - set(dry.changed)}: {sorted(dry.changed)}"
        )

    start = time.monotonic()
    first = node.apply(sls, timeout=timeout)
    timings["apply"] = round(time.monotonic() - start, 1)
    assert not first.failed, f"state.apply {sls} failed: {first.failed}"
    assert must_change <= set(first.changed), (
        f"state.apply {sls} did not change {must_change - set(first.changed)}"
    )

    start = time.monotonic()
    second = node.apply(sls)
    timings["apply_again"] = round(time.monotonic() - start, 1)
    assert not second.failed, f"second state.apply failed: {second.failed}"
    assert second.changed == {}, f"not idempotent: {second.changed}"
    assert second.ids() == first.ids()

    start = time.monotonic()
    again = node.apply(sls, test=True)
    timings["test_converged"] = round(time.monotonic() - start, 1)
    assert not again.failed and again.changed == {}, (again.failed, again.changed)
    return timings


def apt_candidate(node: SaltContainer, package: str) -> str:
    """The version apt would install (``apt-cache policy``'s Candidate), pins applied."""
    policy = node.exec("apt-cache", "policy", package).stdout
    m = re.search(r"Candidate: (\S+)", policy)
    if not m:
        raise ContainerError(f"apt-cache policy {package}: no candidate in\n{policy}")
    return m.group(1)


def dpkg_version(node: SaltContainer, package: str) -> str:
    """The installed version of ``package`` (empty when dpkg knows it but it is not installed)."""
    return node.exec("dpkg-query", "-W", "-f=${Version}", package).stdout


def apt_held(node: SaltContainer) -> set[str]:
    """The packages on hold (``apt-mark showhold``)."""
    return set(node.exec("apt-mark", "showhold").stdout.split())
