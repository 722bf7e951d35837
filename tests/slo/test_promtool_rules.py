"""Generated rules under real promtool: ``check rules`` and ``test rules`` unit tests.

Synthetic series prove the alerting behaviour the SRE Workbook asks for: a fast burn pages, a
slow burn raises only a ticket, a healthy service and a service without traffic stay quiet, the
second page pair (6h/30m) is ORed in, and a page clears once the short window recovers.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sre_tools.slo.loader import load_texts
from sre_tools.slo.rules import generate, write

SPEC = """
version: "prometheus/v1"
service: "jobs"
labels:
  team: hpc
slos:
{slos}
"""

SLO_TMPL = """
  - name: "{name}"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(req_total{{job="{name}",code="500"}}[{{{{.window}}}}]))
        total_query: sum(rate(req_total{{job="{name}"}}[{{{{.window}}}}]))
    alerting:
      name: JobsBurn{alert}
      annotations:
        runbook_url: https://runbooks.example.test/slo
"""

SCENARIOS = {
    # name: (errors per minute, good per minute) from t=0
    "fast": "Fast",
    "slow": "Slow",
    "pageslow": "PageSlow",
    "healthy": "Healthy",
    "idle": "Idle",
    "recovered": "Recovered",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (apt-get install prometheus); the CI installs it")
    return path


@pytest.fixture(scope="module")
def rule_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    slos = "".join(SLO_TMPL.format(name=n, alert=a) for n, a in SCENARIOS.items())
    spec = SPEC.format(slos=slos)
    loaded = load_texts([("jobs.yaml", spec)])
    out = tmp_path_factory.mktemp("rules") / "slo.rules.yml"
    with out.open("w") as fh:
        write(generate(loaded), fh)
    return out


def test_promtool_check_rules_accepts_generated_rules(rule_file: Path) -> None:
    proc = subprocess.run(
        [promtool(), "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def _labels(name: str, severity: str) -> dict[str, str]:
    return {
        "severity": severity,
        "sre_severity": severity,
        "sre_id": f"jobs-{name}",
        "sre_service": "jobs",
        "sre_slo": name,
        "team": "hpc",
    }


def _annotations(name: str, severity: str, value_pct: str, pairs: str) -> dict[str, str]:
    return {
        "summary": f"jobs {name} SLO error budget burn rate is too high ({severity}).",
        "description": (
            f"jobs {name}: objective 99.9% over 30d; the error ratio ({value_pct}) burns the "
            f"budget in windows {pairs}."
        ),
        "runbook_url": "https://runbooks.example.test/slo",
    }


PAGE_PAIRS = "1h/5m above 14.4x, 6h/30m above 6x"
TICKET_PAIRS = "1d/2h above 3x, 3d/6h above 1x"


def _alert(name: str, severity: str, value_pct: str) -> dict[str, Any]:
    pairs = PAGE_PAIRS if severity == "page" else TICKET_PAIRS
    return {
        "exp_labels": _labels(name, severity),
        "exp_annotations": _annotations(name, severity, value_pct, pairs),
    }


def _series(name: str, errors: str, good: str) -> list[dict[str, str]]:
    return [
        {"series": f'req_total{{job="{name}",code="500"}}', "values": errors},
        {"series": f'req_total{{job="{name}",code="200"}}', "values": good},
    ]


def _unit_tests() -> dict[str, Any]:
    n = 300  # five hours of one-minute samples
    series = []
    # 2 % errors: a 20x burn, above 14.4 (page quick) and everything below it.
    series += _series("fast", f"0+20x{n}", f"0+980x{n}")
    # 0.5 % errors: a 5x burn, below 6 and 14.4 (no page), above 3 and 1 (ticket).
    series += _series("slow", f"0+5x{n}", f"0+995x{n}")
    # 0.7 % errors: a 7x burn, only the page's second pair (6h/30m, factor 6) catches it.
    series += _series("pageslow", f"0+7x{n}", f"0+993x{n}")
    # 0.05 % errors: burn 0.5, quiet.
    series += _series("healthy", f"0+1x{n}", f"0+1999x{n}")
    # No traffic at all: flat counters.
    series += _series("idle", f"0+0x{n}", f"0+0x{n}")
    # 10 % errors (a 100x burn) for one hour, then none.
    series += _series("recovered", "0+100x60 6000+0x239", "0+900x60 55000+1000x239")
    return {
        "rule_files": ["slo.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    # Fast burn pages (and, as a 20x burn is above 3x too, opens a ticket).
                    {
                        "eval_time": "70m",
                        "alertname": "JobsBurnFast",
                        "exp_alerts": [
                            _alert("fast", "page", "2%"),
                            _alert("fast", "ticket", "2%"),
                        ],
                    },
                    # Slow burn: a ticket only, never a page.
                    {
                        "eval_time": "3h",
                        "alertname": "JobsBurnSlow",
                        "exp_alerts": [_alert("slow", "ticket", "0.5%")],
                    },
                    # 7x: the 1h/5m pair stays quiet, the 6h/30m pair pages.
                    {
                        "eval_time": "70m",
                        "alertname": "JobsBurnPageSlow",
                        "exp_alerts": [
                            _alert("pageslow", "page", "0.7%"),
                            _alert("pageslow", "ticket", "0.7%"),
                        ],
                    },
                    {"eval_time": "4h", "alertname": "JobsBurnHealthy", "exp_alerts": []},
                    {"eval_time": "4h", "alertname": "JobsBurnIdle", "exp_alerts": []},
                    # During the burn it pages ...
                    {
                        "eval_time": "55m",
                        "alertname": "JobsBurnRecovered",
                        "exp_alerts": [
                            _alert("recovered", "page", "10%"),
                            _alert("recovered", "ticket", "10%"),
                        ],
                    },
                    # ... and 35 minutes after recovery the page has cleared: both short windows
                    # (5m, 30m) are clean although the 1h window still holds 25 minutes at 10 %
                    # (4.2 %, far above 14.4 x 0.1 %). The ticket stays: its 2h window holds
                    # 6000 errors in 95000 requests (6.316 %).
                    {
                        "eval_time": "95m",
                        "alertname": "JobsBurnRecovered",
                        "exp_alerts": [_alert("recovered", "ticket", "6.316%")],
                    },
                ],
                "promql_expr_test": [
                    # Zero traffic is an absent series (explicit no data), never NaN.
                    {
                        "expr": 'slo:sli_error:ratio_rate5m{sre_id="jobs-idle"}',
                        "eval_time": "4h",
                        "exp_samples": [],
                    },
                    {
                        "expr": 'slo:period_error_budget_remaining:ratio{sre_id="jobs-idle"}',
                        "eval_time": "4h",
                        "exp_samples": [],
                    },
                    # Period ratio computed from counters: exact 0.5 %, remaining 1 - 5 = -4.
                    {
                        "expr": 'slo:period_error_budget_remaining:ratio{sre_id="jobs-slow"}',
                        "eval_time": "4h",
                        "exp_samples": [
                            {
                                "labels": "slo:period_error_budget_remaining:ratio{"
                                'sre_id="jobs-slow",sre_service="jobs",sre_slo="slow",'
                                'team="hpc"}',
                                "value": -4,
                            }
                        ],
                    },
                    {
                        "expr": 'slo:current_burn_rate:ratio{sre_id="jobs-healthy"}',
                        "eval_time": "4h",
                        "exp_samples": [
                            {
                                "labels": 'slo:current_burn_rate:ratio{sre_id="jobs-healthy",'
                                'sre_service="jobs",sre_slo="healthy",team="hpc"}',
                                "value": 0.5,
                            }
                        ],
                    },
                    {
                        "expr": 'slo:error_budget:ratio{sre_id="jobs-fast"}',
                        "eval_time": "1m",
                        "exp_samples": [
                            {
                                "labels": 'slo:error_budget:ratio{sre_id="jobs-fast",'
                                'sre_service="jobs",sre_slo="fast",team="hpc"}',
                                "value": 0.001,
                            }
                        ],
                    },
                ],
            }
        ],
    }


def test_promtool_unit_tests_prove_alerting_behaviour(rule_file: Path) -> None:
    test_file = rule_file.parent / "slo.test.yml"
    test_file.write_text(yaml.safe_dump(_unit_tests(), sort_keys=False))
    proc = subprocess.run(
        [promtool(), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=rule_file.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
