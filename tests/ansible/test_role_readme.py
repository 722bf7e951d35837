"""Each role's README variable table is what scripts/role-readme-vars.py writes from the specs.

The table lies between markers in roles/<role>/README.md; a spec change (an option added, a
default or description changed) without ``scripts/role-readme-vars.py --write`` fails here.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.ansible.conftest import ROLES, ROLES_DIR, ROOT

SCRIPT = ROOT / "scripts" / "role-readme-vars.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("role_readme_vars", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


readme_vars = _load()


@pytest.mark.parametrize("role", ROLES)
def test_readme_table_matches_the_specs(role: str) -> None:
    readme = (ROLES_DIR / role / "README.md").read_text(encoding="utf-8")
    assert readme_vars.render(role, readme) == readme, (
        f"roles/{role}/README.md differs from meta/argument_specs.yml: "
        "run scripts/role-readme-vars.py --write"
    )


@pytest.mark.parametrize("role", ROLES)
def test_readme_table_has_a_row_per_option(role: str) -> None:
    specs = yaml.safe_load((ROLES_DIR / role / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    readme = (ROLES_DIR / role / "README.md").read_text(encoding="utf-8")
    table = readme.split(readme_vars.BEGIN, 1)[1].split(readme_vars.END, 1)[0]
    rows = [line.split("|")[1].strip().strip("`") for line in table.splitlines()[3:]]
    assert rows == list(options)


def test_check_fails_on_a_stale_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n"
        "      demo_enabled:\n        type: bool\n        default: true\n"
        "        description: [Turn C(demo) on.]\n"
    )
    (role / "defaults" / "main.yml").write_text("demo_enabled: true\n")
    readme = role / "README.md"
    readme.write_text(f"# demo\n\n{readme_vars.BEGIN}\n| old |\n{readme_vars.END}\n\nTags.\n")
    monkeypatch.setattr(readme_vars, "ROLES_DIR", tmp_path / "roles")
    assert readme_vars.main(["--check", "demo"]) == 1
    assert readme_vars.main(["--write", "demo"]) == 0
    assert readme.read_text() == (
        f"# demo\n\n{readme_vars.BEGIN}\n"
        "| Variable | Type | Default | Meaning |\n|---|---|---|---|\n"
        f"| `demo_enabled` | bool | `true` | Turn `demo` on. |\n{readme_vars.END}\n\nTags.\n"
    )
    assert readme_vars.main(["--check", "demo"]) == 0


def test_script_runs_on_the_repository() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
