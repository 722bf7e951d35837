"""Classification against the catalog, the workflows, and the per-GPU decision."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sre_tools.health.model import Action, Severity
from sre_tools.health.xid.catalog import load_catalog
from sre_tools.health.xid.classify import analyze, classify, decode_nvlink5
from sre_tools.health.xid.model import XidEvent
from sre_tools.health.xid.parser import parse_lines

BUS = "0000:18:00"
OTHER = "0000:3b:00"

# xid: (catalog immediate bucket, our action, severity) for the XID seen alone.
REPRESENTATIVE = {
    13: ("RESTART_APP", Action.RESTART_APP, Severity.WARN),
    31: ("RESTART_APP", Action.RESTART_APP, Severity.WARN),
    43: ("IGNORE", Action.NONE, Severity.OK),
    45: ("WORKFLOW_XID_45", Action.RESTART_FABRIC_MANAGER, Severity.WARN),
    48: ("WORKFLOW_XID_48", Action.RESET_GPU, Severity.CRIT),
    61: ("CONTACT_SUPPORT", Action.CONTACT_SUPPORT, Severity.CRIT),
    62: ("RESET_GPU", Action.RESET_GPU, Severity.CRIT),
    63: ("IGNORE", Action.NONE, Severity.OK),
    64: ("RESET_GPU", Action.RESET_GPU, Severity.CRIT),
    74: ("WORKFLOW_NVLINK_ERR", Action.RESET_GPU, Severity.CRIT),
    79: ("RESTART_BM", Action.REBOOT, Severity.CRIT),
    92: ("IGNORE", Action.NONE, Severity.OK),
    94: ("RESTART_APP", Action.RESTART_APP, Severity.WARN),
    95: ("RESET_GPU", Action.RESET_GPU, Severity.CRIT),
    109: ("RESET_GPU", Action.RESET_GPU, Severity.CRIT),
    119: ("RESET_GPU", Action.RESET_GPU, Severity.CRIT),
    120: ("RESET_GPU", Action.RESET_GPU, Severity.CRIT),
    140: ("RESET_GPU", Action.RESET_GPU, Severity.CRIT),
    143: ("RESET_GPU", Action.RESET_GPU, Severity.CRIT),
    154: ("XID_154", Action.RESET_GPU, Severity.CRIT),  # with "to 0x1"
}


def ev(xid: int | None, bus: str = BUS, **kw: object) -> XidEvent:
    return XidEvent(xid=xid, pci_bus_id=bus, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("xid", sorted(REPRESENTATIVE), ids=lambda x: f"xid{x}")
def test_representative_xids_against_the_catalog(xid: int) -> None:
    bucket, action, severity = REPRESENTATIVE[xid]
    entry = load_catalog().get(xid)
    assert entry is not None
    event = ev(xid, recovery_action=1 if xid == 154 else None)
    c = classify(event)
    assert c.catalog_immediate == entry.immediate_action == bucket
    assert c.catalog_investigatory == entry.investigatory_action
    assert c.mnemonic == entry.short_mnemonic
    assert (c.action, c.severity) == (action, severity)


def test_every_catalog_xid_classifies() -> None:
    for n in load_catalog().entries:
        c = classify(ev(n))
        assert c.in_catalog
        assert isinstance(c.action, Action)


def test_unknown_xid() -> None:
    c = classify(ev(999))
    assert (c.action, c.severity) == (Action.CONTACT_SUPPORT, Severity.WARN)
    assert c.catalog_immediate is None
    assert "unknown to catalog" in c.reason


def decision(events: list[XidEvent], **kw: object):  # type: ignore[no-untyped-def]
    gpus = analyze(events, **kw).gpus  # type: ignore[arg-type]
    assert len(gpus) == 1
    return gpus[0]


def test_48_alone_resets() -> None:
    d = decision([ev(48)])
    assert (d.action, d.severity) == (Action.RESET_GPU, Severity.CRIT)


@pytest.mark.parametrize("partner", [63, 64])
def test_48_with_63_or_64_on_same_gpu_drains_and_resets(partner: int) -> None:
    result = analyze([ev(48), ev(partner)])
    by_xid = {c.event.xid: c for c in result.events}
    assert by_xid[48].action is Action.DRAIN_AND_RESET
    assert by_xid[48].catalog_immediate == "WORKFLOW_XID_48"
    (d,) = result.gpus
    assert d.action is Action.DRAIN_AND_RESET
    assert d.xids == [48, partner]
    assert [c.event.xid for c in d.because] == [48]


def test_48_and_63_on_different_gpus_do_not_combine() -> None:
    result = analyze([ev(48, BUS), ev(63, OTHER)])
    actions = {d.pci_bus_id: d.action for d in result.gpus}
    assert actions == {BUS: Action.RESET_GPU, OTHER: Action.NONE}


def test_48_in_mig_instance_sees_63_of_its_gpu() -> None:
    result = analyze([ev(48, gpu_instance="GPU-I:01"), ev(63)])
    actions = {d.gpu_instance: d.action for d in result.gpus}
    assert actions == {"GPU-I:01": Action.DRAIN_AND_RESET, None: Action.NONE}


def test_45_solo_restarts_fabric_manager() -> None:
    d = decision([ev(45), ev(45)])
    assert (d.action, d.severity) == (Action.RESTART_FABRIC_MANAGER, Severity.WARN)


def test_45_solo_without_fabric_manager_restarts_the_app() -> None:
    d = decision([ev(45)], fabric_manager=False)
    assert d.action is Action.RESTART_APP


def test_45_not_solo_follows_the_other_xid() -> None:
    result = analyze([ev(13), ev(45)])
    by_xid = {c.event.xid: c for c in result.events}
    assert (by_xid[45].action, by_xid[45].severity) == (Action.NONE, Severity.OK)
    assert "not solo" in by_xid[45].reason
    assert result.gpus[0].action is Action.RESTART_APP


def test_45_next_to_ignored_xid_is_not_solo() -> None:
    d = decision([ev(43), ev(45)])
    assert (d.action, d.severity) == (Action.NONE, Severity.OK)


def test_79_follows_catalog_reboot() -> None:
    d = decision([ev(79)])
    assert d.action is Action.REBOOT


def test_79_power_cycles_when_nvml_cannot_see_the_gpu() -> None:
    d = decision([ev(79)], gpu_missing={BUS})
    assert (d.action, d.severity) == (Action.POWER_CYCLE, Severity.CRIT)
    assert "power cycle" in d.reason


def test_fallen_off_text_is_xid_79_equivalent() -> None:
    (e,) = parse_lines(["NVRM: GPU 0000:18:00.0: GPU has fallen off the bus."])
    c = classify(e)
    assert c.mnemonic == "FALLEN_OFF_BUS"
    assert c.catalog_immediate == "RESTART_BM"
    assert c.action is Action.REBOOT
    assert e.xid is None and e.catalog_xid == 79


@pytest.mark.parametrize(
    ("value", "action"),
    [
        (1, Action.RESET_GPU),
        (2, Action.REBOOT),
        (3, Action.DRAIN_AND_RESET),
        (4, Action.DRAIN_AND_RESET),
    ],
)
def test_nvml_recovery_action_is_authoritative(value: int, action: Action) -> None:
    # events alone: 13 -> restart_app; 79 -> reboot. NVML's value wins either way.
    for xid in (13, 79):
        d = decision([ev(xid)], recovery_actions={BUS: value})
        assert (d.action, d.severity) == (action, Severity.CRIT)
        assert d.authoritative == "nvml"
        assert d.recovery_action == value


def test_nvml_recovery_action_zero_is_not_authoritative() -> None:
    d = decision([ev(48)], recovery_actions={BUS: 0})
    assert d.action is Action.RESET_GPU
    assert d.authoritative is None


def test_latest_xid_154_is_authoritative() -> None:
    lines = [
        "[ 10.0] NVRM: Xid (PCI:0000:18:00): 48, pid=1, name=x, DBE",
        "[ 10.1] NVRM: Xid (PCI:0000:18:00): 154, GPU recovery action changed from 0x0 (None) "
        "to 0x1 (GPU Reset Required)",
        "[ 10.2] NVRM: Xid (PCI:0000:18:00): 154, GPU recovery action changed from 0x1 "
        "(GPU Reset Required) to 0x2 (Node Reboot Required)",
    ]
    d = decision(parse_lines(lines))
    assert (d.action, d.authoritative, d.recovery_action) == (Action.REBOOT, "xid154", 2)
    assert [c.event.recovery_action for c in d.because] == [2]
    assert "is authoritative" in d.reason


def test_xid_154_back_to_none_leaves_the_events_to_decide() -> None:
    lines = [
        "NVRM: Xid (PCI:0000:18:00): 94, pid=1, name=x, Contained",
        "NVRM: Xid (PCI:0000:18:00): 154, GPU recovery action changed from 0x1 "
        "(GPU Reset Required) to 0x0 (None)",
    ]
    d = decision(parse_lines(lines))
    assert d.action is Action.RESTART_APP
    assert d.authoritative is None


def test_nvml_beats_xid_154() -> None:
    lines = [
        "NVRM: Xid (PCI:0000:18:00): 154, GPU recovery action changed from 0x0 (None) to 0x1 "
        "(GPU Reset Required)"
    ]
    d = decision(parse_lines(lines), recovery_actions={BUS: 2})
    assert (d.action, d.authoritative) == (Action.REBOOT, "nvml")


def test_combined_decision_is_the_most_disruptive() -> None:
    d = decision([ev(13), ev(94), ev(43), ev(95)])
    assert (d.action, d.severity) == (Action.RESET_GPU, Severity.CRIT)
    assert [c.event.xid for c in d.because] == [95]
    assert d.counts == {13: 1, 43: 1, 94: 1, 95: 1}


def test_ignored_only_is_ok() -> None:
    d = decision([ev(43), ev(92)])
    assert (d.action, d.severity) == (Action.NONE, Severity.OK)
    assert d.because == ()


def test_decisions_are_per_gpu_and_mig_instance() -> None:
    result = analyze(
        [ev(13, BUS, gpu_instance="GPU-I:01"), ev(13, BUS, gpu_instance="GPU-I:02"), ev(79, OTHER)]
    )
    keys = [(d.pci_bus_id, d.gpu_instance) for d in result.gpus]
    assert keys == [(BUS, "GPU-I:01"), (BUS, "GPU-I:02"), (OTHER, None)]


def _nvlink5(message: str, xid: int = 145) -> XidEvent:
    return ev(xid, message=message)


def test_nvlink5_decode_reset() -> None:
    # RLW_SRC_TRACK (V2 intrInfo subcode 0b0000111), errorStatus 0x10: Fatal -> RESET_GPU
    c = classify(_nvlink5("RLW_SRC_TRACK Fatal XC0 i0 Link 12 (0x00000007 0x00000010 0x0 0x0)"))
    assert c.catalog_immediate == "WORKFLOW_NVLINK5_ERR"
    assert (c.action, c.severity) == (Action.RESET_GPU, Severity.CRIT)
    assert "RLW_SRC_TRACK" in c.reason


def test_nvlink5_decode_ignore() -> None:
    # RLW_REMAP (V2 subcode 0b0000100), errorStatus 0x100: Non-fatal -> IGNORE
    c = classify(_nvlink5("RLW_REMAP Nonfatal XC0 i0 Link 3 (0x00000004 0x00000100 0x0)"))
    assert (c.action, c.severity) == (Action.NONE, Severity.OK)
    bucket, _ = decode_nvlink5(c.event, load_catalog())
    assert bucket == "IGNORE"


def test_nvlink5_undecoded_falls_back_on_fatal_word() -> None:
    fatal = classify(_nvlink5("SOMETHING Fatal Link 1 without registers"))
    assert fatal.action is Action.RESET_GPU
    other = classify(_nvlink5("SOMETHING Nonfatal Link 1 without registers"))
    assert (other.action, other.severity) == (Action.CONTACT_SUPPORT, Severity.WARN)


def test_to_dict_keys() -> None:
    result = analyze([ev(48), ev(63)])
    d = result.to_dict()
    assert set(d) == {"events", "gpus"}
    assert {
        "xid",
        "pci_bus_id",
        "gpu_instance",
        "mnemonic",
        "catalog_immediate",
        "catalog_investigatory",
        "action",
    } <= set(d["events"][0])
    assert {"pci_bus_id", "gpu_instance", "action", "severity", "xids", "reason"} <= set(
        d["gpus"][0]
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 300)),
            st.sampled_from([BUS, OTHER, None]),
            st.sampled_from([None, "GPU-I:01"]),
            st.one_of(st.none(), st.integers(0, 9)),
        ),
        max_size=20,
    ),
    st.dictionaries(st.sampled_from([BUS, OTHER]), st.integers(0, 9)),
)
def test_analyze_never_raises(
    items: list[tuple[int | None, str | None, str | None, int | None]], recovery: dict[str, int]
) -> None:
    events = [
        XidEvent(xid=x, pci_bus_id=b, gpu_instance=g, recovery_action=r) for x, b, g, r in items
    ]
    result = analyze(events, recovery_actions=recovery, gpu_missing={OTHER})
    assert len(result.events) == len(events)
    assert sum(len(d.events) for d in result.gpus) == len(events)
