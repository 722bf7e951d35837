"""salt/_beacons/gpu_health.py, loaded without Salt: transitions, debounce, payload, validate."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sre_tools.health import transitions
from sre_tools.health.model import Finding
from tests.helpers import reports
from tests.helpers.reports import gpu_ref
from tests.helpers.salt import FIXTURES, GPU_BEACON
from tests.salt.conftest import MINION_ID, FakeClock

HEALTHY = FIXTURES / "h100-capture.json"
DBE = FIXTURES / "faults" / "dbe-volatile.json"
# The real H100 capture's GPU (tests/fixtures/gpu/captures/h100-sxm-580): a passthrough VM's bus.
UUID0 = "GPU-e4292390-eeff-c8ae-fc0f-56d4f7804ee2"
XID79 = "NVRM: Xid (PCI:0000:00:06): 79, pid=1234, name=python, GPU has fallen off the bus."
AT = 1793527200.0  # 2026-11-01T10:00:00Z
XID13 = "NVRM: Xid (PCI:0000:00:06): 13, pid=1234, name=python, Graphics Exception"


# --- helpers: crafted reports, a scripted gpu.health ----------------------------------------------


def finding(
    check: str,
    severity: str,
    action: str = "none",
    *,
    index: int | None = 0,
    uuid: str = "GPU-aaaa",
    summary: str = "",
    xids: tuple[str, ...] = (),
) -> Finding:
    gpu = None if index is None else gpu_ref(index, uuid, "0000:18:00.0")
    evidence = {"events": [{"key": k, "xid": 79} for k in xids]} if xids else {}
    return reports.finding(check, severity, action, gpu=gpu, summary=summary, evidence=evidence)


def report(*findings: Finding) -> dict[str, Any]:
    """What ``gpu.health`` returns: the report's JSON form."""
    built = reports.report(
        *findings, host="gpu-node-01", at=AT, source="test", duration_seconds=0.01
    )
    return built.to_dict()


OK = report(finding("ecc.uncorrected_volatile", "ok"), finding("thermal.gpu", "ok"))
WARN = report(finding("ecc.uncorrected_volatile", "ok"), finding("thermal.gpu", "warn"))
CRIT = report(
    finding("ecc.uncorrected_volatile", "crit", "reset_gpu"), finding("thermal.gpu", "warn")
)


class Script:
    """A gpu.health stand-in that returns the next report of the script (the last repeats)."""

    def __init__(self, *reports: dict[str, Any]):
        self.reports = list(reports)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return self.reports.pop(0) if len(self.reports) > 1 else self.reports[0]


def scripted(beacon: ModuleType, *reports: dict[str, Any]) -> Script:
    script = Script(*reports)
    beacon.__salt__ = {"gpu.health": script}
    return script


def run(beacon: ModuleType, config: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    events = beacon.beacon(config if config is not None else [{"cooldown": 300}])
    for event in events:
        json.dumps(event)  # plain JSON, always
    return events


def tag(events: list[dict[str, Any]]) -> str | None:
    assert len(events) <= 1
    return events[0]["tag"] if events else None


# --- validate -------------------------------------------------------------------------------------


def test_validate_accepts_the_documented_configuration(beacon: ModuleType) -> None:
    ok, message = beacon.validate(
        [
            {"interval": 60},
            {"profile": "h100-sxm-8"},
            {"config": "/etc/sre-tools/health.yaml"},
            {"replay": str(DBE)},
            {"cooldown": {"default": 300, "xid": 60}},
            {"node": "gpu-node-01"},
            {"state_file": "/var/cache/salt/minion/gpu_health.json"},
            {"max_event_bytes": 16384},
            {"timeout": 20},
            {"enabled": True},
        ]
    )
    assert (ok, message) == (True, "Valid beacon configuration")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({"interval": 60}, "must be a list", id="dict-not-list"),
        pytest.param(["interval"], "must be a list", id="list-of-strings"),
        pytest.param([{"intervall": 60}], "unknown key 'intervall'", id="typo"),
        pytest.param([{"interval": 0}], "interval", id="interval-zero"),
        pytest.param([{"interval": True}], "interval", id="interval-bool"),
        pytest.param([{"profile": "h200"}], "profile: unknown 'h200'", id="profile"),
        pytest.param([{"replay": ""}], "replay", id="replay-empty"),
        pytest.param([{"config": 3}], "config", id="config-type"),
        pytest.param([{"cooldown": -1}], "cooldown: must not be negative", id="cooldown-neg"),
        pytest.param([{"cooldown": "5m"}], "cooldown: expected seconds", id="cooldown-str"),
        pytest.param([{"cooldown": {"xid": -5}}], "cooldown.xid", id="cooldown-map"),
        pytest.param([{"node": "gpu 01"}], "node: invalid", id="node"),
        pytest.param([{"state_file": "state.json"}], "absolute", id="state-file-relative"),
        pytest.param([{"max_event_bytes": 100}], "max_event_bytes", id="max-bytes-small"),
        pytest.param([{"max_event_bytes": 10**6}], "max_event_bytes", id="max-bytes-large"),
        pytest.param([{"max_event_bytes": 4096.0}], "integer", id="max-bytes-float"),
        pytest.param([{"timeout": 0}], "timeout", id="timeout"),
    ],
)
def test_validate_errors(beacon: ModuleType, config: Any, message: str) -> None:
    ok, text = beacon.validate(config)
    assert ok is False
    assert message in text and text.startswith("gpu_health: ")


# --- transitions ----------------------------------------------------------------------------------


def test_healthy_first_run_fires_nothing(beacon: ModuleType) -> None:
    scripted(beacon, OK)
    assert run(beacon) == []
    assert run(beacon) == []


@pytest.mark.parametrize(
    ("steps", "tags"),
    [
        pytest.param(
            [OK, WARN, CRIT],
            [None, "sre/gpu/health/warn", "sre/gpu/health/crit"],
            id="ok-warn-crit",
        ),
        pytest.param([CRIT, CRIT, CRIT], ["sre/gpu/health/crit", None, None], id="steady-crit"),
        pytest.param([WARN, WARN], ["sre/gpu/health/warn", None], id="steady-warn"),
        pytest.param([OK, CRIT], [None, "sre/gpu/health/crit"], id="ok-crit"),
    ],
)
def test_fires_only_on_transitions(
    beacon: ModuleType, steps: list[dict[str, Any]], tags: list[str | None]
) -> None:
    scripted(beacon, *steps)
    assert [tag(run(beacon)) for _ in steps] == tags


def test_event_payload_schema(beacon: ModuleType) -> None:
    scripted(beacon, CRIT)
    (event,) = run(beacon)
    assert event["tag"] == "sre/gpu/health/crit"
    assert event["schema_version"] == 1
    assert event["minion"] == MINION_ID and event["node"] == "gpu-node-01"
    assert (event["severity"], event["previous_severity"]) == ("crit", "ok")
    assert (event["action"], event["previous_action"]) == ("reset_gpu", "none")
    assert event["transition"] == "crit"
    assert event["transitions"] == ["severity", "action", "finding"]
    assert [f["check"] for f in event["findings"]] == ["ecc.uncorrected_volatile", "thermal.gpu"]
    first = event["findings"][0]
    assert set(first) == {"check", "severity", "previous_severity", "action", "gpu", "summary"}
    assert first["gpu"] == {
        "index": 0,
        "uuid": "GPU-aaaa",
        "pci_bus_id": "0000:18:00.0",
        "mig": None,
    }
    assert (first["severity"], first["previous_severity"], first["action"]) == (
        "crit",
        "ok",
        "reset_gpu",
    )
    assert event["xid_keys"] == [] and event["truncated"] is False


def test_event_carries_a_valid_remediation_request(beacon: ModuleType) -> None:
    from sre_tools.remediation.model import request_from_event

    scripted(beacon, CRIT)
    (event,) = run(beacon)
    request = request_from_event(event["remediation"])  # the reactor's own validation passes
    assert (request.node, request.action.value) == ("gpu-node-01", "reset_gpu")
    assert request.source == "salt-beacon" and request.gpus == (0,)
    assert request.event_id.startswith("salt:gpu-node-01:")


def test_recovery_has_no_remediation_request(beacon: ModuleType, clock: FakeClock) -> None:
    scripted(beacon, CRIT, OK)
    run(beacon, [{"cooldown": 0}])
    (event,) = run(beacon, [{"cooldown": 0}])
    assert event["tag"] == "sre/gpu/health/ok" and event["remediation"] is None
    assert [(f["check"], f["previous_severity"], f["severity"]) for f in event["findings"]] == [
        ("ecc.uncorrected_volatile", "crit", "ok"),
        ("thermal.gpu", "warn", "ok"),
    ]


def test_a_finding_that_disappears_counts_as_ok(beacon: ModuleType) -> None:
    scripted(beacon, WARN, report())
    run(beacon, [{"cooldown": 0}])
    (event,) = run(beacon, [{"cooldown": 0}])
    assert event["tag"] == "sre/gpu/health/ok"
    (gone,) = event["findings"]
    assert gone["check"] == "thermal.gpu" and gone["summary"] == "recovered (no longer reported)"


def test_severity_is_tracked_per_gpu(beacon: ModuleType) -> None:
    two_gpus_warn = report(
        finding("thermal.gpu", "warn", index=0, uuid="GPU-a"),
        finding("thermal.gpu", "ok", index=1, uuid="GPU-b"),
    )
    both_warn = report(
        finding("thermal.gpu", "warn", index=0, uuid="GPU-a"),
        finding("thermal.gpu", "warn", index=1, uuid="GPU-b"),
    )
    scripted(beacon, two_gpus_warn, both_warn)
    assert tag(run(beacon)) == "sre/gpu/health/warn"
    (event,) = run(beacon)
    assert event["tag"] == "sre/gpu/health/finding"  # node severity and action unchanged
    assert [f["gpu"]["uuid"] for f in event["findings"]] == ["GPU-b"]


def test_changed_action_fires(beacon: ModuleType) -> None:
    reset = report(finding("ecc.uncorrected_volatile", "crit", "reset_gpu"))
    reboot = report(
        finding("ecc.uncorrected_volatile", "crit", "reset_gpu"),
        finding("nvml.init", "crit", "reboot", index=None),
    )
    scripted(beacon, reset, reboot)
    run(beacon)
    (event,) = run(beacon)
    assert event["tag"] == "sre/gpu/health/action"
    assert (event["previous_action"], event["action"]) == ("reset_gpu", "reboot")
    assert event["findings"][0]["gpu"] is None  # a node-level finding


# --- debounce -------------------------------------------------------------------------------------


def test_recovery_waits_for_the_cooldown(beacon: ModuleType, clock: FakeClock) -> None:
    scripted(beacon, WARN, OK)
    assert tag(run(beacon)) == "sre/gpu/health/warn"
    clock.advance(100)
    assert run(beacon) == []  # warn -> ok inside the 300 s cooldown: held back
    clock.advance(100)
    assert run(beacon) == []
    clock.advance(101)
    (event,) = run(beacon)  # the report catches up with what is true now
    assert event["tag"] == "sre/gpu/health/ok" and event["previous_severity"] == "warn"


def test_flapping_is_damped(beacon: ModuleType, clock: FakeClock) -> None:
    scripted(beacon, WARN, OK, WARN, OK, WARN, OK)
    tags = []
    for _ in range(6):
        tags.append(tag(run(beacon)))
        clock.advance(10)
    assert tags == ["sre/gpu/health/warn", None, None, None, None, None]


def test_escalation_skips_the_cooldown(beacon: ModuleType, clock: FakeClock) -> None:
    scripted(beacon, WARN, CRIT, WARN)
    assert tag(run(beacon)) == "sre/gpu/health/warn"
    clock.advance(5)
    assert tag(run(beacon)) == "sre/gpu/health/crit"
    clock.advance(5)
    assert run(beacon) == []  # crit -> warn is no escalation: it waits


def test_cooldown_per_check(beacon: ModuleType, clock: FakeClock) -> None:
    config = [{"cooldown": {"default": 300, "thermal.gpu": 10}}]
    scripted(beacon, WARN, OK)
    assert tag(run(beacon, config)) == "sre/gpu/health/warn"
    clock.advance(11)
    (event,) = run(beacon, config)
    assert [f["check"] for f in event["findings"]] == ["thermal.gpu"]
    # The node's own change uses the default cooldown: only the finding fired so far.
    assert event["tag"] == "sre/gpu/health/finding" and event["severity"] == "ok"
    clock.advance(300)
    assert tag(run(beacon, config)) == "sre/gpu/health/ok"


def test_cooldown_zero_reports_every_change(beacon: ModuleType, clock: FakeClock) -> None:
    scripted(beacon, WARN, OK, WARN)
    assert [tag(run(beacon, [{"cooldown": 0}])) for _ in range(3)] == [
        "sre/gpu/health/warn",
        "sre/gpu/health/ok",
        "sre/gpu/health/warn",
    ]


# --- XIDs -----------------------------------------------------------------------------------------


def xid_report(*keys: str) -> dict[str, Any]:
    return report(finding("xid", "crit", "reboot", xids=keys))


def test_new_xid_fires(beacon: ModuleType, clock: FakeClock) -> None:
    scripted(beacon, xid_report("k1"), xid_report("k1"), xid_report("k1", "k2"))
    (first,) = run(beacon)
    assert first["tag"] == "sre/gpu/health/crit" and first["xid_keys"] == ["k1"]
    assert run(beacon) == []  # the same XID again: nothing new
    clock.advance(301)
    (event,) = run(beacon)
    assert event["tag"] == "sre/gpu/health/xid"
    assert event["transitions"] == ["xid"] and event["xid_keys"] == ["k2"]


def test_new_xids_wait_for_the_xid_cooldown(beacon: ModuleType, clock: FakeClock) -> None:
    config = [{"cooldown": {"default": 300, "xid": 60}}]
    scripted(beacon, xid_report("k1"), xid_report("k1", "k2"), xid_report("k1", "k2", "k3"))
    assert run(beacon, config)[0]["xid_keys"] == ["k1"]
    clock.advance(30)
    assert run(beacon, config) == []  # k2 is held back, not forgotten
    clock.advance(31)
    (event,) = run(beacon, config)
    assert event["xid_keys"] == ["k2", "k3"]


def test_new_xid_rides_along_with_another_change(beacon: ModuleType, clock: FakeClock) -> None:
    scripted(
        beacon,
        xid_report("k1"),
        report(
            finding("xid", "crit", "reboot", xids=("k1", "k2")),
            finding("thermal.gpu", "warn", uuid="GPU-b", index=1),
        ),
    )
    run(beacon)
    clock.advance(1)
    (event,) = run(beacon)
    assert event["tag"] == "sre/gpu/health/xid" and event["xid_keys"] == ["k2"]
    assert event["transitions"] == ["xid", "finding"]


def test_xids_from_a_real_recording(beacon: ModuleType, tmp_path: Path, clock: FakeClock) -> None:
    data = json.loads(HEALTHY.read_text(encoding="utf-8"))
    one, two = tmp_path / "xid-1.json", tmp_path / "xid-2.json"
    one.write_text(json.dumps({**data, "kernel_log": [XID79]}), encoding="utf-8")
    two.write_text(json.dumps({**data, "kernel_log": [XID79, XID13]}), encoding="utf-8")
    (event,) = run(beacon, [{"replay": str(one)}, {"cooldown": 0}])
    assert event["tag"] == "sre/gpu/health/crit" and len(event["xid_keys"]) == 1
    xid = next(f for f in event["findings"] if f["check"] == "xid")
    assert xid["gpu"]["uuid"] == UUID0 and xid["action"] == "reboot"
    clock.advance(1)
    (event2,) = run(beacon, [{"replay": str(two)}, {"cooldown": 0}])
    assert "xid" in event2["transitions"]
    assert len(event2["xid_keys"]) == 1 and event2["xid_keys"] != event["xid_keys"]


# --- the real engine, end to end ------------------------------------------------------------------


def test_dbe_recording_fires_crit_reset_gpu(beacon: ModuleType) -> None:
    config = [{"replay": str(DBE)}, {"cooldown": 300}, {"_beacon_name": "gpu_health"}]
    (event,) = run(beacon, config)
    assert event["tag"] == "sre/gpu/health/crit"
    assert (event["severity"], event["action"]) == ("crit", "reset_gpu")
    ecc = next(f for f in event["findings"] if f["check"] == "ecc.uncorrected_volatile")
    assert ecc["gpu"]["uuid"] == UUID0 and ecc["gpu"]["pci_bus_id"] == "00000000:00:06.0"
    assert run(beacon, config) == []


def test_health_kwargs_come_from_the_config(beacon: ModuleType) -> None:
    script = scripted(beacon, OK)
    run(
        beacon,
        [
            {"replay": "/r.json"},
            {"profile": "generic"},
            {"config": "/c.yaml"},
            {"timeout": 5},
            {"cooldown": 1},
            {"_beacon_name": "gpu_health"},
        ],
    )
    assert script.calls == [
        {"replay": "/r.json", "profile": "generic", "config": "/c.yaml", "timeout": 5}
    ]


def test_failing_health_run_is_one_unknown_event(beacon: ModuleType) -> None:
    def broken(**_: Any) -> dict[str, Any]:
        raise RuntimeError("NVML exploded")

    beacon.__salt__ = {"gpu.health": broken}
    (event,) = run(beacon)
    assert event["tag"] == "sre/gpu/health/unknown"
    assert event["findings"][0]["check"] == "gpu_health.run"
    assert "NVML exploded" in event["findings"][0]["summary"]
    assert run(beacon) == []


def test_missing_execution_module_is_reported(beacon: ModuleType) -> None:
    beacon.__salt__ = {}
    (event,) = run(beacon)
    assert event["tag"] == "sre/gpu/health/unknown"
    assert "saltutil.sync_all" in event["findings"][0]["summary"]


# --- state ----------------------------------------------------------------------------------------


def test_state_lives_in_context_per_beacon_name(beacon: ModuleType) -> None:
    scripted(beacon, CRIT)
    run(beacon, [{"_beacon_name": "gpu_a"}])
    assert tag(run(beacon, [{"_beacon_name": "gpu_b"}])) == "sre/gpu/health/crit"
    assert set(beacon.__context__) == {"gpu_health.state.gpu_a", "gpu_health.state.gpu_b"}


def test_state_file_survives_a_restart(beacon: ModuleType, tmp_path: Path) -> None:
    config = [{"state_file": str(tmp_path / "state" / "gpu_health.json")}]
    scripted(beacon, CRIT)
    assert tag(run(beacon, config)) == "sre/gpu/health/crit"
    beacon.__context__ = {}  # a minion restart
    assert run(beacon, config) == []
    stored = json.loads((tmp_path / "state" / "gpu_health.json").read_text(encoding="utf-8"))
    assert stored["node"]["severity"] == "crit"


@pytest.mark.parametrize("content", ["not json", "[]", '{"version": 99}'])
def test_unusable_state_file_starts_fresh(beacon: ModuleType, tmp_path: Path, content: str) -> None:
    path = tmp_path / "gpu_health.json"
    path.write_text(content, encoding="utf-8")
    scripted(beacon, CRIT)
    assert tag(run(beacon, [{"state_file": str(path)}])) == "sre/gpu/health/crit"


def test_seen_xids_are_bounded(
    beacon: ModuleType, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transitions, "MAX_SEEN_XIDS", 5)
    scripted(beacon, xid_report(*[f"k{i}" for i in range(20)]))
    run(beacon)
    (state,) = beacon.__context__.values()
    assert len(state["xids"]) == 5


def test_recovered_findings_are_forgotten_after_the_cooldown(
    beacon: ModuleType, clock: FakeClock
) -> None:
    scripted(beacon, WARN, report(), report())
    run(beacon, [{"cooldown": 0}])
    run(beacon, [{"cooldown": 0}])
    (state,) = beacon.__context__.values()
    assert state["findings"] == {}


# --- payload hygiene and size ---------------------------------------------------------------------


def test_summary_is_one_clean_capped_line(beacon: ModuleType) -> None:
    nasty = "line one\nline two\x1b[31m\u202eevil" + "x" * 1000
    scripted(beacon, report(finding("thermal.gpu", "warn", summary=nasty)))
    (event,) = run(beacon)
    summary = event["findings"][0]["summary"]
    assert "\n" not in summary and "\x1b" not in summary and "\u202e" not in summary
    assert len(summary) <= beacon.MAX_SUMMARY_CHARS


@pytest.mark.parametrize("max_bytes", [2048, 4096, 16384])
def test_payload_is_size_capped(beacon: ModuleType, max_bytes: int) -> None:
    many = report(
        *[
            finding(
                f"check.{i:03d}",
                "crit" if i % 2 else "warn",
                "reset_gpu",
                index=i % 8,
                uuid=f"GPU-{i:04d}",
                summary="s" * 200,
                xids=(f"x{i}",),
            )
            for i in range(200)
        ]
    )
    scripted(beacon, many)
    (event,) = run(beacon, [{"max_event_bytes": max_bytes}])
    size = len(json.dumps(event, separators=(",", ":")).encode())
    assert size <= max_bytes
    assert event["truncated"] is True
    assert event["dropped"]["findings"] == 200 - len(event["findings"])
    assert all(f["severity"] == "crit" for f in event["findings"][:1])  # worst kept first


def test_findings_are_capped_by_count(beacon: ModuleType) -> None:
    many = report(*[finding(f"c{i:02d}", "warn", index=i, uuid=f"G{i}") for i in range(40)])
    scripted(beacon, many)
    (event,) = run(beacon, [{"max_event_bytes": 65536}])
    assert len(event["findings"]) == beacon.MAX_FINDINGS
    assert event["dropped"]["findings"] == 40 - beacon.MAX_FINDINGS and event["truncated"]


# --- loading --------------------------------------------------------------------------------------


def test_module_does_not_need_salt_to_load() -> None:
    text = GPU_BEACON.read_text(encoding="utf-8")
    assert "import salt" not in text and "from salt" not in text
