"""Every action and probe of the catalog, with the local transport and stand-in binaries on PATH
(:mod:`tests.chaos.catalog_stubs`), a fake Prometheus and exporter on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sre_tools.chaos import actions, probes
from sre_tools.chaos.actions import DrillActionError
from sre_tools.exceptions import QueryError, ValidationError
from sre_tools.health.xid.model import drill_run_of
from sre_tools.transport import LocalTransport, TransportError
from tests.chaos.catalog_stubs import (
    GPU0_PCI,
    FakeMonitoring,
    StubNode,
    fake_monitoring,
    make_stub_node,
)

T = LocalTransport()


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StubNode:
    return make_stub_node(tmp_path, monkeypatch)


@pytest.fixture
def monitoring(node: StubNode) -> Iterator[FakeMonitoring]:
    with fake_monitoring(node) as fake:
        yield fake


def script(node: StubNode, name: str, text: str) -> str:
    path = node.bin / name
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return str(path)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit",
    ["sshd", "x.service; reboot", "../etc.service", "-x.service", "a b.service", "", "x.timer"],
)
def test_unit_names_are_strict(unit: str) -> None:
    with pytest.raises(ValidationError, match="not a systemd service name"):
        actions.validate_unit(unit)


@pytest.mark.parametrize("unit", ["slurmd.service", "getty@tty1.service", "nvidia-dcgm.service"])
def test_unit_names_accepted(unit: str) -> None:
    assert actions.validate_unit(unit) == unit


@pytest.mark.parametrize("name", ["dcgmi; id", "$(id)", "../bin/sh", "/usr/../bin/x", "a b", ""])
def test_command_names_are_strict(name: str) -> None:
    with pytest.raises(ValidationError, match="not a command name"):
        actions.validate_command(name)


# --- systemd ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "active"), [("active", True), ("inactive", False), ("failed", False)]
)
def test_unit_state_reads_the_word_not_the_exit_code(
    node: StubNode, state: str, active: bool
) -> None:
    node.set_unit("slurmd.service", state)
    assert probes.unit_state("slurmd.service", transport=T) == state
    assert probes.unit_active("slurmd.service", transport=T) is active


def test_unit_state_without_output_is_an_error(node: StubNode) -> None:
    broken = script(node, "broken-systemctl", "echo 'Failed to connect to bus' >&2; exit 1\n")
    with pytest.raises(TransportError, match="without a state: Failed to connect to bus"):
        probes.unit_state("slurmd.service", systemctl=broken, transport=T)


def test_stop_then_start_only_what_the_drill_stopped(node: StubNode) -> None:
    state_dir = str(node.root / "run")
    before = actions.stop_service("slurmd.service", state_dir=state_dir, transport=T, run_id="r1")
    assert before == "active" and node.unit("slurmd.service") == "inactive"
    assert (node.root / "run/slurmd.service.stopped").read_text() == "r1 active\n"
    assert actions.start_service("slurmd.service", state_dir=state_dir, transport=T) == "started"
    assert node.unit("slurmd.service") == "active"
    # Twice, and on a node never faulted: nothing happens.
    again = actions.start_service("slurmd.service", state_dir=state_dir, transport=T)
    assert again == "not stopped by a drill: left active"
    node.set_unit("nvidia-fabricmanager.service", "inactive")  # an operator's doing
    left = actions.start_service("nvidia-fabricmanager.service", state_dir=state_dir, transport=T)
    assert left == "not stopped by a drill: left inactive"
    assert node.unit("nvidia-fabricmanager.service") == "inactive"
    assert node.log("systemctl").count("start slurmd.service") == 1


def test_start_leaves_a_unit_that_was_not_active_before_the_drill(node: StubNode) -> None:
    state_dir = str(node.root / "run")
    node.set_unit("slurmd.service", "failed")
    assert actions.stop_service("slurmd.service", state_dir=state_dir, transport=T) == "failed"
    done = actions.start_service("slurmd.service", state_dir=state_dir, transport=T)
    assert done == "was failed before the drill: left as is"
    assert "start slurmd.service" not in node.log("systemctl")
    assert not (node.root / "run/slurmd.service.stopped").exists()


def test_start_waits_until_active(node: StubNode) -> None:
    state_dir = str(node.root / "run")
    actions.stop_service("slurmd.service", state_dir=state_dir, transport=T)
    (node.state / "units/slurmd.service.slow").touch()
    assert actions.start_service("slurmd.service", state_dir=state_dir, poll=0.01, transport=T) == (
        "started"
    )
    assert node.log("systemctl")[-2:] == ["is-active slurmd.service", "is-active slurmd.service"]


def test_start_that_never_becomes_active_fails_and_keeps_the_note(node: StubNode) -> None:
    state_dir = str(node.root / "run")
    actions.stop_service("slurmd.service", state_dir=state_dir, transport=T)
    stuck = script(
        node, "stuck-systemctl", 'if [ "$1" = is-active ]; then echo failed; exit 3; fi\n'
    )
    with pytest.raises(DrillActionError, match=r"slurmd\.service active: not reached within"):
        actions.start_service(
            "slurmd.service",
            systemctl=stuck,
            state_dir=state_dir,
            within=0.05,
            poll=0.01,
            transport=T,
        )
    assert (node.root / "run/slurmd.service.stopped").exists()  # recover will try again


# --- Slurm -----------------------------------------------------------------------------------


def test_node_state_takes_the_first_partition_line(node: StubNode) -> None:
    (node.state / "two_partitions").touch()
    assert probes.node_state(transport=T, node="n1") == "idle"
    assert probes.node_responding(transport=T, node="n1") is True


def test_not_responding_is_the_star(node: StubNode) -> None:
    node.set_unit("slurmd.service", "inactive")
    assert probes.node_state(transport=T, node="n1") == "idle*"
    assert probes.node_responding(transport=T, node="n1") is False
    with pytest.raises(DrillActionError, match="slurm node n1 responding"):
        actions.wait_node_responding(within=0.05, poll=0.01, transport=T, node="n1")
    node.set_unit("slurmd.service", "active")
    assert actions.wait_node_responding(within=1, poll=0.01, transport=T, node="n1") == "idle"


def test_drain_and_resume_only_a_drills_drain(node: StubNode) -> None:
    reason = actions.drain_node(transport=T, node="n1", run_id="r2")
    assert reason == "sre:drill run=r2"
    assert node.node() == ("drained", "sre:drill run=r2")
    assert probes.node_reason(transport=T, node="n1") == "sre:drill run=r2"
    assert actions.resume_node(transport=T, node="n1") is True
    assert node.node() == ("idle", "none")
    node.set_node("drained", "bad dimm (ops)")
    assert actions.resume_node(transport=T, node="n1") is False
    assert node.node() == ("drained", "bad dimm (ops)")


def test_resume_if_healthy(node: StubNode) -> None:
    sre = str(node.bin / "sre")
    kernel_log = str(node.kernel_log)
    node.set_node("drained", "ops: keep out")
    done = actions.resume_if_healthy(sre=sre, kernel_log=kernel_log, transport=T, node="n1")
    assert done == "left as is (reason 'ops: keep out' is not the toolkit's)"
    node.set_node("drained", "sre: remediation xid 79")
    actions.inject_xid(kernel_log, pci=GPU0_PCI, transport=T, run_id="r3")
    done = actions.resume_if_healthy(sre=sre, kernel_log=kernel_log, transport=T, node="n1")
    assert done == "left drained: health is crit (action reboot)"
    assert node.node()[0] == "drained"
    actions.acknowledge_xid(kernel_log, str(node.acks_file), transport=T, run_id="r3")
    done = actions.resume_if_healthy(sre=sre, kernel_log=kernel_log, transport=T, node="n1")
    assert done == "resumed (reason was 'sre: remediation xid 79', health ok)"
    assert node.node() == ("idle", "none")
    assert node.log("sre")[-1] == f"health --json --kernel-log {kernel_log}"


# --- the kernel log --------------------------------------------------------------------------


def test_inject_count_and_acknowledge_xid_lines(node: StubNode) -> None:
    """The log is never edited: a real line and the drill's stay, byte for byte; the run is
    acknowledged, once, and its line stops counting."""
    log, acks = str(node.kernel_log), str(node.acks_file)
    real = "NVRM: Xid (PCI:0000:9a:00): 13, a real one\n"
    node.kernel_log.write_text(real)
    line = actions.inject_xid(log, xid=48, pci=GPU0_PCI, transport=T, run_id="r4")
    assert line.startswith(f"NVRM: Xid (PCI:{GPU0_PCI}): 48, ") and "[sre-drill run=r4]" in line
    assert probes.drill_xid_lines(log, acks, transport=T) == 1
    assert actions.acknowledge_xid(log, acks, transport=T, run_id="r4") == (
        f"acknowledged in {acks}: r4"
    )
    actions.acknowledge_xid(log, acks, transport=T, run_id="r4")
    assert node.acks_file.read_text() == "r4\n"
    assert probes.drill_xid_lines(log, acks, transport=T) == 0
    assert node.kernel_log.read_text() == real + line + "\n"
    assert probes.drill_xid_lines(str(node.root / "none.log"), acks, transport=T) == 0


# --- sre health ------------------------------------------------------------------------------


def test_health_status_and_finding(node: StubNode) -> None:
    sre, log = str(node.bin / "sre"), str(node.kernel_log)
    assert probes.health_status(sre=sre, kernel_log=log, transport=T) == "ok"
    assert probes.health_finding("xid", sre=sre, kernel_log=log, transport=T) == "ok:none"
    assert probes.health_finding("no.such", sre=sre, kernel_log=log, transport=T) == "absent"
    actions.inject_xid(log, xid=79, pci=GPU0_PCI, transport=T, run_id="r5")
    assert probes.health_status(sre=sre, kernel_log=log, transport=T) == "crit"  # exit 2
    assert probes.health_finding("xid", sre=sre, kernel_log=log, transport=T) == "crit:reboot"


def test_health_without_a_report_is_an_error(node: StubNode) -> None:
    sre = str(node.bin / "sre")
    with pytest.raises(TransportError, match="sre health exited 3 without a JSON report"):
        probes.health_status(sre=sre, kernel_log=str(node.root / "missing"), transport=T)


def test_health_options_are_passed_only_when_set(node: StubNode) -> None:
    fake = script(node, "fake-sre", 'echo "$*" > "$STUB_STATE/args"; echo \'{"status": "warn"}\'\n')
    assert (
        probes.health_status(sre=fake, profile="h100", config="/etc/p.yaml", transport=T) == "warn"
    )
    assert (
        node.state / "args"
    ).read_text() == "health --json --profile h100 --config /etc/p.yaml\n"


def test_wait_health_finding(node: StubNode) -> None:
    sre, log = str(node.bin / "sre"), str(node.kernel_log)
    assert (
        actions.wait_health_finding("fabric.state", ["ok:none"], sre=sre, transport=T) == "ok:none"
    )
    actions.inject_xid(log, pci=GPU0_PCI, transport=T, run_id="r6")
    with pytest.raises(DrillActionError, match=r"health xid in \['ok:none'\]"):
        actions.wait_health_finding(
            "xid", ["ok:none"], sre=sre, kernel_log=log, within=0.01, poll=0.01, transport=T
        )


# --- DCGM ------------------------------------------------------------------------------------


def test_dcgm_inject_health_and_restore(node: StubNode) -> None:
    assert probes.command_available("dcgmi", transport=T) is True
    assert probes.dcgm_health(transport=T) == "healthy"
    assert actions.dcgm_inject(0, 311, 1, transport=T) == "Successfully injected field info."
    assert probes.dcgm_health(transport=T) == "failure"
    actions.dcgm_restore(0, 311, 0, transport=T)
    assert probes.dcgm_health(transport=T) == "healthy"
    assert node.log("dcgmi")[1] == "test --inject --gpuid 0 -f 311 -v 1"


def test_dcgm_without_dcgmi(node: StubNode) -> None:
    node.remove("dcgmi")
    assert probes.command_available("dcgmi", transport=T) is False
    state = str(node.root / "run")
    assert actions.dcgm_restore(0, 311, 0, state_dir=state, transport=T) == (
        "no drill injection noted: nothing to undo"
    )


def test_dcgm_health_without_a_verdict_is_an_error(node: StubNode) -> None:
    bad = script(node, "bad-dcgmi", "echo 'Error: unable to establish a connection' >&2; exit 1\n")
    with pytest.raises(TransportError, match="without an overall verdict: Error: unable"):
        probes.dcgm_health(dcgmi=bad, transport=T)


# --- Prometheus and the exporter (controller side) -------------------------------------------


def test_alerts_selector_escapes_and_matches_the_node() -> None:
    sel = probes.alerts_selector(
        "GpuXid.*", {"severity": 'crit"ical'}, node_label="instance", node="gpu-01.x"
    )
    assert sel == (
        'ALERTS{alertname=~"GpuXid.*", alertstate="firing", severity="crit\\"ical", '
        'instance=~"gpu\\\\-01\\\\.x([.:].*)?"}'
    )
    with pytest.raises(ValidationError, match="not an alert name"):
        probes.alerts_selector('x"} or vector(1) #')
    with pytest.raises(ValidationError, match="not a usable label name"):
        probes.alerts_selector("GpuLost", {"alertstate": "pending"})


def test_alert_firing_follows_the_node(node: StubNode, monitoring: FakeMonitoring) -> None:
    url = monitoring.url
    assert probes.alert_firing(url, "GpuExporterDown") is False
    node.set_unit("sre-exporter.service", "inactive")
    assert probes.alert_firing(url, "GpuExporterDown") is True
    assert probes.alert_firing(url, "GpuXid.*") is False
    with pytest.raises(DrillActionError, match="alert GpuExporterDown resolved"):
        actions.wait_alert_resolved(url, "GpuExporterDown", within=0.05, poll=0.01)
    # Not waiting when the unit the alert is about is not running.
    assert (
        actions.wait_alert_resolved(
            url, "GpuExporterDown", unit="sre-exporter.service", transport=T
        )
        == "sre-exporter.service is inactive: not waiting for GpuExporterDown to resolve"
    )
    node.set_unit("sre-exporter.service", "active")
    assert actions.wait_alert_resolved(url, "GpuExporterDown", within=1, poll=0.01) == "resolved"


def test_promql_and_threshold(monitoring: FakeMonitoring) -> None:
    url = monitoring.url
    monitoring.values.update({"one": [0.5], "two": [1.0, 2.0], "nan": [float("nan")]})
    assert probes.promql(url, "one") == 0.5
    assert probes.promql(url, "none") is None
    assert probes.promql(url, "nan") is None
    with pytest.raises(QueryError, match="returned 2 series"):
        probes.promql(url, "two")
    assert probes.promql_threshold(url, "one", below=0.9) == "met"
    assert probes.promql_threshold(url, "one", above=0.9) == "not-met"
    assert probes.promql_threshold(url, "none", below=1) == "no-data"
    assert probes.promql_threshold("", "one", below=1) == "not-configured"


def test_prometheus_unreachable_is_a_query_error() -> None:
    with pytest.raises(QueryError, match="cannot reach Prometheus"):
        probes.promql("http://127.0.0.1:1", "up", timeout=2)


def test_exporter_metric(node: StubNode, monitoring: FakeMonitoring) -> None:
    url = monitoring.url.replace("127.0.0.1", "{node}")
    assert probes.exporter_metric(url, "gpu_xid_events_total", {"xid": "79"}, node="127.0.0.1") == 0
    actions.inject_xid(str(node.kernel_log), pci=GPU0_PCI, transport=T, run_id="r7")
    value = probes.exporter_metric(f"{monitoring.url}/metrics", "gpu_xid_events_total", {"xid": 79})
    assert value == 1
    assert probes.exporter_metric(monitoring.url, "gpu_xid_events_total", {"xid": "13"}) is None
    assert probes.exporter_metric(monitoring.url, "gpu_xid_events") is None  # the sample's name
    with pytest.raises(ValidationError, match="invalid exporter URL"):
        probes.exporter_metric("file:///etc/passwd", "x")
    with pytest.raises(QueryError, match="cannot read the exporter's metrics"):
        probes.exporter_metric("http://127.0.0.1:1/metrics", "x", timeout=2)


# --- run outside the runner (Chaos Toolkit) --------------------------------------------------


def test_injected_arguments_default_to_this_machine(node: StubNode) -> None:
    assert probes.unit_state("slurmd.service") == "active"
    assert probes.node_state() == "idle"
    assert actions.poll_until(lambda: 3, lambda v: v == 3, 0, 1, "x") == 3


def test_acknowledge_without_a_run_id_takes_every_run_in_the_log(node: StubNode) -> None:
    """Outside the runner (``chaos run``): each injection gets its own ``manual-...`` id, and an
    acknowledgment without a run id takes every drill run still counting, not a fixed name that
    would hide later manual runs."""
    log, acks = str(node.kernel_log), str(node.acks_file)
    first = actions.inject_xid(log, xid=79, pci=GPU0_PCI, transport=T)
    second = actions.inject_xid(log, xid=79, pci=GPU0_PCI, transport=T)
    ids = [drill_run_of(first), drill_run_of(second)]
    assert all(i and i.startswith("manual-") for i in ids) and ids[0] != ids[1]
    assert actions.acknowledge_xid(log, acks, transport=T) == (
        f"acknowledged in {acks}: {ids[0]}, {ids[1]}"
    )
    assert probes.drill_xid_lines(log, acks, transport=T) == 0
    later = actions.inject_xid(log, xid=79, pci=GPU0_PCI, transport=T)
    assert probes.drill_xid_lines(log, acks, transport=T) == 1, later
    with pytest.raises(ValidationError, match="run id"):
        actions.acknowledge_xid(log, acks, transport=T, run_id="a\nb")
    with pytest.raises(ValidationError, match="not an absolute path"):
        actions.acknowledge_xid(log, "drill-acks", transport=T, run_id="r1")


def test_drill_lines_in_kmsg_are_read_through_dmesg_and_count_until_acknowledged(
    node: StubNode,
) -> None:
    acks = node.root / "acks"
    real = "[ 5.1] NVRM: Xid (PCI:0000:9a:00): 13, a real one"
    lines = [real, f"[ 9.0] {actions.xid_line(79, GPU0_PCI, 'drill-k')}"]
    script(node, "dmesg", "cat <<'EOF'\n" + "\n".join(lines) + "\nEOF\n")
    assert probes.drill_xid_lines(actions.KMSG, acks_file=str(acks), transport=T) == 1
    acks.write_text("drill-k\n")
    assert probes.drill_xid_lines(actions.KMSG, acks_file=str(acks), transport=T) == 0


def test_inject_xid_resolves_the_gpu_address_on_the_node(tmp_path: Path) -> None:
    """With no pci, the line names GPU `gpu`'s address as the node's `sre health` reports it
    (the real sre on the H100 recording: 00000000:00:06.0)."""
    import sys

    sre = str(Path(sys.executable).with_name("sre"))
    replay = str(Path(__file__).parents[1] / "fixtures" / "gpu" / "h100-capture.json")
    log = str(tmp_path / "kern.log")
    line = actions.inject_xid(log, gpu=0, sre=sre, replay=replay, transport=T, run_id="r7")
    assert line.startswith("NVRM: Xid (PCI:0000:00:06): 79, ")
    with pytest.raises(TransportError, match="no GPU 3"):
        actions.inject_xid(log, gpu=3, sre=sre, replay=replay, transport=T, run_id="r7")
    with pytest.raises(ValidationError, match="not a PCI address"):
        actions.inject_xid(log, pci="0000:zz; reboot", transport=T, run_id="r7")
