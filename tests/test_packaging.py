"""Every file the package reads at run time ships in its wheel.

A node gets sre_tools from a wheel (roles/sre_agent, salt/sre_agent), so a data file that is in the
checkout but not in package-data works in tests and fails on the node. This checks the rule
against setuptools' own globbing, and builds the wheel once to look inside.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sre_tools"


def data_files() -> set[str]:
    """Non-Python files under sre_tools/, relative to the package."""
    return {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }


def test_package_data_globs_cover_every_data_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["sre_tools"]
    covered = {str(p.relative_to(PACKAGE)) for pattern in patterns for p in PACKAGE.glob(pattern)}
    missing = sorted(data_files() - covered)
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_wheel_holds_the_health_profiles_and_data(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("sre_tools-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("generic.yaml", "h100.yaml", "h100-sxm-8.yaml", "a100-sxm-8.yaml"):
        assert f"sre_tools/health/profiles/{name}" in names
    assert "sre_tools/data/versions.yml" in names
    assert "sre_tools/data/xid/README.md" in names or any(
        n.startswith("sre_tools/data/xid/") for n in names
    )
