#!/usr/bin/python
"""Ansible module mig_assert: compare the GPUs' MIG layout with a mig-parted config (read-only)."""

from __future__ import annotations

import json
import os

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: mig_assert
short_description: Report drift between the GPUs' MIG layout and a mig-parted configuration
description:
  - Runs the sre-tools health engine's C(mig.layout) and C(mig.pending) checks (the logic behind
    Salt's C(gpu.mig_assert)) with the sre-tools virtualenv installed on the node, against NVML
    or a recording, and returns whether the layout matches O(config_name) of O(config_file).
  - Read-only: never changes a GPU, and always returns C(changed=false). Apply layouts with
    nvidia-mig-parted on a drained node (the nvidia_mig role's apply step).
  - Supports check mode (it does the same read either way).
version_added: "0.1.0"
author:
  - SRE tools maintainers
options:
  config_file:
    description: Path of the mig-parted configuration on the node (C(version: v1), C(mig-configs)).
    type: path
    required: true
  config_name:
    description: The entry of C(mig-configs) the GPUs should match.
    type: str
    required: true
  venv:
    description: The virtualenv sre-tools is installed in (the sre_agent role's C(sre_agent_venv)).
    type: path
    default: /opt/sre-tools/venv
  profile:
    description: Health policy profile (C(generic), C(h100-sxm-8), C(a100-sxm-8)).
    type: str
  policy:
    description: Health policy file on the node; wins over O(profile).
    type: path
  replay:
    description:
      - A recording (C(sre gpu capture)) read instead of NVML; for test targets without GPUs.
    type: path
  timeout:
    description: Collection watchdog in seconds.
    type: float
    default: 60
  fail_on_drift:
    description: Fail (still without changing anything) when the layout differs.
    type: bool
    default: false
requirements:
  - sre-tools installed in O(venv) on the node (the sre_agent role)
"""

EXAMPLES = r"""
- name: Check that the GPUs match the selected MIG layout.
  mig_assert:
    config_file: /etc/nvidia-mig-manager/sre-config.yaml
    config_name: all-1g.10gb
  register: mig

- name: Report drift.
  ansible.builtin.debug:
    msg: "{{ mig.drift | map(attribute='summary') | list }}"
  when: not mig.in_sync

- name: On a node without GPUs (CI), read a recording instead of NVML.
  mig_assert:
    config_file: /etc/nvidia-mig-manager/sre-config.yaml
    config_name: all-disabled
    replay: /var/lib/sre-tools/replay.json
    fail_on_drift: true
"""

RETURN = r"""
in_sync:
  description: True when no C(mig.*) finding is above OK or skipped.
  returned: success
  type: bool
drift:
  description:
    - The C(mig.*) findings that are not OK or skipped (check, severity, summary, gpu,
      evidence).
  returned: success
  type: list
  elements: dict
findings:
  description: Every C(mig.*) finding of the run.
  returned: success
  type: list
  elements: dict
source:
  description: Where the readings came from (C(nvml) or C(replay:<file>)).
  returned: success
  type: str
host:
  description: The host name the health engine reports.
  returned: success
  type: str
"""

# Runs with the virtualenv's Python: the same calls as salt/_modules/gpu.py's mig_assert. Prints
# one JSON object; a sre-tools error is one line on stderr and exit status 2.
PROGRAM = r"""
import copy, json, sys
from pathlib import Path
from sre_tools.exceptions import SreError, ValidationError
from sre_tools.health.policy import Policy, load_policy_file
from sre_tools.health.runner import run_replay_or_live
from sre_tools.health.state import CounterState
from sre_tools.mig.config import parse_mig_config

args = json.loads(sys.argv[1])
try:
    try:
        text = Path(args["config_file"]).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValidationError(f"cannot read: {reason}", source=args["config_file"]) from None
    parsed = parse_mig_config(text, args["config_file"])
    if args["config_name"] not in parsed.configs:
        known = ", ".join(sorted(parsed.configs))
        raise ValidationError(
            f"no config named {args['config_name']!r} (known: {known})",
            source=args["config_file"], field="mig-configs",
        )
    policy = Path(args["policy"]) if args["policy"] else None
    base = load_policy_file(policy, args["profile"] or None)
    data = copy.deepcopy(base.data)
    data["mig"] = {**data.get("mig", {}), "config_file": args["config_file"],
                   "config_name": args["config_name"]}
    report = run_replay_or_live(Policy(data), replay=args["replay"] or None,
                                state=CounterState(None), timeout=args["timeout"])
except SreError as exc:
    sys.stderr.write(f"{exc}\n")
    sys.exit(2)
findings = [f.to_dict() for f in report.findings if f.check.startswith("mig.")]
print(json.dumps({"host": report.host, "source": report.source, "findings": findings}))
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config_file": {"type": "path", "required": True},
            "config_name": {"type": "str", "required": True},
            "venv": {"type": "path", "default": "/opt/sre-tools/venv"},
            "profile": {"type": "str"},
            "policy": {"type": "path"},
            "replay": {"type": "path"},
            "timeout": {"type": "float", "default": 60.0},
            "fail_on_drift": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    python = os.path.join(p["venv"], "bin", "python")
    if not os.access(python, os.X_OK):
        module.fail_json(
            msg=f"mig_assert: {python} not found: install sre-tools there (the sre_agent role) "
            "or set venv",
            changed=False,
        )
    args = {key: p[key] for key in ("config_file", "config_name", "profile", "policy", "replay")}
    args["timeout"] = p["timeout"]
    rc, out, err = module.run_command(
        [python, "-c", PROGRAM, json.dumps(args)], check_rc=False, environ_update={"LC_ALL": "C"}
    )
    if rc != 0:
        message = (err.strip().splitlines() or [f"exit status {rc}"])[-1]
        module.fail_json(msg=f"mig_assert: {message}", changed=False, rc=rc)
    try:
        report = json.loads(out)
    except ValueError:
        module.fail_json(msg=f"mig_assert: unreadable output from sre-tools: {out[:200]!r}")
    drift = [f for f in report["findings"] if f["severity"] not in ("ok", "skipped")]
    result = {
        "changed": False,
        "in_sync": not drift,
        "drift": drift,
        "findings": report["findings"],
        "source": report["source"],
        "host": report["host"],
    }
    if drift and p["fail_on_drift"]:
        summaries = "; ".join(f["summary"] for f in drift)
        module.fail_json(msg=f"mig_assert: MIG layout drift: {summaries}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
