"""InfiniBand from a fake sysfs tree and kernel-log lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from sre_tools.gpu.backend import RecordedBackend
from sre_tools.health.ib_ports import count_link_flaps, parse_rate, parse_state, read_ports
from sre_tools.health.model import Action, Severity
from sre_tools.health.policy import load_policy
from sre_tools.health.runner import run_health
from sre_tools.health.state import CounterState
from tests.health.checks.conftest import H100, T0, Runner, only, problems

HEALTHY_COUNTERS = {
    "symbol_error": 0,
    "link_downed": 0,
    "link_error_recovery": 0,
    "port_rcv_errors": 0,
}


def make_port(
    sysfs: Path,
    device: str,
    port: int,
    *,
    state: str = "4: ACTIVE",
    phys_state: str = "5: LinkUp",
    rate: str = "400 Gb/sec (4X NDR)",
    link_layer: str = "InfiniBand",
    counters: dict[str, int] | None = None,
) -> Path:
    pdir = sysfs / "class" / "infiniband" / device / "ports" / str(port)
    (pdir / "counters").mkdir(parents=True, exist_ok=True)
    (pdir / "state").write_text(state + "\n")
    (pdir / "phys_state").write_text(phys_state + "\n")
    (pdir / "rate").write_text(rate + "\n")
    (pdir / "link_layer").write_text(link_layer + "\n")
    for name, value in (HEALTHY_COUNTERS if counters is None else counters).items():
        (pdir / "counters" / name).write_text(f"{value}\n")
    return pdir


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4: ACTIVE", (4, "ACTIVE")),
        ("1: DOWN\n", (1, "DOWN")),
        ("5: LinkUp", (5, "LinkUp")),
        ("3: Disabled", (3, "Disabled")),
        ("garbage", (None, "garbage")),
        ("", (None, "")),
    ],
)
def test_parse_state(text: str, expected: tuple[int | None, str]) -> None:
    assert parse_state(text) == expected


@pytest.mark.parametrize(
    ("text", "gbps"),
    [
        ("400 Gb/sec (4X NDR)", 400.0),
        ("200 Gb/sec (4X HDR)", 200.0),
        ("100 Gb/sec (2X HDR)", 100.0),
        ("2.5 Gb/sec (1X SDR)", 2.5),
        ("53.125 Gb/sec (1X PAM4)", 53.125),
        ("", None),
        ("unknown", None),
    ],
)
def test_parse_rate(text: str, gbps: float | None) -> None:
    assert parse_rate(text) == gbps


def test_read_ports_reads_the_tree(sysfs: Path) -> None:
    make_port(sysfs, "mlx5_1", 1, rate="200 Gb/sec (4X HDR)")
    make_port(sysfs, "mlx5_0", 1)
    make_port(sysfs, "mlx5_0", 2, state="1: DOWN", phys_state="3: Disabled")
    ports = read_ports(sysfs)
    assert [p.name for p in ports] == ["mlx5_0/1", "mlx5_0/2", "mlx5_1/1"]
    assert ports[0].up and not ports[1].up
    assert ports[2].rate_gbps == 200.0
    assert ports[0].counters == HEALTHY_COUNTERS


def test_no_devices_is_one_skipped_finding(run: Runner) -> None:
    report = run(H100)
    ib = [f for f in report.findings if f.check.startswith("ib.")]
    assert [(f.check, f.severity) for f in ib] == [("ib.port_state", Severity.SKIPPED)]


def test_disabled_by_policy(run: Runner, sysfs: Path) -> None:
    make_port(sysfs, "mlx5_0", 1, state="1: DOWN")
    report = run(H100, config="infiniband:\n  enabled: false\n")
    ib = [f for f in report.findings if f.check.startswith("ib.")]
    assert [(f.check, f.severity) for f in ib] == [("ib.port_state", Severity.SKIPPED)]


def test_ethernet_rdma_ports_are_left_out(run: Runner, sysfs: Path) -> None:
    make_port(sysfs, "mlx5_0", 1, link_layer="Ethernet", state="1: DOWN", rate="25 Gb/sec (1X)")
    report = run(H100)
    (f,) = only(report, "ib.port_state")
    assert f.severity is Severity.SKIPPED
    assert f.evidence["other_rdma_ports"] == ["mlx5_0/1"]


def test_healthy_ports(run: Runner, sysfs: Path) -> None:
    for i in range(4):
        make_port(sysfs, f"mlx5_{i}", 1)
    report = run(H100, config="infiniband:\n  expected_rate_gbps: 400\n")
    assert problems(report) == []
    assert len(only(report, "ib.port_state")) == 4
    assert len(only(report, "ib.rate")) == 4
    assert [f.severity for f in only(report, "ib.flaps")] == [Severity.OK]


@pytest.mark.parametrize(
    ("state", "phys_state"),
    [
        pytest.param("1: DOWN", "3: Disabled", id="down-disabled"),
        pytest.param("1: DOWN", "2: Polling", id="down-polling"),
        pytest.param("2: INIT", "5: LinkUp", id="init-no-subnet-manager"),
    ],
)
def test_port_not_active_is_crit(run: Runner, sysfs: Path, state: str, phys_state: str) -> None:
    make_port(sysfs, "mlx5_0", 1, state=state, phys_state=phys_state)
    report = run(H100)
    (f,) = [f for f in problems(report) if f.check == "ib.port_state"]
    assert (f.severity, f.action) == (Severity.CRIT, Action.CHECK_MECHANICALS)
    assert f.evidence["device"] == "mlx5_0" and f.evidence["port"] == 1


@pytest.mark.parametrize(
    ("config", "severity"),
    [
        pytest.param(None, Severity.OK, id="generic-expects-nothing"),
        pytest.param("profile: h100-sxm-8\nexpected_gpus: 1\n", Severity.WARN, id="h100-400"),
        pytest.param("profile: a100-sxm-8\nexpected_gpus: 1\n", Severity.OK, id="a100-200"),
    ],
)
def test_rate_below_expected(
    run: Runner, sysfs: Path, config: str | None, severity: Severity
) -> None:
    make_port(sysfs, "mlx5_0", 1, rate="200 Gb/sec (4X HDR)")
    report = run(H100, config=config)
    (f,) = only(report, "ib.rate")
    assert f.severity is severity
    assert f.evidence["rate_gbps"] == 200.0


FLAP_LINES = [
    "[ 100.1] mlx5_core 0000:ca:00.0 ibp202s0: Link down",
    "[ 101.3] mlx5_core 0000:ca:00.0 ibp202s0: Link up",
    "[ 200.1] mlx5_core 0000:ca:00.0 ibp202s0: Link down",
    "[ 300.1] mlx5_core 0000:CA:00.0 ibp202s0: Link down",
    "[ 400.1] mlx5_core 0000:ca:00.0 ibp202s0: Link down",
    "[ 400.5] mlx5_core 0000:3b:00.0 enp59s0f0np0: Link down",
    "[ 500.0] NVRM: Xid (PCI:0000:1b:00): 79, GPU has fallen off the bus.",
]


def test_count_link_flaps() -> None:
    assert count_link_flaps(FLAP_LINES) == {"0000:ca:00.0": 4, "0000:3b:00.0": 1}
    assert count_link_flaps([]) == {}


@pytest.mark.parametrize(
    ("lines", "severity"),
    [
        pytest.param(FLAP_LINES, Severity.WARN, id="4-downs-over-3"),
        pytest.param(FLAP_LINES[:4], Severity.OK, id="3-downs-at-limit"),
        pytest.param([], Severity.OK, id="quiet-log"),
    ],
)
def test_flaps(run: Runner, sysfs: Path, lines: list[str], severity: Severity) -> None:
    make_port(sysfs, "mlx5_0", 1)
    report = run(H100, kernel_log_lines=lines)
    (f,) = only(report, "ib.flaps")
    assert f.severity is severity
    if severity is Severity.WARN:
        assert f.action is Action.CHECK_MECHANICALS
        assert "0000:ca:00.0" in f.summary


def test_flaps_not_counted_without_kernel_log(sysfs: Path, tmp_path: Path) -> None:
    make_port(sysfs, "mlx5_0", 1)
    report = run_health(
        RecordedBackend.load(H100),
        load_policy(),
        state=CounterState(tmp_path / "s.json"),
        now=T0,
        sysfs=sysfs,
        kernel_log_lines=None,
        host="node1",
    )
    (f,) = only(report, "ib.flaps")
    assert f.severity is Severity.SKIPPED


def test_port_without_counters_skips_error_rates(run: Runner, sysfs: Path) -> None:
    make_port(sysfs, "mlx5_0", 1, counters={})
    report = run(H100)
    (f,) = only(report, "ib.errors")
    assert f.severity is Severity.SKIPPED
    assert [x.severity for x in only(report, "ib.port_state")] == [Severity.OK]
