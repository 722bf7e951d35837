"""Every formula's map.jinja gives the settings recorded in a golden file, per platform and pillar.

The loader (defaults, versions, grain layers, pillar lookup and pillar) lives once in
salt/sre_map.jinja; each formula's map.jinja calls it with its name and adds its own checks and
derived values. These golden files hold the whole ``mapdata`` of every formula for a few minions
(grains pinned, pillar from salt/pillar), so a change to the shared loader that changes what any
formula sees fails here. Regenerate after an intended change with

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/salt/test_map_stack.py

and review the diff like any other code change.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.salt import SALT_DIR, SaltError, local_minion_config, salt_call

GOLDEN_DIR = Path(__file__).parent / "golden" / "mapdata"
FORMULAS = sorted(p.parent.name for p in SALT_DIR.glob("*/map.jinja"))
# Every grain a map.jinja reads, pinned so the result does not depend on this machine.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "debian12-h100": (
        "gpu-node-01",
        {
            "os_family": "Debian",
            "os": "Debian",
            "osfinger": "Debian-12",
            "osrelease": "12",
            "osmajorrelease": 12,
            "oscodename": "bookworm",
            "osarch": "amd64",
            "cpuarch": "x86_64",
            "kernelrelease": "6.1.0-37-amd64",
            "host": "gpu-node-01",
        },
    ),
    "ubuntu2204-a100": (
        "gpu-a100-01",
        {
            "os_family": "Debian",
            "os": "Ubuntu",
            "osfinger": "Ubuntu-22.04",
            "osrelease": "22.04",
            "osmajorrelease": 22,
            "oscodename": "jammy",
            "osarch": "arm64",
            "cpuarch": "aarch64",
            "kernelrelease": "5.15.0-140-generic",
            "host": "gpu-a100-01",
        },
    ),
    # No pillar for this minion id (salt/pillar/top.sls matches gpu-*): the formulas' defaults.
    "rocky9-nopillar": (
        "cpu-node-02",
        {
            "os_family": "RedHat",
            "os": "Rocky",
            "osfinger": "Rocky Linux-9",
            "osrelease": "9.5",
            "osmajorrelease": 9,
            "oscodename": "Blue Onyx",
            "osarch": "x86_64",
            "cpuarch": "x86_64",
            "kernelrelease": "5.14.0-503.14.1.el9_5.x86_64",
            "host": "cpu-node-02",
        },
    ),
}
TEMPLATE = '{%- from tpldir ~ "/map.jinja" import mapdata with context %}{{ mapdata | json }}'


def render_mapdata(workdir: Path, case: str, formula: str, file_root: Path = SALT_DIR) -> Any:
    """The formula's mapdata for the case's minion, or the error its checks raise."""
    minion_id, grains = CASES[case]
    conf = local_minion_config(
        workdir / case / formula,
        minion_id=minion_id,
        grains=grains,
        file_root=file_root,
        pillar_root=file_root / "pillar",
    )
    try:
        text = salt_call(
            conf,
            "slsutil.renderer",
            f"string={TEMPLATE}",
            "default_renderer=jinja",
            f"tpldir={formula}",
            f"sls={formula}.map",
        )
    except SaltError as exc:
        marker = "TemplateError: "
        line = next((x for x in str(exc).splitlines() if marker in x), None)
        if line is None:
            raise
        return {"render_error": line.split(marker, 1)[1].strip()}
    return json.loads(text)


def render_case(workdir: Path, case: str, file_root: Path = SALT_DIR) -> dict[str, Any]:
    # Independent salt-call processes (own root_dir each): two at a time.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {f: pool.submit(render_mapdata, workdir, case, f, file_root) for f in FORMULAS}
        return {formula: future.result() for formula, future in futures.items()}


def test_every_formula_has_a_map() -> None:
    assert len(FORMULAS) == 9, FORMULAS


def test_every_map_uses_the_shared_loader() -> None:
    for formula in FORMULAS:
        text = (SALT_DIR / formula / "map.jinja").read_text(encoding="utf-8")
        assert '{%- from "sre_map.jinja" import mapstack with context %}' in text, formula
        assert f'mapstack(mapdata, "{formula}"' in text, formula
        assert "pillar.get" not in text.split("mapstack(mapdata", 1)[0], formula


@pytest.mark.parametrize("case", sorted(CASES))
def test_mapdata_matches_golden_file(tmp_path: Path, case: str) -> None:
    got = render_case(tmp_path, case)
    golden = GOLDEN_DIR / f"{case}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert golden.exists(), "golden file missing: run with UPDATE_GOLDEN=1"
    expected = json.loads(golden.read_text(encoding="utf-8"))
    for formula in FORMULAS:
        assert got[formula] == expected[formula], f"{formula}: mapdata changed for {case}"
