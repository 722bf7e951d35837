"""docs/exporter.md and the runbooks keep up with the code: metrics, alerts, flags, links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sre_tools.cli.exporter import exporter
from sre_tools.exporter import metric_names as c
from tests.exporter.test_alert_rules import RULES, _anchors

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "exporter.md"
OWN_RUNBOOKS = sorted(
    p for p in (ROOT / "runbooks").glob("gpu-*.md") if p.name != "gpu-xid.md"
)  # gpu-xid.md belongs to the XID pipeline


def test_every_metric_is_documented() -> None:
    text = DOC.read_text()
    missing = [m.name for m in c.METRICS if f"`{m.name}`" not in text]
    assert missing == []


def test_every_alert_is_documented_with_its_runbook() -> None:
    text = DOC.read_text()
    doc = yaml.safe_load(RULES.read_text())
    for rule in (r for g in doc["groups"] for r in g["rules"]):
        row = next((line for line in text.splitlines() if f"| `{rule['alert']}` |" in line), None)
        assert row is not None, rule["alert"]
        assert f"../{rule['annotations']['runbook_url']}" in row, rule["alert"]
        assert f"| {rule['labels']['severity']} |" in row, rule["alert"]


def test_every_flag_is_documented() -> None:
    text = DOC.read_text()
    for param in exporter.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                assert re.search(rf"{re.escape(opt)}(?![a-z-])", text), opt


@pytest.mark.parametrize("path", [DOC, *OWN_RUNBOOKS], ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        assert resolved.is_file(), f"{path.name}: {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{path.name}: {target}"


@pytest.mark.parametrize("path", OWN_RUNBOOKS, ids=lambda p: p.name)
def test_runbooks_cover_diagnosis_and_escalation(path: Path) -> None:
    text = path.read_text()
    assert "## Diagnosis" in text
    assert "sre health" in text or "sre exporter" in text
    if path.name != "gpu-exporter.md":
        assert "## Escalation" in text
        assert "nvidia-bug-report.sh" in text
        assert "serial" in text
