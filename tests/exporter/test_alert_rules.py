"""The GPU health alert rules under real promtool, and their runbook links.

- ``promtool check rules`` accepts the file;
- ``promtool test rules``: every alert fires on its synthetic fault series (with exactly the
  expected labels) and every alert stays quiet on a healthy node's series;
- every annotation template renders with real label data (no ``<no value>``, no template error);
- every ``runbook_url`` names a file under ``runbooks/`` and a heading in it.

promtool compares annotations exactly, so the behaviour tests run on a copy of the rules without
annotations (the labels and timing are what they prove); the rendering test runs the real file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from sre_tools.exporter import metric_names as c
from sre_tools.exporter.alerts import rules_text

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "sre_tools" / "data" / "alerts" / "gpu-health.rules.yml"
INSTANCE = "gpu-node-1:9835"
BASE = {"instance": INSTANCE, "job": c.SCRAPE_JOB}
GPU0 = {"gpu": "0", "uuid": "GPU-aaaaaaaa-0000", "pci_bus_id": "00000000:18:00.0"}
GPU1 = {"gpu": "1", "uuid": "GPU-aaaaaaaa-0001", "pci_bus_id": "00000000:2A:00.0"}
SEVERITIES = {"critical", "warning", "info"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (apt-get install prometheus); the CI installs it")
    return path


def load_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def series(metric: str, values: str, gpu: dict[str, str] | None = None, **labels: str) -> dict:
    all_labels = {**BASE, **(gpu or {}), **labels}
    text = ",".join(f'{k}="{v}"' for k, v in sorted(all_labels.items()))
    return {"series": f"{metric}{{{text}}}", "values": values}


def status(check: str, action: str, values: str, gpu: dict[str, str] | None = None) -> dict:
    return series(c.GPU_HEALTH_CHECK_STATUS, values, gpu or GPU0, check=check, action=action)


# --- the scenarios ------------------------------------------------------------------------------


@dataclass
class Scenario:
    alert: str
    input_series: list[dict[str, str]]
    eval_time: str
    # Label sets of the firing alerts (alertname and severity are added from the rule).
    expected: list[dict[str, str]]
    # Times at which the same series must not (yet, or any more) fire.
    quiet_at: list[str] = field(default_factory=list)


def gl(gpu: dict[str, str], **extra: str) -> dict[str, str]:
    return {**BASE, **gpu, **extra}


SCENARIOS = [
    Scenario(
        "GpuUncorrectedEccErrors",
        [
            series(
                c.GPU_ECC_ERRORS, "0 0 2x10", GPU0, error_type="uncorrected", counter="volatile"
            ),
            # Lifetime (aggregate) errors from before the last reset are history, not an alert.
            series(c.GPU_ECC_ERRORS, "5x12", GPU1, error_type="uncorrected", counter="aggregate"),
            series(c.GPU_ECC_ERRORS, "0+50x12", GPU1, error_type="corrected", counter="volatile"),
        ],
        "5m",
        [gl(GPU0, error_type="uncorrected", counter="volatile")],
        quiet_at=["1m"],
    ),
    Scenario(
        "GpuRowRemapFailure",
        [
            series(c.GPU_ROW_REMAP_FAILURE, "0 1x10", GPU0),
            series(c.GPU_ROW_REMAP_FAILURE, "0x11", GPU1),
        ],
        "5m",
        [gl(GPU0)],
    ),
    Scenario(
        "GpuRowRemapPending",
        [
            series(c.GPU_ROW_REMAP_PENDING, "1x20", GPU0),
            series(c.GPU_ROW_REMAP_PENDING, "0x20", GPU1),
        ],
        "10m",
        [gl(GPU0)],
        quiet_at=["3m"],  # for: 5m
    ),
    Scenario(
        "GpuMemoryHealthCritical",
        [
            status("ecc.uncorrected_volatile", "reset_gpu", "3x10"),
            status("remap.histogram", "none", "2x10", GPU1),  # a warning is not this alert
            status("pcie.width", "reset_gpu", "3x10", GPU1),  # another family
        ],
        "5m",
        [gl(GPU0, check="ecc.uncorrected_volatile", action="reset_gpu")],
    ),
    Scenario(
        "GpuTemperatureNearSlowdown",
        [
            series(c.GPU_TEMPERATURE, "85x20", GPU0),
            series(c.GPU_TEMPERATURE, "70x20", GPU1),
            *[
                series(c.GPU_TEMPERATURE_THRESHOLD, v, g, threshold=t)
                for g in (GPU0, GPU1)
                for t, v in (("slowdown", "89x20"), ("shutdown", "92x20"))
            ],
        ],
        "10m",
        [gl(GPU0)],
    ),
    Scenario(
        "GpuThermalThrottling",
        [
            # 30 s of every minute held down: 50 %.
            series(c.GPU_CLOCK_THROTTLE, "0+30x40", GPU0, reason="thermal"),
            series(c.GPU_CLOCK_THROTTLE, "0+1x40", GPU1, reason="thermal"),
            series(c.GPU_CLOCK_THROTTLE, "0+60x40", GPU1, reason="power"),
        ],
        "25m",
        [gl(GPU0, reason="thermal")],
    ),
    Scenario(
        "GpuThermalHealthCritical",
        [
            status("thermal.gpu", "check_mechanicals", "3x10"),
            status("thermal.hbm", "none", "0x10", GPU1),
        ],
        "5m",
        [gl(GPU0, check="thermal.gpu", action="check_mechanicals")],
    ),
    Scenario(
        "GpuPcieLinkDegraded",
        [
            series(c.GPU_PCIE_LINK_WIDTH, "8x20", GPU0),
            series(c.GPU_PCIE_LINK_MAX_WIDTH, "16x20", GPU0),
            series(c.GPU_PCIE_LINK_WIDTH, "16x20", GPU1),
            series(c.GPU_PCIE_LINK_MAX_WIDTH, "16x20", GPU1),
        ],
        "15m",
        [gl(GPU0)],
        quiet_at=["5m"],
    ),
    Scenario(
        "GpuPcieReplaysHigh",
        [series(c.GPU_PCIE_REPLAYS, "0+600x40", GPU0), series(c.GPU_PCIE_REPLAYS, "0+6x40", GPU1)],
        "25m",
        [gl(GPU0)],
    ),
    Scenario(
        "GpuPcieHealthCritical",
        [status("pcie.width", "reboot", "3x10")],
        "8m",
        [gl(GPU0, check="pcie.width", action="reboot")],
    ),
    Scenario(
        "GpuNvlinkHealthCritical",
        [
            status("nvlink.state", "reset_gpu", "3x10"),
            status("nvlink.errors", "none", "2x10", GPU1),
        ],
        "5m",
        [gl(GPU0, check="nvlink.state", action="reset_gpu")],
    ),
    Scenario(
        "GpuNvlinkErrorsHigh",
        [
            series(c.GPU_NVLINK_ERRORS, "0+10x40", GPU0, error="crc_flit"),  # 600/h
            series(c.GPU_NVLINK_ERRORS, "0+10x40", GPU0, error="ecc_data"),  # corrected: quiet
            series(c.GPU_NVLINK_ERRORS, "0+1x40", GPU1, error="crc_flit"),  # 60/h: quiet
        ],
        "35m",
        [gl(GPU0, error="crc_flit")],
    ),
    Scenario(
        "GpuFabricNotReady",
        [
            series(c.GPU_FABRIC_STATE, "2x20", GPU0),  # in progress
            series(c.GPU_FABRIC_STATUS, "0x20", GPU0),
            series(c.GPU_FABRIC_STATE, "3x20", GPU1),  # completed, but failed
            series(c.GPU_FABRIC_STATUS, "5x20", GPU1),
            series(c.GPU_FABRIC_STATE, "0x20", {**GPU1, "gpu": "2", "uuid": "GPU-pcie"}),
        ],
        "15m",
        [gl(GPU0), gl(GPU1)],
    ),
    Scenario(
        "GpuFabricHealthCritical",
        [status("fabric.state", "restart_fabric_manager", "3x10")],
        "8m",
        [gl(GPU0, check="fabric.state", action="restart_fabric_manager")],
    ),
    Scenario(
        "GpuLost",
        [series(c.GPU_UP, "1 1 0x10", GPU0), series(c.GPU_UP, "1x12", GPU1)],
        "5m",
        [gl(GPU0)],
    ),
    Scenario(
        "GpuCountBelowExpected",
        [
            series(c.GPU_COUNT, "7x20"),
            series(c.GPU_EXPECTED_COUNT, "8x20"),
            # Another node whose NVML cannot start: no gpu_count at all.
            series(c.GPU_EXPECTED_COUNT, "8x20", instance="gpu-node-2:9835"),
            # A healthy node.
            series(c.GPU_COUNT, "8x20", instance="gpu-node-3:9835"),
            series(c.GPU_EXPECTED_COUNT, "8x20", instance="gpu-node-3:9835"),
        ],
        "10m",
        [dict(BASE), {**BASE, "instance": "gpu-node-2:9835"}],
    ),
    Scenario(
        "GpuNodeHealthCritical",
        [
            series(c.GPU_HEALTH_STATUS, "3x10"),
            series(c.GPU_HEALTH_REQUIRED_ACTION, "1x10", action="reset_gpu"),
            series(c.GPU_HEALTH_REQUIRED_ACTION, "0x10", action="none"),
            series(c.GPU_HEALTH_REQUIRED_ACTION, "0x10", action="reboot"),
            series(c.GPU_HEALTH_STATUS, "2x10", instance="gpu-node-2:9835"),
            series(c.GPU_HEALTH_REQUIRED_ACTION, "1x10", instance="gpu-node-2:9835", action="none"),
        ],
        "5m",
        [{**BASE, "action": "reset_gpu"}],
        quiet_at=["1m"],
    ),
    Scenario(
        "GpuHealthCheckWarning",
        [
            status("power.draw", "none", "2x30"),
            status("thermal.gpu", "none", "0x30", GPU1),
            status("gpu.count", "none", "2x30", {"gpu": "", "uuid": "", "pci_bus_id": ""}),
        ],
        "20m",
        [
            gl(GPU0, check="power.draw", action="none"),
            {**BASE, "check": "gpu.count", "action": "none"},
        ],
        quiet_at=["10m"],
    ),
    Scenario(
        "GpuHealthCheckUnknown",
        # A node-level finding: the exporter's empty GPU labels are no labels to Prometheus.
        [status("xid", "none", "1x40", {"gpu": "", "uuid": "", "pci_bus_id": ""})],
        "35m",
        [{**BASE, "check": "xid", "action": "none"}],
        quiet_at=["20m"],
    ),
    Scenario(
        "GpuXidEvent",
        # An XID 79 at t=300s; the alert holds for 15 minutes after it.
        [series(c.GPU_XID_LAST_EVENT, "300x40", GPU0, xid="79")],
        "10m",
        [gl(GPU0, xid="79")],
        quiet_at=["30m"],
    ),
    Scenario(
        "GpuXidRestartApp",
        [status("xid", "restart_app", "2x5"), status("xid", "none", "0x5", GPU1)],
        "2m",
        [gl(GPU0, check="xid", action="restart_app")],
    ),
    Scenario(
        "GpuXidResetRequired",
        [
            status("xid", "reset_gpu", "3x5"),
            status("xid.recovery_action", "drain_and_reset", "3x5", GPU1),
            status("nvlink.state", "reset_gpu", "3x5", GPU1),  # not an XID check
        ],
        "2m",
        [
            gl(GPU0, check="xid", action="reset_gpu"),
            gl(GPU1, check="xid.recovery_action", action="drain_and_reset"),
        ],
    ),
    Scenario(
        "GpuXidRebootRequired",
        [status("xid", "reboot", "3x5"), status("xid", "power_cycle", "3x5", GPU1)],
        "2m",
        [gl(GPU0, check="xid", action="reboot"), gl(GPU1, check="xid", action="power_cycle")],
    ),
    Scenario(
        "GpuXidHardwareSuspect",
        [status("xid", "rma_candidate", "3x5"), status("xid", "restart_app", "2x5", GPU1)],
        "2m",
        [gl(GPU0, check="xid", action="rma_candidate")],
    ),
    Scenario(
        "GpuExporterDown",
        [
            {"series": f'up{{instance="{INSTANCE}",job="{c.SCRAPE_JOB}"}}', "values": "1 0x20"},
            {"series": f'up{{instance="{INSTANCE}",job="node"}}', "values": "0x20"},
        ],
        "15m",
        [dict(BASE)],
        quiet_at=["5m"],
    ),
    Scenario(
        "GpuExporterAbsent",
        [{"series": 'up{instance="n:9100",job="node"}', "values": "1x30"}],
        "20m",
        [{"job": c.SCRAPE_JOB}],
        quiet_at=["10m"],
    ),
    Scenario(
        "GpuExporterCollectionStale",
        # The last collection finished at t=0 and nothing since.
        [series(c.EXPORTER_LAST_COLLECTION, "0x20")],
        "10m",
        [dict(BASE)],
        quiet_at=["5m"],
    ),
    Scenario(
        "GpuExporterCollectionErrors",
        [
            series(c.EXPORTER_COLLECTION_ERRORS, "0+1x60", reason="read_error"),
            # A lost GPU counts device_lost every cycle: GpuLost covers it, not this alert.
            series(
                c.EXPORTER_COLLECTION_ERRORS,
                "0+4x60",
                instance="gpu-node-2:9835",
                reason="device_lost",
            ),
        ],
        "50m",
        [{**BASE, "reason": "read_error"}],
    ),
]


def healthy_node() -> list[dict[str, str]]:
    """A healthy 2-GPU node (and a PCIe GPU without fabric), as the exporter shows it."""
    n = "x70"
    out = [
        {"series": f'up{{instance="{INSTANCE}",job="{c.SCRAPE_JOB}"}}', "values": f"1{n}"},
        series(c.GPU_COUNT, f"2{n}"),
        series(c.GPU_EXPECTED_COUNT, f"2{n}"),
        series(c.GPU_HEALTH_STATUS, f"0{n}"),
        series(c.EXPORTER_LAST_COLLECTION, "0+60x70"),
        *[
            series(c.GPU_HEALTH_REQUIRED_ACTION, f"{int(a == 'none')}{n}", action=a)
            for a in ("none", "reboot")
        ],
        *[series(c.EXPORTER_COLLECTION_ERRORS, f"0{n}", reason=r.value) for r in c.ErrorReason],
    ]
    for gpu in (GPU0, GPU1):
        out += [
            series(c.GPU_UP, f"1{n}", gpu),
            series(c.GPU_TEMPERATURE, f"45{n}", gpu),
            series(c.GPU_TEMPERATURE_THRESHOLD, f"89{n}", gpu, threshold="slowdown"),
            series(c.GPU_CLOCK_THROTTLE, "0+1x70", gpu, reason="thermal"),
            series(c.GPU_ECC_ERRORS, f"0{n}", gpu, error_type="uncorrected", counter="volatile"),
            series(c.GPU_ECC_ERRORS, f"3{n}", gpu, error_type="uncorrected", counter="aggregate"),
            series(c.GPU_ECC_ERRORS, "0+2x70", gpu, error_type="corrected", counter="volatile"),
            series(c.GPU_ROW_REMAP_PENDING, f"0{n}", gpu),
            series(c.GPU_ROW_REMAP_FAILURE, f"0{n}", gpu),
            series(c.GPU_PCIE_LINK_WIDTH, f"16{n}", gpu),
            series(c.GPU_PCIE_LINK_MAX_WIDTH, f"16{n}", gpu),
            series(c.GPU_PCIE_REPLAYS, "0+3x70", gpu),
            series(c.GPU_NVLINK_ERRORS, "0+1x70", gpu, error="crc_flit"),
            series(c.GPU_FABRIC_STATE, f"3{n}", gpu),
            series(c.GPU_FABRIC_STATUS, f"0{n}", gpu),
            *[
                status(check, "none", f"0{n}", gpu)
                for check in (
                    "ecc.uncorrected_volatile",
                    "remap.pending",
                    "thermal.gpu",
                    "pcie.width",
                    "nvlink.state",
                    "fabric.state",
                    "xid",
                    "xid.recovery_action",
                )
            ],
        ]
    out.append(series(c.GPU_FABRIC_STATE, f"0{n}", {**GPU1, "gpu": "2", "uuid": "GPU-pcie"}))
    # An XID from an hour before the series start stays a counter; it raises no alert.
    out.append(series(c.GPU_XID_LAST_EVENT, f"-3600{n}", GPU0, xid="13"))
    out.append(series(c.GPU_XID_EVENTS, f"1{n}", GPU0, xid="13"))
    return out


def unit_tests(rule_file: str, severities: dict[str, str]) -> dict[str, Any]:
    tests = []
    for sc in SCENARIOS:
        checks = [
            {
                "eval_time": sc.eval_time,
                "alertname": sc.alert,
                "exp_alerts": [
                    {"exp_labels": {**labels, "severity": severities[sc.alert]}}
                    for labels in sc.expected
                ],
            }
        ]
        checks += [{"eval_time": t, "alertname": sc.alert, "exp_alerts": []} for t in sc.quiet_at]
        tests.append({"interval": "1m", "input_series": sc.input_series, "alert_rule_test": checks})
    quiet = [
        {"eval_time": t, "alertname": name, "exp_alerts": []}
        for name in severities
        for t in ("5m", "20m", "40m", "65m")
    ]
    tests.append({"interval": "1m", "input_series": healthy_node(), "alert_rule_test": quiet})
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


# --- tests --------------------------------------------------------------------------------------


def test_promtool_check_rules_accepts_the_file() -> None:
    proc = run_promtool("check", "rules", str(RULES), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in proc.stdout


def test_packaged_rules_are_the_file_in_the_source_tree() -> None:
    assert rules_text() == RULES.read_text()


def test_every_alert_has_a_scenario() -> None:
    names = [r["alert"] for r in load_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert sorted(names) == sorted(sc.alert for sc in SCENARIOS)


def test_every_alert_fires_on_its_fault_and_stays_quiet_when_healthy(tmp_path: Path) -> None:
    rules = yaml.safe_load(RULES.read_text())
    severities = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
            severities[rule["alert"]] = rule["labels"]["severity"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    (tmp_path / "test.yml").write_text(
        yaml.safe_dump(unit_tests("rules.yml", severities), sort_keys=False)
    )
    proc = run_promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    assert "SUCCESS" in proc.stdout


def test_every_annotation_renders_with_real_labels(tmp_path: Path) -> None:
    """Run the real file with deliberately empty expectations and read what promtool "got"."""
    shutil.copy(RULES, tmp_path / "rules.yml")
    tests: dict[str, Any] = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": []}
    for sc in SCENARIOS:
        tests["tests"].append(
            {
                "interval": "1m",
                "input_series": sc.input_series,
                "alert_rule_test": [
                    {"eval_time": sc.eval_time, "alertname": sc.alert, "exp_alerts": []}
                ],
            }
        )
    (tmp_path / "test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    proc = run_promtool("test", "rules", "test.yml", cwd=tmp_path)
    out = proc.stdout + proc.stderr
    rendered = re.findall(r"Annotations:\{(.*)\}", out)
    failed_alerts = set(re.findall(r"alertname: (\w+), time:", out))
    assert failed_alerts == {sc.alert for sc in SCENARIOS}, "every alert fired in the real file"
    assert len(rendered) >= len(SCENARIOS)
    for text in rendered:
        assert "<no value>" not in text, text
        assert "error expanding" not in text and "error executing" not in text, text
        assert 'summary="' in text and 'description="' in text and 'runbook_url="' in text


@pytest.mark.parametrize("rule", load_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_severity_summary_description_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    assert all(str(annotations[k]).strip() for k in ("summary", "description"))


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and (m := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            anchors.add(_slug(m.group(1)))
    return anchors


@pytest.mark.parametrize("rule", load_rules(), ids=lambda r: r["alert"])
def test_every_runbook_url_resolves_to_a_file_and_heading(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["runbook_url"]
    assert re.fullmatch(r"runbooks/gpu-[a-z-]+\.md#[a-z0-9-]+", url), url
    target, anchor = url.split("#")
    path = ROOT / target
    assert path.is_file(), f"{url}: {path} does not exist"
    assert anchor in _anchors(path), f"{url}: no heading #{anchor} in {target}"


def test_rules_use_only_metrics_the_exporter_exports() -> None:
    known = {spec.name for spec in c.METRICS}
    for rule in load_rules():
        used = set(re.findall(r"\b(gpu_[a-z_]+)\b", rule["expr"]))
        assert used <= known, (rule["alert"], used - known)
        if "up{" in rule["expr"]:
            assert f'job="{c.SCRAPE_JOB}"' in rule["expr"]
