"""Render the dashboards to JSON files, and the Grafana provisioning file that loads them.

The committed copies live in ``sre_tools/data/dashboards/`` (``sre dashboards generate`` rewrites
them; a test checks that regenerating changes nothing).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sre_tools.dashboards import fleet, reliability, slo
from sre_tools.dashboards.builder import Dashboard
from sre_tools.outputs import write_text

DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "gpu-fleet": fleet.dashboard,
    "slos": slo.dashboard,
    "reliability": reliability.dashboard,
}
PROVISIONING_NAME = "sre-tools.yml"
DEFAULT_GRAFANA_DIR = "/var/lib/grafana/dashboards/sre-tools"


def packaged_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "dashboards"


def render(dashboard: Dashboard) -> str:
    return json.dumps(dashboard.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def provisioning(path: str = DEFAULT_GRAFANA_DIR, folder: str = "SRE tools") -> str:
    """A Grafana dashboard provider (``apiVersion: 1``) loading every JSON file under ``path``."""
    return (
        "# Grafana dashboard provisioning for the sre_tools dashboards (written by\n"
        "# sre dashboards generate); copy to /etc/grafana/provisioning/dashboards/.\n"
        "---\n"
        "apiVersion: 1\n"
        "providers:\n"
        "  - name: sre-tools\n"
        "    orgId: 1\n"
        f"    folder: {json.dumps(folder)}\n"
        "    folderUid: sre-tools\n"
        "    type: file\n"
        "    disableDeletion: true\n"
        "    allowUiUpdates: false\n"
        "    updateIntervalSeconds: 60\n"
        "    options:\n"
        f"      path: {json.dumps(path)}\n"
        "      foldersFromFilesStructure: false\n"
    )


def files(grafana_dir: str = DEFAULT_GRAFANA_DIR) -> dict[str, str]:
    """File name -> content of everything ``sre dashboards generate`` writes."""
    out = {f"{name}.json": render(build()) for name, build in DASHBOARDS.items()}
    out[PROVISIONING_NAME] = provisioning(grafana_dir)
    return out


def dashboards_json() -> dict[str, dict[str, Any]]:
    return {name: build().to_json() for name, build in DASHBOARDS.items()}


def write(directory: Path, grafana_dir: str = DEFAULT_GRAFANA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in files(grafana_dir).items():
        path = directory / name
        write_text(path, content)
        written.append(path)
    return written
