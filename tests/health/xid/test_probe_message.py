"""The driver's probe-time "fallen off the bus" message in every form, as XID 79's equivalent."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sre_tools.health.model import Action, Severity
from sre_tools.health.xid.classify import analyze
from sre_tools.health.xid.events import dedupe, nvml_events
from sre_tools.health.xid.model import KIND_FALLEN_OFF_BUS, XidEvent
from sre_tools.health.xid.parser import parse_line, parse_lines

from .conftest import BOOT

FIXTURE = Path(__file__).parents[2] / "fixtures" / "xid" / "h100-boot-fallen-off-bus.dmesg"
BUS = "0000:5d:00"
OTHER = "0000:9d:00"
H = "NVRM: The NVIDIA GPU 0000:5d:00.0"
M = "NVRM: (PCI ID: 10de:2330) installed in this system has"
T = "NVRM: fallen off the bus and is not responding to commands."
H2 = "NVRM: The NVIDIA GPU 0000:9d:00.0"
PROBE = "nvidia 0000:5d:00.0: probe of 0000:5d:00.0 failed with error -1"
FLAT = f"{H} {M[6:]} {T[6:]}"  # "NVRM: The NVIDIA GPU ... has fallen off the bus and ..."
SYSLOG = "Nov 20 10:00:00 host kernel: "
ISO = "2026-11-20T10:00:00+0000 host kernel: "
INDENT = " " * 15

# (id, items as parse_lines gets them, the buses of the events, in order)
CASES: list[tuple[str, list[str], list[str]]] = [
    ("dmesg-three-lines", [f"[   12.345678] {x}" for x in (H, M, T)], [BUS]),
    (
        "dmesg-per-line-times",  # older kernels: each line its own time
        ["[   12.345678] " + H, "[   12.345690] " + M, "[   12.345701] " + T],
        [BUS],
    ),
    ("dmesg-indented", [f"[   12.345678] {H}", INDENT + M, INDENT + T], [BUS]),
    ("dmesg-one-item", ["\n".join(f"[   12.345678] {x}" for x in (H, M, T))], [BUS]),
    ("kmsg-one-record", [f"3,1234,12345678,-;{H}\\x0a{M}\\x0a{T}"], [BUS]),
    (
        "kmsg-three-records",
        [f"3,{1234 + i},12345678,-;{x}" for i, x in enumerate((H, M, T))],
        [BUS],
    ),
    (
        "kmsg-continuation-flag",
        [f"3,1234,12345678,-;{H}", f"3,1235,12345678,c;{M}", f"3,1236,12345678,c;{T}"],
        [BUS],
    ),
    (
        "kmsg-caller",
        [f"3,{9 + i},12345678,-,caller=T412;{x}" for i, x in enumerate((H, M, T))],
        [BUS],
    ),
    ("journald-message", [f"{H}\n{M}\n{T}"], [BUS]),
    ("journalctl-short-iso", [f"{ISO}{H}", " " * len(ISO) + M, " " * len(ISO) + T], [BUS]),
    ("journal-per-line", [f"{ISO}{x}" for x in (H, M, T)], [BUS]),
    ("syslog-flat-spaces", [SYSLOG + FLAT], [BUS]),
    ("syslog-flat-012", [f"{SYSLOG}{H}#012{M}#012{T}"], [BUS]),
    ("syslog-flat-012-no-repeat", [f"{SYSLOG}{H}#012{M[6:]}#012{T[6:]}"], [BUS]),
    ("syslog-per-line", [SYSLOG + x for x in (H, M, T)], [BUS]),
    ("syslog-with-dmesg-time", [f"{SYSLOG}[ 12.345678] {FLAT}"], [BUS]),
    ("bare-lines", [H, M, T], [BUS]),
    (
        "older-driver-no-pci-id",
        [f"[ 1843.308145] {H}", f"{INDENT}NVRM: installed in this system has", INDENT + T],
        [BUS],
    ),
    ("with-probe-failure", [f"[ 12.5] {x}" for x in (H, M, T, PROBE)], [BUS]),
    ("with-probe-failure-flat", [SYSLOG + FLAT, SYSLOG + PROBE], [BUS]),
    (
        "probe-failure-older-kernel",
        [f"[ 12.5] {FLAT}", "[ 12.5] nvidia: probe of 0000:5d:00.0 failed with error -1"],
        [BUS],
    ),
    (
        "probe-failure-newer-kernel",
        [
            f"[ 12.5] {FLAT}",
            "[ 12.5] nvidia 0000:5d:00.0: probe with driver nvidia failed with error -1",
        ],
        [BUS],
    ),
    (
        "probe-failure-nvrm",
        [f"[ 12.5] {FLAT}", "[ 12.5] NVRM: probe of 0000:5d:00.0 failed with error -1"],
        [BUS],
    ),
    # two GPUs: one after the other, and interleaved line by line
    (
        "two-gpus-in-turn",
        [f"[ 12.5] {x}" for x in (H, M, T)] + [f"[ 13.5] {x}" for x in (H2, M, T)],
        [BUS, OTHER],
    ),
    (
        "two-gpus-interleaved-same-time",
        [f"[ 12.5] {x}" for x in (H, H2, M, M, T, T)],
        [BUS, OTHER],
    ),
    (
        "two-gpus-interleaved-told-by-time",
        ["[ 12.5] " + H, "[ 12.6] " + H2, "[ 12.6] " + M, "[ 12.5] " + M, "[ 12.6] " + T],
        [OTHER],  # 5d's message has no end: only 9d's is whole
    ),
    (
        "two-gpus-interleaved-kmsg-callers",
        [
            f"3,1,12500000,-,caller=T1;{H}",
            f"3,2,12500000,-,caller=T2;{H2}",
            f"3,3,12500000,-,caller=T2;{M}",
            f"3,4,12500000,-,caller=T2;{T}",
            f"3,5,12500000,-,caller=T1;{M}",
        ],
        [OTHER],
    ),
    (
        "other-lines-between",
        [
            "[ 12.5] " + H,
            "[ 12.5] pci 0000:5d:00.0: something else",
            "[ 12.5] " + M,
            "[ 12.5] " + T,
        ],
        [BUS],
    ),
    # nothing to report
    ("header-only", ["[ 12.5] " + H], []),
    ("no-ending", [f"[ 12.5] {x}" for x in (H, M)], []),
    ("no-ending-one-item", [f"{H}\n{M}"], []),
    ("tail-only", [f"[ 12.5] {x}" for x in (M, T)], []),
    ("address-cut-at-buffer-boundary", ["NVRM: The NVIDIA GPU 0000:5d:0", M, T], []),
    ("flat-cut-at-buffer-boundary", [f"{SYSLOG}{FLAT[:90]}"], []),
    ("kmsg-cut-at-buffer-boundary", [f"3,1234,12345678,-;{H}\\x0a{M}\\x0a"], []),
    (
        "interleaved-one-without-ending",  # the tail could be either GPU's: neither is reported
        [f"[ 12.5] {x}" for x in (H, H2, M, T)],
        [],
    ),
    ("probe-failure-alone", ["[ 12.5] " + PROBE], []),
    ("too-far-apart", ["[ 12.5] " + H, "[ 12.5] " + M, "[ 99.5] " + T], []),
    (
        "unsupported-gpu-message",
        [
            "[ 12.5] NVRM: The NVIDIA GPU 0000:5d:00.0 (PCI ID: 10de:2330)",
            "[ 12.5] NVRM: installed in this system is not supported by the",
            "[ 12.5] NVRM: NVIDIA 390.xx driver release.",
            "[ 12.5] " + PROBE,
        ],
        [],
    ),
    (
        "runtime-one-line-form-unchanged",
        ["[ 12.5] NVRM: GPU 0000:5d:00.0: GPU has fallen off the bus."],
        [BUS],
    ),
]


Decision = tuple[str | None, Action, Severity, list[int]]


def _decision(events: list[XidEvent]) -> Decision:
    (gpu,) = analyze(dedupe(events)).gpus
    return gpu.pci_bus_id, gpu.action, gpu.severity, gpu.xids


def xid79(bus: str | None, missing: bool = False) -> Decision:
    line = f"NVRM: Xid (PCI:{bus}): 79, pid=1, name=x, GPU has fallen off the bus."
    (gpu,) = analyze(parse_lines([line]), gpu_missing=[bus] if missing and bus else []).gpus
    return gpu.pci_bus_id, gpu.action, gpu.severity, gpu.xids


@pytest.mark.parametrize(("items", "buses"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_probe_message_forms(items: list[str], buses: list[str]) -> None:
    events = parse_lines(items)
    assert [e.pci_bus_id for e in events] == buses
    assert all(e.kind == KIND_FALLEN_OFF_BUS and e.xid is None for e in events)
    for ev in events:
        assert _decision([ev]) == xid79(ev.pci_bus_id)


@pytest.mark.parametrize(
    "line",
    [
        SYSLOG + FLAT,
        f"{SYSLOG}{H}#012{M}#012{T}",
        f"3,7,12345678,-;{H}\\x0a{M}\\x0a{T}",
        f"{H}\n{M}\n{T}",
    ],
    ids=["flat-spaces", "flat-012", "kmsg-escaped", "embedded-newlines"],
)
def test_parse_line_reads_a_whole_message(line: str) -> None:
    ev = parse_line(line)
    assert ev is not None and ev.pci_bus_id == BUS and ev.catalog_xid == 79
    assert parse_line(line.replace("fallen off the bus", "lost")) is None


def test_time_sequence_and_source_come_from_the_first_line() -> None:
    (ev,) = parse_lines(
        [f"3,{1234 + i},{12345678 + i},-;{x}" for i, x in enumerate((H, M, T))], boot_time=BOOT
    )
    assert (ev.source, ev.seq) == ("kmsg", 1234)
    assert ev.uptime == pytest.approx(12.345678)
    assert ev.timestamp == pytest.approx(BOOT + 12.345678)


def test_probe_failure_is_evidence_not_a_second_event() -> None:
    (ev,) = parse_lines([f"[ 12.5] {x}" for x in (H, M, T, PROBE)])
    assert ev.line.splitlines()[-1] == f"[ 12.5] {PROBE}"
    (gpu,) = analyze(dedupe([ev])).gpus
    assert gpu.counts == {79: 1}


def test_kmsg_and_dmesg_read_the_same_key() -> None:
    kmsg = parse_lines([f"3,1234,12345678,-;{H}\\x0a{M}\\x0a{T}"])
    dmesg = parse_lines([f"[   12.345678] {H}", INDENT + M, INDENT + T])
    assert kmsg[0].key == dmesg[0].key


def test_one_occurrence_from_every_reporter_is_one_event() -> None:
    """kmsg, the journal's copy, the XID 79 line and NVML's GPU-unavailable event: one event."""
    up = 12.345678
    kmsg = parse_lines(
        [f"3,1234,12345678,-;{H}\\x0a{M}\\x0a{T}", f"4,1235,12345700,-;{PROBE}"], boot_time=BOOT
    )
    journal = parse_lines([f"{H}\n{M}\n{T}"])  # no time of its own: nothing to match on
    stamp = BOOT + up
    iso = parse_lines([f"{_iso(stamp)} host kernel: {FLAT}"])
    xid = parse_lines(
        [f"[ {up + 0.5:.6f}] NVRM: Xid (PCI:{BUS}): 79, pid=1, name=x, GPU has fallen off the bus"],
        boot_time=BOOT,
    )
    nvml = nvml_events([{"type": "gpu_unavailable", "pci_bus_id": BUS, "timestamp": stamp + 1}])
    merged = dedupe([*kmsg, *iso, *xid, *nvml])
    assert len(merged) == 1
    assert merged[0].source == "kmsg" and set(merged[0].sources) >= {"kmsg", "journal", "nvml"}
    assert len(journal) == 1


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(epoch))


def test_decision_on_a_gpu_nvml_cannot_see_is_xid_79s() -> None:
    events = parse_lines([SYSLOG + FLAT])
    (gpu,) = analyze(dedupe(events), gpu_missing=[BUS]).gpus
    assert (gpu.pci_bus_id, gpu.action, gpu.severity, gpu.xids) == xid79(BUS, missing=True)


def test_recorded_h100_boot() -> None:
    lines = FIXTURE.read_text().splitlines()
    events = parse_lines(lines)
    assert [(e.pci_bus_id, e.uptime, e.source) for e in events] == [(BUS, 3.512044, "dmesg")]
    assert "probe of 0000:5d:00.0" in events[0].line
    assert _decision(events) == xid79(BUS)
    # the capture's own lines alone hold no event
    assert parse_lines(lines[:7]) == []
