"""benchmarks/bench_fanout.py: ``salt '*' gpu.health`` against Ansible's gpu_health module.

The smoke test (marker ``molecule``: podman, runc, root) runs the real script on 2 nodes for 1
round and reads what it printed and wrote: both front ends reported, for both nodes, the status
the recording gives, and the table carries the ratio. No timing is asserted. The parsing tests
beside it run in the default suite: a node with a wrong, missing or failed report must count as
a failure, never as a report.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import reports
from tests.helpers.reports import finding

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_fanout.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_fanout", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench()


def report(
    status: str = "ok", findings: int = 3, source: str = "replay:/srv/recordings/gpu.json"
) -> dict[str, Any]:
    """gpu.health's answer: ``findings`` findings, the first with severity ``status``."""
    built = [finding(f"check.{i}", status if i == 0 else "ok") for i in range(findings)]
    return reports.report(*built, source=source).to_dict()


@pytest.mark.parametrize(
    ("got", "why"),
    [
        (report(), ""),
        (report(status="crit"), "status 'crit'"),
        (report(findings=2), "2 findings"),
        (report(source="live"), "not the recording"),
        ("Minion did not return. [No response]", "no report"),
        (None, "no report"),
    ],
    ids=["expected", "other-status", "fewer-findings", "not-the-replay", "salt-timeout", "none"],
)
def test_expected_report(bench: ModuleType, got: object, why: str) -> None:
    problem = bench.Expected("ok", 3).problem(got)
    assert (problem == "") if not why else (why in problem), problem


@pytest.mark.parametrize(
    ("line", "state"),
    [
        ('node1 | SUCCESS => {"changed": false, "worst": "ok"}', "SUCCESS"),
        ('node2 | FAILED! => {"msg": "gpu_health: no report"}', "FAILED!"),
        ('node3 | UNREACHABLE! => {"msg": "Host key verification failed."}', "UNREACHABLE!"),
        ('node4 | FAILED! | rc=1 => {"msg": "x"}', "FAILED!"),
    ],
    ids=["success", "failed", "unreachable", "failed-rc"],
)
def test_ansible_one_line_output(bench: ModuleType, line: str, state: str) -> None:
    m = bench.ONELINE.match(line)
    assert m and m.group(2) == state
    json.loads(m.group(3))


@pytest.mark.molecule
def test_two_nodes_one_round(tmp_path: Path) -> None:
    for tool in ("podman", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (apt-get install podman runc openssh-client)")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--nodes", "2", "--rounds", "1", "--no-reference",
         "--json", str(out)],
        capture_output=True, text=True, timeout=2400, cwd=ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["failures"] == []
    assert (result["nodes"], result["rounds"]) == (2, 1)
    rows = {row["label"]: row for row in result["rows"]}
    assert set(rows) == {
        "salt '*' gpu.health",
        "ansible -m gpu_health, warm SSH",
        "ansible -m gpu_health, cold SSH",
    }
    for label, row in rows.items():
        assert len(row["seconds"]) == 1 and row["seconds"][0] > 0, label
        # Every node, every round: "" = a report with the recording's status and findings.
        assert row["reports"]["1"] == {"node1": "", "node2": ""}, (label, row["reports"])
    assert rows["salt '*' gpu.health"]["reports"]["warm-up"] == {"node1": "", "node2": ""}

    ratio = result["ratio_ansible_over_salt"]
    assert ratio["warm"] > 0 and ratio["cold"] > 0
    table = proc.stdout
    for label in rows:
        line = next((ln for ln in table.splitlines() if ln.startswith(f"| {label} ")), "")
        assert re.search(r"\| 2\s+\| 1\s+\|.*\| 2/2\s+\|$", line), (label, table)
    m = re.search(r"ratio ansible/salt \(medians\): warm SSH ([\d.]+)x, cold SSH ([\d.]+)x", table)
    assert m, table
    assert float(m.group(1)) == pytest.approx(ratio["warm"], abs=0.01)
