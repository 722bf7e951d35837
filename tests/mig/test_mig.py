"""mig-parted configs: validation with named fields, and the read-only layout check."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.gpu.backend import RecordedBackend
from sre_tools.health.model import Severity
from sre_tools.health.policy import load_policy
from sre_tools.health.runner import run_health
from sre_tools.health.state import CounterState
from sre_tools.mig.config import memory_class, parse_mig_config, profile_of

H100 = Path(__file__).parents[1] / "fixtures" / "gpu" / "h100-capture.json"

CONFIG = """
version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  all-1g.10gb:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
  mixed:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"3g.40gb": 1, "4g.40gb": 1}
"""


def test_valid_config_parses() -> None:
    parsed = parse_mig_config(CONFIG, "mig.yaml", memory="80gb")
    assert set(parsed.configs) == {"all-disabled", "all-1g.10gb", "mixed"}
    layout = parsed.layout_for("mixed", 0)
    assert layout is not None and dict(layout.mig_devices) == {"3g.40gb": 1, "4g.40gb": 1}
    assert parsed.layout_for("mixed", 1) is None


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        pytest.param("version: v2\nmig-configs: {a: []}", "version", "expected 'v1'", id="version"),
        pytest.param("version: v1\nmig-configs: {}", "mig-configs", "non-empty", id="empty"),
        pytest.param(
            "version: v1\nmig-configs: {a: [{devices: all, mig-enabled: true, "
            "mig-devices: {'4g.40gb': 2}}]}",
            "mig-configs.a[0].mig-devices",
            "8 compute",
            id="too-many-slices",
        ),
        pytest.param(
            "version: v1\nmig-configs: {a: [{devices: all, mig-enabled: true, "
            "mig-devices: {'1g.5gb': 1}}]}",
            "mig-configs.a[0].mig-devices.1g.5gb",
            "not a profile of a 80gb GPU",
            id="profile",
        ),
        pytest.param(
            "version: v1\nmig-configs: {a: [{devices: [x], mig-enabled: true}]}",
            "mig-configs.a[0].devices",
            "list of GPU indices",
            id="devices",
        ),
        pytest.param(
            "version: v1\nmig-configs: {a: [{devices: all, mig-enabled: false, "
            "mig-devices: {'1g.10gb': 1}}]}",
            "mig-configs.a[0].mig-devices",
            "mig-enabled is false",
            id="disabled-with-devices",
        ),
        pytest.param(
            "version: v1\nmig-configs: {a: [{devices: all, mig-enabld: true}]}",
            "mig-configs.a[0].mig-enabld",
            "unknown field",
            id="typo",
        ),
    ],
)
def test_invalid_configs_name_the_field(text: str, field: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_mig_config(text, "mig.yaml", memory="80gb")
    assert info.value.source == "mig.yaml"
    assert info.value.field == field
    assert fragment in info.value.reason


def test_name_helpers() -> None:
    assert memory_class("NVIDIA H100 80GB HBM3") == "80gb"
    assert memory_class("Tesla V100") is None
    assert profile_of("NVIDIA H100 80GB HBM3 MIG 1g.10gb") == "1g.10gb"


def _run(tmp_path: Path, config: str, recording: dict) -> list:
    cfg = tmp_path / "mig.yaml"
    cfg.write_text(CONFIG)
    rec = tmp_path / "rec.json"
    rec.write_text(json.dumps(recording))
    site = f"mig:\n  config_file: {cfg}\n  config_name: {config}\n"
    from sre_tools.health.policy import load_policy as lp

    policy = lp(None, site, "site.yaml")
    report = run_health(
        RecordedBackend.load(rec),
        policy,
        state=CounterState(),
        host="n1",
        kernel_log_lines=[],
        sysfs=tmp_path / "nosys",
    )
    return [f for f in report.findings if f.check == "mig.layout"]


def test_layout_matches_when_mig_is_off_as_wanted(tmp_path: Path) -> None:
    found = _run(tmp_path, "all-disabled", json.loads(H100.read_text()))
    assert [f.severity for f in found] == [Severity.OK]


def test_layout_drift_is_a_warning(tmp_path: Path) -> None:
    found = _run(tmp_path, "all-1g.10gb", json.loads(H100.read_text()))
    assert [f.severity for f in found] == [Severity.WARN]
    assert found[0].evidence["want"] == {"1g.10gb": 7}


def test_layout_matches_enabled_instances(tmp_path: Path) -> None:
    rec = copy.deepcopy(json.loads(H100.read_text()))
    readings = rec["devices"][0]["readings"]
    readings["mig_mode"] = {"value": [1, 1]}
    readings["mig_devices"] = {
        "value": [
            {
                "index": i,
                "name": "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
                "uuid": f"MIG-{i}",
                "gpu_instance_id": i + 7,
                "compute_instance_id": 0,
            }
            for i in range(7)
        ]
    }
    found = _run(tmp_path, "all-1g.10gb", rec)
    assert [f.severity for f in found] == [Severity.OK]


def test_unconfigured_is_skipped() -> None:
    report = run_health(
        RecordedBackend.load(H100),
        load_policy(),
        state=CounterState(),
        host="n1",
        kernel_log_lines=[],
        sysfs=Path("/nonexistent"),
    )
    found = [f for f in report.findings if f.check == "mig.layout"]
    assert [f.severity for f in found] == [Severity.SKIPPED]


def test_unknown_config_name_is_unknown(tmp_path: Path) -> None:
    found = _run(tmp_path, "nope", json.loads(H100.read_text()))
    assert [f.severity for f in found] == [Severity.UNKNOWN]
    assert "no config named 'nope'" in found[0].summary
