"""The kernel-log parser: every prefix we meet, MIG, the text form, and hostile input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sre_tools.health.xid.parser import normalize_bus_id, parse_line, parse_lines

from .conftest import BOOT, T0

FELL = "NVRM: Xid (PCI:0000:18:00): 79, pid=1234, name=python, GPU has fallen off the bus."
DBE = (
    "NVRM: Xid (PCI:0000:3b:00): 48, pid='<unknown>', name=<unknown>, An uncorrectable double "
    "bit error (DBE) has been detected on GPU in the framebuffer at partition 6, subpartition 0."
)

# (id, line, expected fields); fields not named are not checked.
CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "dmesg",
        f"[ 1234.567890] {FELL}",
        {
            "xid": 79,
            "pci_bus_id": "0000:18:00",
            "pid": 1234,
            "name": "python",
            "message": "GPU has fallen off the bus.",
            "uptime": 1234.56789,
            "source": "dmesg",
            "gpu_instance": None,
        },
    ),
    (
        "bare",
        DBE,
        {
            "xid": 48,
            "pci_bus_id": "0000:3b:00",
            "pid": None,
            "name": None,
            "timestamp": None,
            "uptime": None,
            "source": "text",
        },
    ),
    (
        "pid-elided",
        "NVRM: Xid (PCI:0000:b7:00): 94, pid=..., Contained ECC error.",
        {"xid": 94, "pci_bus_id": "0000:b7:00", "pid": None, "message": "Contained ECC error."},
    ),
    (
        "mig",
        "NVRM: Xid (PCI:0000:18:00 GPU-I:05): 43, pid=77, name=train, Ch 00000008",
        {"xid": 43, "gpu_instance": "GPU-I:05", "pci_bus_id": "0000:18:00", "pid": 77},
    ),
    (
        "xid154",
        "NVRM: Xid (PCI:0000:18:00): 154, GPU recovery action changed from 0x0 (None) to 0x1 "
        "(GPU Reset Required)",
        {"xid": 154, "recovery_action": 1, "pid": None},
    ),
    (
        "xid154-reboot",
        "NVRM: Xid (PCI:0000:18:00): 154, GPU recovery action changed from 0x0 (None) to 0x2 "
        "(Node Reboot Required)",
        {"xid": 154, "recovery_action": 2},
    ),
    (
        "kmsg",
        f"4,1234,5678901234,-;{FELL}",
        {"xid": 79, "seq": 1234, "uptime": 5678.901234, "source": "kmsg"},
    ),
    (
        "kmsg-caller",
        f"4,99,1500000,-,caller=T42;{DBE}",
        {"xid": 48, "seq": 99, "uptime": 1.5, "source": "kmsg"},
    ),
    (
        "journal-iso",
        f"2026-11-20T10:00:00+0000 host kernel: {FELL}",
        {"xid": 79, "timestamp": T0, "source": "journal", "uptime": None},
    ),
    (
        "journal-iso-colon-precise",
        f"2026-11-20T11:00:00.250000+01:00 host kernel: {FELL}",
        {"timestamp": T0 + 0.25, "source": "journal"},
    ),
    (
        "iso-zulu",
        f"2026-11-20T10:00:00Z host kernel: {FELL}",
        {"timestamp": T0},
    ),
    (
        "syslog-with-dmesg-time",
        f"Nov 20 10:00:00 host kernel: [ 12.500000] {FELL}",
        {"xid": 79, "uptime": 12.5, "source": "syslog", "timestamp": None},
    ),
    (
        "old-format-no-pci",
        "[  3.25] NVRM: Xid (0000:03:00): 14, Channel 00000001",
        {"xid": 14, "pci_bus_id": "0000:03:00", "message": "Channel 00000001", "uptime": 3.25},
    ),
    (
        "gb200-domain",
        "NVRM: Xid (PCI:0018:01:00): 145, RLW_SRC_TRACK Nonfatal XC0 i0 Link 12 "
        "(0x00000000 0x00000010 0x0 0x0 0x0 0x0 0x0)",
        {"xid": 145, "pci_bus_id": "0018:01:00"},
    ),
    (
        "fallen-off-text",
        "NVRM: GPU 0000:18:00.0: GPU has fallen off the bus.",
        {"xid": None, "kind": "fallen_off_bus", "pci_bus_id": "0000:18:00"},
    ),
    (
        "fallen-off-text-one-line",
        "NVRM: GPU at PCI:0000:18:00: GPU-8ab4a7c1-0000-1111-2222-333344445555 ... "
        "NVRM: GPU 0000:18:00.0: GPU has fallen off the bus.",
        {
            "xid": None,
            "kind": "fallen_off_bus",
            "uuid": "GPU-8ab4a7c1-0000-1111-2222-333344445555",
        },
    ),
    (
        "fallen-off-text-dmesg",
        "[ 99.000001] NVRM: GPU 0000:3B:00.0: GPU has fallen off the bus.",
        {"kind": "fallen_off_bus", "pci_bus_id": "0000:3b:00", "uptime": 99.000001},
    ),
]


@pytest.mark.parametrize(("line", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_line(line: str, expected: dict[str, Any]) -> None:
    ev = parse_line(line)
    assert ev is not None
    for name, value in expected.items():
        got = getattr(ev, name)
        if isinstance(value, float):
            assert got == pytest.approx(value), name
        else:
            assert got == value, name


@pytest.mark.parametrize(
    "line",
    [
        "",
        "random kernel line",
        "[ 1.0] nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 12028, Non-fatal, Link 32",
        "NVRM: GPU at PCI:0000:18:00: GPU-8ab4a7c1-0000-1111-2222-333344445555",
        "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  580.95.05",
        "NVRM: Xid (PCI:zz:18:00): 79, pid=1, bad bus",
        "NVRM: Xid (PCI:0000:18:00): notanumber",
        "NVRM: Xid (PCI:0000:18:00): 1234567, seven digits is no XID",
        "-- No entries --",
        FELL + " " + "x" * 5000,  # longer than any kernel line
    ],
    ids=[
        "empty",
        "other",
        "sxid",
        "gpu-at-only",
        "module-load",
        "bad-bus",
        "no-number",
        "too-long-number",
        "journal-empty",
        "huge",
    ],
)
def test_not_an_xid(line: str) -> None:
    assert parse_line(line) is None


def test_boot_time_gives_wall_clock() -> None:
    ev = parse_line(f"[ 1234.5] {FELL}", boot_time=BOOT)
    assert ev is not None
    assert ev.timestamp == pytest.approx(BOOT + 1234.5)
    kmsg = parse_line(f"6,1,2000000,-;{FELL}", boot_time=BOOT)
    assert kmsg is not None and kmsg.timestamp == pytest.approx(BOOT + 2.0)


def test_parse_lines_keeps_order_sets_keys_and_uuids() -> None:
    text = "\n".join(
        [
            "[ 1.0] NVRM: GPU at PCI:0000:18:00: GPU-8ab4a7c1-0000-1111-2222-333344445555",
            f"[ 2.0] {FELL}",
            "[ 2.0] some other driver line",
            f"[ 3.0] {DBE}",
        ]
    )
    events = parse_lines([text])
    assert [e.xid for e in events] == [79, 48]
    assert events[0].uuid == "GPU-8ab4a7c1-0000-1111-2222-333344445555"
    assert events[1].uuid is None
    assert all(e.key for e in events)
    assert len({e.key for e in events}) == 2


def test_keys_are_stable_and_repeat_safe() -> None:
    lines = [f"2026-11-20T10:00:00+0000 h kernel: {DBE}"] * 3
    first = [e.key for e in parse_lines(lines)]
    assert first == [e.key for e in parse_lines(lines)]
    assert len(set(first)) == 3  # same second, same text: still three events
    # dmesg and kmsg print the same microseconds: the same key
    a = parse_lines([f"[ 12.000001] {DBE}"])[0].key
    b = parse_lines([f"4,7,12000001,-;{DBE}"])[0].key
    assert a == b


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00000000:18:00.0", "0000:18:00"),
        ("0000:3B:00", "0000:3b:00"),
        ("PCI:0018:01:00", "0018:01:00"),
        ("18:00.0", "0000:18:00"),
        ("", None),
        ("nonsense", None),
        (None, None),
    ],
)
def test_normalize_bus_id(text: str | None, expected: str | None) -> None:
    assert normalize_bus_id(text) == expected


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_pieces = st.sampled_from(
    [
        "NVRM: ",
        "Xid ",
        "(PCI:",
        "0000:18:00",
        " GPU-I:",
        "05",
        "): ",
        "79",
        "154",
        ", pid=",
        "'<unknown>'",
        ", name=",
        "python",
        ", ",
        "GPU recovery action changed from 0x0 (None) to 0x",
        "(",
        ")",
        "[ 12.5] ",
        "4,1,99,-;",
        "2026-11-20T10:00:00+0000 h kernel: ",
        "NVRM: GPU 0000:18:00.0: GPU has fallen off the bus.",
        "NVRM: The NVIDIA GPU 0000:18:00.0",
        " (PCI ID: 10de:2330)",
        " installed in this system has",
        " fallen off the bus and is not responding to commands.",
        "nvidia 0000:18:00.0: probe of 0000:18:00.0 failed with error -1",
        "#012",
        "\\x0a",
        "4,2,99,c;",
        "        ",
        "\x00",
        "\n",
        "\udcff",
    ]
)


@FUZZ
@given(st.text())
def test_fuzz_text_never_raises(text: str) -> None:
    parse_line(text)
    parse_lines([text])


@FUZZ
@given(st.lists(st.one_of(_pieces, st.text(max_size=8)), max_size=30))
def test_fuzz_near_misses_never_raise(parts: list[str]) -> None:
    text = "".join(parts)
    for ev in parse_lines([text], boot_time=BOOT):
        assert ev.key
        assert ev.pci_bus_id is None or len(ev.pci_bus_id) >= 10


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_binary_never_raises(data: bytes) -> None:
    parse_lines([data.decode("utf-8", "replace"), data.decode("latin-1")])
