#!/usr/bin/python
# Copyright: sre-tools contributors
# Apache License 2.0 (see the repository's pyproject.toml)
"""Ansible module ``gpu_health``: the node's GPU health report from sre_tools.

Thin by design: it runs ``sre health --json`` (the node's sre_tools, installed by the sre_agent
role) or, where this interpreter can import ``sre_tools``, the same engine in process; it never
judges the result. Failing a host on a CRIT finding is the playbook's decision (validate.yml).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_health
short_description: Run the sre_tools GPU health checks on a node and return the findings
description:
  - Runs every sre_tools health check once on the target node (NVML, PCIe, NVLink, XID kernel
    log, InfiniBand, MIG, ...) and returns the engine's versioned report, the problems it found,
    the worst severity and the actions they require.
  - Uses the node's C(sre) command (C(sre health --json), run as an argument list, never through
    a shell) or, when the module's Python can import C(sre_tools), the same engine in process.
  - Read-only; it never changes the node, so it always reports C(changed=false) and runs
    unchanged in check mode.
  - Fails only when the checks cannot run (no sre_tools, an invalid policy or recording, output
    that is not a report). A report with CRIT findings is a successful module run; what to do
    with it is the playbook's decision (see C(playbooks/validate.yml)).
version_added: "0.1.0"
author:
  - sre-tools contributors
options:
  sre_command:
    description:
      - Path of the node's C(sre) command, the sre_agent role's virtual environment.
      - Used when I(method=cli), and when I(method=auto) and the file is executable.
    type: path
    default: /opt/sre-tools/venv/bin/sre
  method:
    description:
      - C(cli) runs I(sre_command); C(python) imports C(sre_tools) into the module's Python;
        C(auto) uses C(cli) when I(sre_command) is executable, else C(python).
    type: str
    choices: [auto, cli, python]
    default: auto
  profile:
    description:
      - Policy profile shipped with sre_tools (C(generic), C(h100-sxm-8), C(a100-sxm-8)).
      - Overrides the profile a I(policy_file) names.
    type: str
  policy_file:
    description:
      - Site policy YAML on the node (sre_tools.health.policy keys), e.g. the sre_agent role's
        C(/etc/sre-tools/health.yaml).
    type: path
  policy:
    description:
      - "Policy keys to override on top of the profile and I(policy_file), as a nested mapping
        (C({infiniband: {expected_rate_gbps: 400}})). Unknown keys fail the module with the
        key named. A C(profile) key names the profile, as in a site policy file (the
        I(profile) option wins), so the sre_agent role's C(sre_agent_policy) can be passed
        as it is."
      - Combined with I(policy_file), the file is read with PyYAML, which the module's Python
        must have.
    type: dict
  expected_gpus:
    description:
      - GPUs the node must show (policy key C(expected_gpus)); fewer is CRIT.
      - Unset keeps the profile's value (C(generic) derives it from the PCI bus).
    type: int
  replay:
    description:
      - A recorded NVML session (C(sre gpu capture), C(tests/fixtures/gpu/)) on the node to play
        back instead of the live GPUs, for nodes without a GPU and for tests.
    type: path
  host:
    description:
      - Name the report carries in C(host), normally the Slurm node name
        (C(inventory_hostname_short)). The remediation engine resumes a node only with a report
        for that node.
      - Unset, the report keeps the engine's name (the node's host name, or the recording's).
    type: str
  state_file:
    description:
      - Counter state file for rates (XID, replay and remapping counters between runs).
      - Unset, a live run uses sre_tools' default (C($XDG_STATE_HOME/sre-tools)); a replay
        keeps no state.
    type: path
  timeout:
    description:
      - Collection watchdog in seconds (default the policy's C(collection.timeout_seconds)).
        The whole C(sre) command is given this plus 60 seconds.
    type: float
notes:
  - Check mode is supported and behaves exactly like a normal run (the checks only read).
  - The return values C(findings), C(worst), C(actions) and C(summary) are derived from
    C(report), the unchanged output of C(sre health --json) (schema version 1); the C(sre
    ansible) command reads them from ansible-runner events (task action C(gpu_health),
    C(event_data.res)).
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Check the GPUs of every node.
  gpu_health:
    profile: h100-sxm-8
    expected_gpus: 8
    host: "{{ inventory_hostname_short }}"
  register: health

- name: Fail nodes with a CRIT finding.
  ansible.builtin.fail:
    msg: "{{ health.actions | join(', ') }}: {{ health.findings | map(attribute='summary') }}"
  when: health.worst == 'crit'

- name: Play back a recorded fault on a machine without a GPU.
  gpu_health:
    replay: /srv/recordings/dbe-volatile.json
    method: python
"""

RETURN = r"""
worst:
  description: Worst severity of the report (C(ok), C(unknown), C(warn), C(crit)); skipped
    findings count as C(ok).
  returned: success
  type: str
  sample: crit
action:
  description: The one action the report asks for, the most disruptive among WARN/CRIT findings
    (C(none) when healthy).
  returned: success
  type: str
  sample: reset_gpu
actions:
  description: Every distinct action WARN/CRIT findings require, most disruptive first
    (C(none) and duplicates left out; empty when nothing is required).
  returned: success
  type: list
  elements: str
  sample: [reset_gpu, restart_app]
findings:
  description: The problems, that is the report's findings with severity C(warn), C(crit) or
    C(unknown), in the engine's dict form; C(report.findings) has all of them.
  returned: success
  type: list
  elements: dict
  contains:
    check:
      description: Stable check id.
      type: str
      sample: ecc.uncorrected_volatile
    severity:
      description: C(warn), C(crit) or C(unknown).
      type: str
    action:
      description: What this finding requires (C(none), C(restart_app), C(reset_gpu),
        C(reboot), C(rma_candidate), ...).
      type: str
    summary:
      description: One line for people.
      type: str
    gpu:
      description: C(index), C(uuid), C(pci_bus_id), C(mig) of the GPU concerned, or null for
        the node.
      type: dict
    evidence:
      description: The readings behind the finding.
      type: dict
  sample:
    - check: ecc.uncorrected_volatile
      severity: crit
      action: reset_gpu
      summary: "GPU 0: 1 uncorrectable (double-bit) ECC error(s) since the last reset"
      gpu: {index: 0, uuid: GPU-8e1f..., pci_bus_id: "00000000:18:00.0", mig: null}
      evidence: {volatile_dbe: 1}
summary:
  description: Number of findings per severity, and in all.
  returned: success
  type: dict
  sample: {ok: 26, warn: 0, crit: 1, unknown: 0, skipped: 3, total: 30}
exit_code:
  description: The report's Nagios code (0 ok, 1 warning, 2 critical, 3 unknown).
  returned: success
  type: int
  sample: 2
host:
  description: The report's host (I(host) when given).
  returned: success
  type: str
  sample: gpu-h100-001
source:
  description: C(nvml), or C(replay:<file>) for a recording.
  returned: success
  type: str
  sample: nvml
method:
  description: How the checks ran (C(cli) or C(python)).
  returned: success
  type: str
  sample: cli
cmd:
  description: The argument list run (I(method=cli) only).
  returned: when method is cli
  type: list
  elements: str
report:
  description: The full versioned report, exactly as C(sre health --json) prints it
    (C(schema_version) 1, C(host), C(at) ISO-8601 UTC, C(source), C(duration_seconds),
    C(status), C(exit_code), C(action), C(findings) with OK and skipped ones too), except that
    C(host) is I(host) when given.
  returned: success
  type: dict
"""

import copy  # noqa: E402 (Ansible modules import after DOCUMENTATION)
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

SCHEMA_VERSION = 1
SEVERITIES = ("ok", "warn", "crit", "unknown", "skipped")
PROBLEMS = ("warn", "crit", "unknown")
# The engine's Action enum order, least to most disruptive (sre_tools.health.model.Action).
ACTION_ORDER = (
    "none",
    "restart_app",
    "restart_fabric_manager",
    "reset_gpu",
    "drain_and_reset",
    "reboot",
    "power_cycle",
    "check_mechanicals",
    "contact_support",
    "rma_candidate",
)
# `sre health` exits with the report's Nagios code; a report is on stdout for each of them.
REPORT_EXIT_CODES = (0, 1, 2, 3)
CLI_TIMEOUT_MARGIN_SECONDS = 60
DEFAULT_CLI_TIMEOUT_SECONDS = 300


class GpuHealthError(Exception):
    """The checks could not run or gave no report; the message is for the module's failure."""


def _merge(base, over):
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_policy_file(path):
    try:
        import yaml
    except ImportError:
        raise GpuHealthError(
            "policy_file with policy/expected_gpus: the module's Python has no PyYAML to read "
            f"{path}; put the keys into the policy file instead, or use method=python with the "
            "sre_tools virtual environment's Python"
        ) from None
    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise GpuHealthError(f"{path}: cannot read: {reason}") from None
    except yaml.YAMLError as exc:
        raise GpuHealthError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GpuHealthError(f"{path}: expected a mapping at the top level")
    return data


def site_policy(params):
    """The site policy overrides as a dict, or None when the policy file (if any) is enough."""
    over = dict(params["policy"] or {})
    if params["expected_gpus"] is not None:
        if params["expected_gpus"] < 0:
            raise GpuHealthError("expected_gpus: must not be negative")
        over["expected_gpus"] = params["expected_gpus"]
    if not over:
        return None
    if "extends" in over:
        raise GpuHealthError("policy: extends is for shipped profiles; set profile instead")
    base = _read_policy_file(params["policy_file"]) if params["policy_file"] else {}
    return _merge(base, over)


def summarize(report, host=None):
    """The module's return values from a `sre health --json` report (schema version 1)."""
    if not isinstance(report, dict):
        raise GpuHealthError(f"sre health printed {type(report).__name__}, not a report object")
    version = report.get("schema_version")
    if version != SCHEMA_VERSION:
        raise GpuHealthError(
            f"unsupported report schema_version {version!r} (this module reads {SCHEMA_VERSION})"
        )
    findings = report.get("findings")
    if not isinstance(findings, list) or not all(isinstance(f, dict) for f in findings):
        raise GpuHealthError("report: findings must be a list of objects")
    if host:
        report = dict(report, host=host)
    counts = {sev: 0 for sev in SEVERITIES}
    for f in findings:
        sev = f.get("severity")
        counts[sev] = counts.get(sev, 0) + 1
    counts["total"] = len(findings)
    problems = [f for f in findings if f.get("severity") in PROBLEMS]
    required = {
        f.get("action")
        for f in findings
        if f.get("severity") in ("warn", "crit") and f.get("action") not in (None, "none")
    }
    rank = {a: i for i, a in enumerate(ACTION_ORDER)}
    actions = sorted(required, key=lambda a: (-rank.get(a, len(rank)), str(a)))
    return {
        "worst": report.get("status"),
        "action": report.get("action"),
        "actions": actions,
        "findings": problems,
        "summary": counts,
        "exit_code": report.get("exit_code"),
        "host": report.get("host"),
        "source": report.get("source"),
        "report": report,
    }


def run_cli(params, policy, tmpdir):
    argv = [params["sre_command"], "health", "--json"]
    if params["profile"]:
        argv += ["--profile", params["profile"]]
    config = params["policy_file"]
    if policy is not None:
        config = os.path.join(tmpdir, "gpu_health_policy.json")
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(policy, stream)  # JSON is YAML: `sre health --config` reads it
    if config:
        argv += ["--config", config]
    if params["replay"]:
        argv += ["--replay", params["replay"]]
    if params["state_file"]:
        argv += ["--state", params["state_file"]]
    timeout = DEFAULT_CLI_TIMEOUT_SECONDS
    if params["timeout"] is not None:
        argv += ["--timeout", "{:g}".format(params["timeout"])]
        timeout = int(params["timeout"]) + CLI_TIMEOUT_MARGIN_SECONDS
    env = dict(os.environ, NO_COLOR="1")
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise GpuHealthError(f"{argv[0]} health timed out after {timeout}s") from None
    except OSError as exc:
        raise GpuHealthError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    rc, out, err = proc.returncode, proc.stdout, proc.stderr
    if rc not in REPORT_EXIT_CODES:
        raise GpuHealthError(f"{' '.join(argv[:2])} exited {rc}: {(err or out).strip()[-2000:]}")
    try:
        report = json.loads(out)
    except ValueError:
        message = (err or out).strip()[-2000:] or "no output"
        if message.startswith("sre: error: "):  # str.removeprefix needs Python 3.9
            message = message[len("sre: error: ") :]
        raise GpuHealthError(f"no report (sre health exited {rc}): {message}") from None
    return report, argv


def run_python(params, policy):
    try:
        from pathlib import Path

        from sre_tools.exceptions import SreError
        from sre_tools.health.policy import load_policy, load_policy_file
        from sre_tools.health.runner import counter_state, run_replay_or_live
    except ImportError as exc:
        raise GpuHealthError(
            f"method=python: sre_tools is not importable from the module's Python ({exc}); set "
            "ansible_python_interpreter to the sre_tools virtual environment's Python, or use "
            "method=cli with sre_command"
        ) from None
    try:
        if policy is not None:
            source = params["policy_file"] or "<gpu_health policy>"
            loaded = load_policy(params["profile"] or None, json.dumps(policy), source)
        else:
            path = Path(params["policy_file"]) if params["policy_file"] else None
            loaded = load_policy_file(path, params["profile"] or None)
        replay = params["replay"] or None
        state_file = Path(params["state_file"]) if params["state_file"] else None
        report = run_replay_or_live(
            loaded,
            replay=replay,
            state=counter_state(replay, state_file),
            timeout=params["timeout"],
        )
    except SreError as exc:
        raise GpuHealthError(f"sre_tools: {exc}") from None
    except OSError as exc:
        raise GpuHealthError(
            "sre_tools: {}: {}".format(exc.filename or "", exc.strerror or exc)
        ) from None
    return report.to_dict()


def choose_method(params):
    method = params["method"]
    if method == "auto":
        command = params["sre_command"]
        method = "cli" if command and os.access(command, os.X_OK) else "python"
    elif method == "cli" and not os.access(params["sre_command"], os.X_OK):
        raise GpuHealthError(
            "sre_command {} is not an executable file: install sre_tools (the sre_agent role) "
            "or set sre_command".format(params["sre_command"])
        )
    return method


def main():
    module = AnsibleModule(
        argument_spec={
            "sre_command": {"type": "path", "default": "/opt/sre-tools/venv/bin/sre"},
            "method": {"type": "str", "default": "auto", "choices": ["auto", "cli", "python"]},
            "profile": {"type": "str"},
            "policy_file": {"type": "path"},
            "policy": {"type": "dict"},
            "expected_gpus": {"type": "int"},
            "replay": {"type": "path"},
            "host": {"type": "str"},
            "state_file": {"type": "path"},
            "timeout": {"type": "float"},
        },
        supports_check_mode=True,
    )
    params = module.params
    result = {"changed": False}
    try:
        if params["timeout"] is not None and not 0 < params["timeout"] <= 600:
            raise GpuHealthError(
                "timeout: expected 0 < seconds <= 600, got {:g}".format(params["timeout"])
            )
        policy = site_policy(params)
        method = choose_method(params)
        result["method"] = method
        if method == "cli":
            report, argv = run_cli(params, policy, module.tmpdir)
            result["cmd"] = argv
        else:
            report = run_python(params, policy)
        result.update(summarize(report, params["host"]))
    except GpuHealthError as exc:
        error = str(exc)
    else:
        module.exit_json(**result)
    # Outside the except block: a failure is a message, not a traceback.
    module.fail_json(msg=f"gpu_health: {error}", **result)


if __name__ == "__main__":
    main()
