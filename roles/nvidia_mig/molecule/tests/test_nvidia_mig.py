"""Behaviour of the nvidia_mig role on a Debian 12 systemd container (both scenarios).

nvidia-mig-parted here is the TEST FIXTURE stand-in (molecule/fixture_repo/packages/nvidia_mig.yml):
it touches no GPU and records the applied layout; the role's files, hooks, hold and drop-in are
real, and mig_assert reads the recorded NVML fixture.
"""

from __future__ import annotations

import yaml

JOURNAL_UNITS = ("nvidia-mig-manager", "sre-test-gpu-client")

DROPIN = "/etc/systemd/system/nvidia-mig-manager.service.d/10-sre-tools.conf"
CLIENT_UNIT = "sre-test-gpu-client.service"


def test_manager_installed_and_held(host, role_vars):
    pkg = host.package("nvidia-mig-manager")
    assert pkg.is_installed and pkg.version == "0.12.1-1"
    expected = "hold" if role_vars["nvidia_mig_hold"] else "install"
    selection = host.check_output("dpkg --get-selections nvidia-mig-manager").split()
    assert selection == ["nvidia-mig-manager", expected]


def test_layouts_file_is_the_variables(host, role_vars):
    conf = host.file(role_vars["nvidia_mig_config_file"])
    assert conf.mode == 0o644
    doc = yaml.safe_load(conf.content_string)
    assert doc == {"version": "v1", "mig-configs": role_vars["nvidia_mig_configs"]}


def test_layouts_file_validates_with_sre_tools_on_the_node(host, role_vars):
    venv = role_vars["nvidia_mig_sre_venv"]
    memory = role_vars["nvidia_mig_gpu_memory"] or None
    check = host.run(
        "%s/bin/python -c %s %s %s",
        venv,
        "import sys; from sre_tools.mig.config import parse_mig_config as p; "
        "f = sys.argv[1]; m = sys.argv[2] if sys.argv[2] != '-' else None; "
        "print(sorted(p(open(f).read(), f, memory=m).configs))",
        role_vars["nvidia_mig_config_file"],
        memory or "-",
    )
    assert check.rc == 0, check.stderr
    assert check.stdout.strip() == str(sorted(role_vars["nvidia_mig_configs"]))


def test_dropin_points_the_service_at_our_files(host, role_vars):
    shown = host.check_output(
        "systemctl show nvidia-mig-manager --property Environment,DropInPaths,UnitFileState"
    )
    props = dict(line.split("=", 1) for line in shown.splitlines())
    assert DROPIN in props["DropInPaths"]
    env = props["Environment"]
    assert f"MIG_PARTED_CONFIG_FILE={role_vars['nvidia_mig_config_file']}" in env
    assert f"MIG_PARTED_HOOKS_FILE={role_vars['nvidia_mig_hooks_file']}" in env
    assert f"MIG_PARTED_SELECTED_CONFIG={role_vars['nvidia_mig_selected_config']}" in env
    expected = "enabled" if role_vars["nvidia_mig_service_enabled"] else "disabled"
    assert props["UnitFileState"] == expected


def test_applied_layout(host, role_vars):
    """The stand-in mig-parted reports the selected layout applied only when the role applied it."""
    result = host.run(
        "nvidia-mig-parted assert -f %s -c %s",
        role_vars["nvidia_mig_config_file"],
        role_vars["nvidia_mig_selected_config"],
    )
    if role_vars["nvidia_mig_apply"]:
        assert result.rc == 0, result.stderr
    else:
        # Nothing applied: the stand-in starts at all-disabled, which matches only that selection.
        assert result.rc == (0 if role_vars["nvidia_mig_selected_config"] == "all-disabled" else 1)


def test_hooks_stop_and_restart_running_gpu_clients(host, role_vars):
    """The hooks script stops the configured clients that run, and starts exactly those again."""
    hooks = yaml.safe_load(host.file(role_vars["nvidia_mig_hooks_file"]).content_string)
    assert set(hooks["hooks"]) == {"pre-apply-mode", "pre-apply-config", "apply-exit"}
    script = hooks["hooks"]["pre-apply-mode"][0]["command"]
    assert hooks["hooks"]["apply-exit"][0]["args"] == ["start"]
    if CLIENT_UNIT not in role_vars["nvidia_mig_gpu_clients"]:
        assert CLIENT_UNIT not in host.file(script).content_string
        return
    unit = "[Unit]\nDescription=test GPU client\n[Service]\nExecStart=/bin/sleep infinity\n"
    host.run_expect([0], "printf '%%s' %s > /etc/systemd/system/%s", unit, CLIENT_UNIT)
    try:
        host.run_expect([0], "systemctl daemon-reload && systemctl start %s", CLIENT_UNIT)
        host.run_expect([0], "%s stop", script)
        assert not host.service(CLIENT_UNIT).is_running
        assert host.file("/run/sre-mig-hooks.stopped").content_string.split() == [CLIENT_UNIT]
        host.run_expect([0], "%s start", script)
        assert host.service(CLIENT_UNIT).is_running
        assert not host.file("/run/sre-mig-hooks.stopped").exists
        # dcgm-exporter is configured but not running: it was neither stopped nor started.
        assert not host.service("dcgm-exporter.service").is_running
    finally:
        host.run("systemctl stop %s; rm -f /etc/systemd/system/%s", CLIENT_UNIT, CLIENT_UNIT)
        host.run("systemctl daemon-reload")
