"""Render the dashboards to JSON files, and the Grafana provisioning file that loads them.

The committed copies live in ``sre_tools/data/dashboards/`` (``sre dashboards generate`` rewrites
them; a test checks that regenerating changes nothing).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sre_tools.dashboards import fleet, reliability, slo
from sre_tools.dashboards.builder import Dashboard
from sre_tools.exceptions import SreError, ValidationError
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


def write(
    directory: Path, grafana_dir: str = DEFAULT_GRAFANA_DIR, *, field: str | None = None
) -> list[Path]:
    """Write :func:`files` into ``directory`` (created with its parents), each file through
    :func:`sre_tools.outputs.write_text`. A ``directory`` that exists and is not one is a
    :class:`ValidationError`; one that cannot be created or written, an :class:`SreError`."""
    ensure_directory(directory, field=field)
    written = []
    for name, content in files(grafana_dir).items():
        path = directory / name
        write_text(path, content)
        written.append(path)
    return written


def ensure_directory(directory: Path, *, field: str | None = None) -> None:
    try:
        st: os.stat_result | None = os.stat(directory)
    except FileNotFoundError:
        st = None
    except OSError as exc:  # a file used as a folder on the way, a link loop, no permission
        raise SreError(f"{directory}: cannot create directory: {exc.strerror or exc}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            return
        raise ValidationError(f"{directory}: not a directory", field=field)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a dangling link, no permission, a read-only file system
        raise SreError(f"{directory}: cannot create directory: {exc.strerror or exc}") from None
