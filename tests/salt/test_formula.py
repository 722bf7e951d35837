"""The Salt tree renders: top files, pillar, the sre_agent formula per OS family, its templates.

The formula is rendered on its own (``state.show_sls sre_agent``): the top file lists every
formula, and the others have their own render tests (tests/salt/test_formulas_*.py).

Everything runs through ``salt-call --local`` with a minion configuration in a temporary
directory (``file_client: local``, its own ``root_dir``); OS families come from a ``grains:``
block in that configuration, so nothing on this machine is changed. Salt missing fails.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.salt import (
    GPU_BEACON,
    SALT_DIR,
    TOP_FORMULAS,
    SaltError,
    SaltMissingError,
    get_template,
    load_salt_file,
    local_minion_config,
    salt_bin,
    salt_call,
    show_sls,
    state_args,
)

GRAINS = {
    "Debian": {"os_family": "Debian", "os": "Debian", "osfinger": "Debian-12", "osarch": "amd64"},
    "RedHat": {
        "os_family": "RedHat",
        "os": "Rocky",
        "osfinger": "Rocky Linux-9",
        "osarch": "x86_64",
    },
}
STATE_IDS = {
    "sre_agent-package-install-pkg-installed",
    "sre_agent-package-install-cmd-run",
    "sre_agent-package-install-pip-installed",
    "sre_agent-config-file-file-managed",
    "sre_agent-service-running-file-directory",
    "sre_agent-service-running-file-managed",
    "sre_agent-service-running-service-running",
    # The Slurm prolog/epilog hooks are off by default: their files are kept absent.
    "sre_agent-config-slurm-file-absent-hooks-off",
}
CLEAN_IDS = {
    "sre_agent-service-clean-service-dead",
    "sre_agent-service-clean-file-absent",
    "sre_agent-config-clean-file-absent",
    "sre_agent-config-clean-file-absent-slurm",
    "sre_agent-package-clean-file-absent",
}
# <formula>-<dir>-<file>-<module>-<function>[-<qualifier>]
STATE_ID = re.compile(r"^sre_agent-(?P<dir>[a-z]+)-(?P<file>[a-z]+)-(?P<mod>[a-z]+)-[a-z_-]+$")

pytestmark = pytest.mark.usefixtures("salt_installed")


def _highstate(tmp_path: Path, family: str) -> dict[str, Any]:
    """The sre_agent formula's states as the highstate would have them."""
    conf = local_minion_config(tmp_path / family, grains=GRAINS[family])
    data = salt_call(conf, "state.show_sls", "sre_agent")
    assert isinstance(data, dict), data
    return data


def _with_pillar(tmp_path: Path, sre_agent: dict[str, Any]) -> dict[str, Any]:
    """The sre_agent formula's states on Debian, with pillar ``sre_agent`` only."""
    return show_sls(tmp_path, "sre_agent", {"sre_agent": sre_agent}, grains=GRAINS["Debian"])


@pytest.fixture(scope="module")
def highstates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("highstate")
    # Independent salt-call processes (own root_dir each): run them side by side.
    with ThreadPoolExecutor(max_workers=len(GRAINS)) as pool:
        futures = {family: pool.submit(_highstate, tmp, family) for family in GRAINS}
        return {family: future.result() for family, future in futures.items()}


def test_top_file(tmp_path: Path) -> None:
    conf = local_minion_config(tmp_path, grains=GRAINS["Debian"])
    assert salt_call(conf, "state.show_top") == {"base": TOP_FORMULAS}


def test_highstate_has_the_formula_states(highstates: dict[str, dict[str, Any]]) -> None:
    for family, high in highstates.items():
        assert set(high) == STATE_IDS, family


def test_state_ids_follow_the_convention(highstates: dict[str, dict[str, Any]]) -> None:
    for state_id, state in highstates["Debian"].items():
        m = STATE_ID.match(state_id)
        assert m, state_id
        assert state["__sls__"] == f"sre_agent.{m['dir']}.{m['file']}", state_id
        assert m["mod"] in state, state_id


@pytest.mark.parametrize(
    ("family", "deps", "python"),
    [
        ("Debian", ["python3", "python3-venv", "python3-pip"], "/usr/bin/python3"),
        ("RedHat", ["python3.11", "python3.11-pip"], "/usr/bin/python3.11"),
    ],
)
def test_os_family_parameters(
    highstates: dict[str, dict[str, Any]], family: str, deps: list[str], python: str
) -> None:
    high = highstates[family]
    assert state_args(high["sre_agent-package-install-pkg-installed"], "pkg")["pkgs"] == deps
    venv = state_args(high["sre_agent-package-install-cmd-run"], "cmd")
    assert venv["name"] == f"{python} -m venv /opt/sre-tools/venv"


def test_pillar_reaches_the_states(highstates: dict[str, dict[str, Any]]) -> None:
    high = highstates["Debian"]
    pip = state_args(high["sre_agent-package-install-pip-installed"], "pip")
    assert pip == {
        "name": "sre-tools==0.1.0",
        "bin_env": "/opt/sre-tools/venv",
        "require": [{"cmd": "sre_agent-package-install-cmd-run"}],
        "onlyif": "test -x /opt/sre-tools/venv/bin/python",
    }
    policy = state_args(high["sre_agent-config-file-file-managed"], "file")["context"]["policy"]
    assert policy["profile"] == "h100-sxm-8"


def test_requisites_point_at_whole_sls_files(highstates: dict[str, dict[str, Any]]) -> None:
    high = highstates["Debian"]
    config = state_args(high["sre_agent-config-file-file-managed"], "file")
    assert config["require"] == [{"sls": "sre_agent.package.install"}]
    service = state_args(high["sre_agent-service-running-service-running"], "service")
    assert service["watch"] == [{"sls": "sre_agent.config.file"}]
    assert service["name"] == "sre-health.timer" and service["enable"] is True


def test_the_policy_check_cmd_validates_with_sre_tools(
    highstates: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """file.managed's check_cmd, run here against this venv's Python, as Salt would run it."""
    config = state_args(highstates["Debian"]["sre_agent-config-file-file-managed"], "file")
    argv = shlex.split(config["check_cmd"])
    assert argv[0] == "/opt/sre-tools/venv/bin/python"
    argv[0] = sys.executable
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("---\nprofile: h100-sxm-8\n", encoding="utf-8")
    bad.write_text("---\nprofile: h100-sxm-8\nthermal:\n  margin_wran_c: 3\n", encoding="utf-8")
    assert subprocess.run([*argv, str(good)], capture_output=True).returncode == 0
    failed = subprocess.run([*argv, str(bad)], capture_output=True, text=True)
    assert failed.returncode != 0 and "margin_wran_c" in failed.stderr


def test_clean_renders(tmp_path: Path) -> None:
    conf = local_minion_config(tmp_path, grains=GRAINS["Debian"])
    data = salt_call(conf, "state.show_sls", "sre_agent.clean")
    assert set(data) == CLEAN_IDS
    absent = state_args(data["sre_agent-package-clean-file-absent"], "file")
    assert absent["require"] == [{"sls": "sre_agent.config.clean"}]


def test_pillar_renders(tmp_path: Path) -> None:
    conf = local_minion_config(tmp_path, grains=GRAINS["Debian"])
    pillar = salt_call(conf, "pillar.items", "unmask=True")
    assert set(pillar) >= {"sre_agent", "sre_tools", "beacons"}
    assert pillar["sre_tools"] == {"profile": "h100-sxm-8", "config": "/etc/sre-tools/health.yaml"}
    # The beacon configuration the pillar ships is one the beacon accepts.
    beacon = load_salt_file(GPU_BEACON)
    assert beacon.validate(pillar["beacons"]["gpu_health"]) == (True, "Valid beacon configuration")


def test_pillar_does_not_match_other_minions(tmp_path: Path) -> None:
    conf = local_minion_config(tmp_path, minion_id="login-01", grains=GRAINS["Debian"])
    assert salt_call(conf, "pillar.items", "unmask=True") == {}
    assert salt_call(conf, "state.show_top") == {}


def test_lookup_then_pillar_override_the_parameters(tmp_path: Path) -> None:
    high = _with_pillar(
        tmp_path,
        {
            "lookup": {
                "venv": "/srv/sre/venv",
                "python": "/opt/py311/bin/python3",
                "pkg": {"deps": ["python3.12-venv"]},
            },
            "service": {"enable": False},
            "source": {
                "requirement": "sre-tools==0.2.0",
                "index_url": "https://pypi.example/simple",
            },
        },
    )
    assert state_args(high["sre_agent-package-install-cmd-run"], "cmd")["name"] == (
        "/opt/py311/bin/python3 -m venv /srv/sre/venv"
    )
    pip = state_args(high["sre_agent-package-install-pip-installed"], "pip")
    assert pip == {
        "name": "sre-tools==0.2.0",
        "bin_env": "/srv/sre/venv",
        "require": [{"cmd": "sre_agent-package-install-cmd-run"}],
        "onlyif": "test -x /srv/sre/venv/bin/python",
        "index_url": "https://pypi.example/simple",
    }
    assert "dead" in high["sre_agent-service-running-service-running"]["service"]
    # A list from pillar replaces the OS family's, it is not appended to it.
    deps = state_args(high["sre_agent-package-install-pkg-installed"], "pkg")["pkgs"]
    assert deps == ["python3.12-venv"]


def test_wheel_source_from_the_master(tmp_path: Path) -> None:
    high = _with_pillar(
        tmp_path,
        {
            "source": {"wheel": "salt://sre_agent/files/wheels/sre_tools-0.1.0-py3-none-any.whl"},
            "install_into_salt": True,
        },
    )
    wheel = "/opt/sre-tools/wheels/sre_tools-0.1.0-py3-none-any.whl"
    copied = state_args(high["sre_agent-package-install-file-managed"], "file")
    assert copied["name"] == wheel and "source_hash" not in copied
    assert state_args(high["sre_agent-package-install-pip-installed"], "pip")["name"] == wheel
    into_salt = state_args(high["sre_agent-package-install-pip-installed-salt"], "pip")
    assert into_salt == {"name": wheel}


def test_wheel_url_needs_a_hash(tmp_path: Path) -> None:
    with pytest.raises(SaltError, match="wheel_hash is required"):
        _with_pillar(
            tmp_path,
            {"source": {"wheel": "https://files.example/sre_tools-0.1.0-py3-none-any.whl"}},
        )


# --- templates ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(
    highstates: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The unit files and the policy, rendered with the context the highstate passes them."""
    tmp = tmp_path_factory.mktemp("templates")
    high = highstates["Debian"]
    units = state_args(high["sre_agent-service-running-file-managed"], "file")
    policy = state_args(high["sre_agent-config-file-file-managed"], "file")
    jobs = [
        ("service", "sre-health.service.jinja", "sre_agent", units["context"]["sre_agent"]),
        ("timer", "sre-health.timer.jinja", "sre_agent", units["context"]["sre_agent"]),
        ("policy", "health.yaml.jinja", "policy", policy["context"]["policy"]),
    ]

    def render(name: str, template: str, key: str, context: Any) -> str:
        conf = local_minion_config(tmp / name, grains=GRAINS["Debian"])
        source = f"salt://sre_agent/files/default/{template}"
        return get_template(conf, source, tmp / f"{name}.out", **{key: context})

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {job[0]: pool.submit(render, *job) for job in jobs}
        return {name: future.result() for name, future in futures.items()}


def test_service_unit(rendered: dict[str, str]) -> None:
    unit = rendered["service"]
    assert unit.startswith("# This file is managed by Salt")
    assert (
        "ExecStart=/opt/sre-tools/venv/bin/sre health --json --config /etc/sre-tools/health.yaml"
        in unit
    )
    assert "StandardOutput=truncate:/var/lib/sre-tools/health.json" in unit
    assert "SuccessExitStatus=1 2" in unit and "NoNewPrivileges=yes" in unit
    assert "Environment=SRE_HEALTH_STATE=/var/lib/sre-tools/health-state.json" in unit


def test_timer_unit(rendered: dict[str, str]) -> None:
    timer = rendered["timer"]
    for line in (
        "OnCalendar=*:0/5",
        "RandomizedDelaySec=30",
        "Unit=sre-health.service",
        "WantedBy=timers.target",
    ):
        assert line in timer


def test_policy_file_loads_in_sre_tools(rendered: dict[str, str]) -> None:
    from sre_tools.health.policy import load_policy

    text = rendered["policy"]
    assert text.startswith("# This file is managed by Salt")
    policy = load_policy(config_text=text, source="health.yaml")
    assert policy.name == "h100-sxm-8"
    assert policy.get("expected_gpus") == 8 and policy.get("xid.backfill_seconds") == 86400


# --- salt-lint ---------------------------------------------------------------------------------


def test_salt_lint_is_clean() -> None:
    try:
        lint = salt_bin("salt-lint")
    except SaltMissingError as exc:
        pytest.fail(f"{exc} (salt-lint ships in the salt extra)", pytrace=False)
    files = sorted(str(p) for p in SALT_DIR.rglob("*.sls"))
    proc = subprocess.run([lint, *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
