"""Filter ``nvidia_mig_config_text``: the mig-parted configuration as YAML, validated by sre_tools.

Runs on the controller when the role templates the layouts, so a bad layout stops the play
with sre_tools' one-line message (file and field) before anything reaches a node::

    {{ {'version': 'v1', 'mig-configs': nvidia_mig_configs}
       | nvidia_mig_config_text('nvidia_mig_configs', nvidia_mig_gpu_memory) }}

sre_tools comes from the controller's Python (the virtualenv Ansible runs from) or, failing
that, from the checkout this role lives in (roles/nvidia_mig/filter_plugins/ -> repository root).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError

REPO_ROOT = Path(__file__).resolve().parents[3]


def _parse_mig_config() -> Any:
    try:
        from sre_tools.mig.config import parse_mig_config
    except ImportError:
        if (REPO_ROOT / "sre_tools" / "mig" / "config.py").is_file():
            sys.path.insert(0, str(REPO_ROOT))
            from sre_tools.mig.config import parse_mig_config
        else:
            raise AnsibleFilterError(
                "nvidia_mig: sre_tools is not importable on the controller: install sre-tools "
                "into the Python Ansible runs from"
            ) from None
    return parse_mig_config


def _plain(value: Any) -> Any:
    """Ansible's lazy containers and tagged strings as plain Python (for yaml.safe_dump)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)  # a tagged int subclass would not dump
    if isinstance(value, float):
        return float(value)
    return str(value)


def nvidia_mig_config_text(doc: Any, source: str = "nvidia_mig_configs", memory: str = "") -> str:
    """YAML text of ``doc`` once sre_tools.mig.config accepts it; else a one-line error."""
    parse = _parse_mig_config()
    from sre_tools.exceptions import SreError  # importable once _parse_mig_config found sre_tools

    text = yaml.safe_dump(_plain(doc), sort_keys=False, default_flow_style=False)
    try:
        parse(text, source, memory=memory or None)
    except SreError as exc:
        raise AnsibleFilterError(f"nvidia_mig: {exc}") from None
    return text


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"nvidia_mig_config_text": nvidia_mig_config_text}
