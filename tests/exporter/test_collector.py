"""The collector on recordings: names, labels, units, lost devices, decoupled scrapes."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from sre_tools.exporter import metric_names as c
from sre_tools.health.model import Action, Finding, GpuRef, HealthReport, Severity
from sre_tools.health.xid.parser import normalize_bus_id
from tests.exporter.conftest import (
    BUS0,
    BUS1,
    FAULTS,
    HEALTHY,
    SHARED,
    UUID0,
    UUID1,
    CountingBackend,
    load_data,
    make_loop,
    one,
    samples,
    scrape,
    shared_fixtures,
    values,
)

# Metrics that describe the GPU's state rather than a reading of it: the only GPU series a lost
# device still has.
PRESENCE = {c.GPU_UP, c.GPU_INFO, c.GPU_HEALTH_CHECK_STATUS}
UNIT_SUFFIXES = ("_celsius", "_watts", "_hertz", "_bytes", "_seconds", "_ratio")


# --- naming conventions -------------------------------------------------------------------------


@pytest.mark.parametrize("spec", c.METRICS, ids=lambda s: s.name)
def test_metric_names_follow_prometheus_conventions(spec: c.MetricSpec) -> None:
    assert re.fullmatch(r"gpu_[a-z0-9_]+", spec.name)
    assert spec.name.endswith("_total") == (spec.kind is c.Kind.COUNTER)
    assert not re.search(r"_(mw|mhz|percent|celsius_total|ms)(_|$)", spec.name)
    if c.GPU_LABELS[0] in spec.labels:
        assert spec.labels[:3] == c.GPU_LABELS, "uuid, gpu and pci_bus_id on every GPU series"
    assert len(set(spec.labels)) == len(spec.labels)


def test_unit_bearing_metrics_use_base_units() -> None:
    for name in (
        c.GPU_TEMPERATURE,
        c.GPU_POWER_USAGE,
        c.GPU_CLOCK,
        c.GPU_MEMORY_USED,
        c.GPU_CLOCK_THROTTLE,
        c.GPU_UTILIZATION,
        c.EXPORTER_COLLECTION_DURATION,
        c.EXPORTER_LAST_COLLECTION,
        c.GPU_XID_LAST_EVENT,
    ):
        assert name.removesuffix("_total").endswith(UNIT_SUFFIXES), name


# --- values from a healthy recording ------------------------------------------------------------


def test_healthy_recording_exports_every_reading_in_base_units() -> None:
    loop = make_loop(CountingBackend.from_file(HEALTHY), config="expected_gpus: 2")
    loop.collect_once()
    text = scrape(loop)
    g0 = {"uuid": UUID0, "gpu": "0", "pci_bus_id": BUS0}
    info = [labels for n, labels, _ in samples(text) if n == c.GPU_INFO]
    assert {x["uuid"] for x in info} == {UUID0, UUID1}
    assert info[0] == {
        **g0,
        "name": "NVIDIA H100 80GB HBM3",
        "serial": "1650923000001",
        "vbios_version": "96.00.99.00.01",
        "driver_version": "580.159.04",
    }
    assert one(text, c.GPU_UP, **g0) == 1
    assert one(text, c.GPU_COUNT) == 2
    assert one(text, c.GPU_EXPECTED_COUNT) == 2
    assert one(text, c.GPU_TEMPERATURE, **g0) == 33
    assert one(text, c.GPU_MEMORY_TEMPERATURE, **g0) == 41
    assert one(text, c.GPU_TEMPERATURE_THRESHOLD, threshold="slowdown", **g0) == 89
    assert one(text, c.GPU_POWER_USAGE, **g0) == pytest.approx(71.25)
    assert one(text, c.GPU_POWER_LIMIT, **g0) == 700
    assert one(text, c.GPU_CLOCK, clock="sm", **g0) == 345e6
    assert one(text, c.GPU_CLOCK, clock="memory", **g0) == 2619e6
    assert one(text, c.GPU_UTILIZATION, **g0) == 0
    assert one(text, c.GPU_MEMORY_USED, **g0) == 553648128
    assert one(text, c.GPU_MEMORY_TOTAL, **g0) == 85520809984
    for kind in ("corrected", "uncorrected"):
        for counter in ("volatile", "aggregate"):
            assert one(text, c.GPU_ECC_ERRORS, error_type=kind, counter=counter, **g0) == 0
    assert one(text, c.GPU_REMAPPED_ROWS, cause="uncorrectable", **g0) == 0
    assert one(text, c.GPU_ROW_REMAP_PENDING, **g0) == 0
    assert one(text, c.GPU_ROW_REMAP_FAILURE, **g0) == 0
    assert one(text, c.GPU_PCIE_REPLAYS, **g0) == 0
    assert one(text, c.GPU_PCIE_LINK_WIDTH, **g0) == 16
    assert one(text, c.GPU_NVLINK_LINKS_ACTIVE, **g0) == 18
    assert one(text, c.GPU_NVLINK_ERRORS, error="crc_flit", **g0) == 0
    assert one(text, c.GPU_FABRIC_STATE, **g0) == 3
    assert one(text, c.GPU_CLOCK_THROTTLE, reason="thermal", **g0) == 0
    assert one(text, c.EXPORTER_COLLECTIONS) == 1
    assert sum(values(text, c.EXPORTER_COLLECTION_ERRORS)) == 0
    assert one(text, c.EXPORTER_LAST_COLLECTION) > 0
    assert one(text, c.EXPORTER_COLLECTION_DURATION) >= 0


def _gpu_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    gpu_families = {s.name for s in c.METRICS if c.LABEL_UUID in s.labels}
    return [
        (n, labels, v)
        for n, labels, v in samples(text)
        if n in gpu_families or n.removesuffix("_total") + "_total" in gpu_families
    ]


@pytest.mark.parametrize(
    "path",
    [HEALTHY, FAULTS, *shared_fixtures()],
    ids=lambda p: str(p.relative_to(p.parents[1])),
)
def test_uuid_on_every_gpu_series_of_every_recording(path: Path) -> None:
    loop = make_loop(CountingBackend.from_file(path), profile="generic")
    loop.collect_once()
    loop.collect_once()  # the second cycle has rates and remembered identities
    text = scrape(loop)
    gpu_series = _gpu_samples(text)
    for name, labels, _ in gpu_series:
        assert set(c.GPU_LABELS) <= set(labels), (name, labels)
        presence = name in PRESENCE
        node_level_finding = name == c.GPU_HEALTH_CHECK_STATUS and labels["gpu"] == ""
        if not presence:
            assert labels["uuid"].startswith("GPU-"), (name, labels)
        elif not node_level_finding and labels["uuid"] == "":
            # Only a device lost from the very start has no known UUID.
            assert one(text, c.GPU_UP, gpu=labels["gpu"]) == 0
    # The exposition has no duplicate series (Prometheus would reject the scrape).
    keys = [(n, tuple(sorted(labels.items()))) for n, labels, _ in samples(text)]
    assert len(keys) == len(set(keys))


# --- failing devices ----------------------------------------------------------------------------


def test_lost_device_drops_only_its_own_samples_and_counts_an_error() -> None:
    loop = make_loop(CountingBackend.from_file(FAULTS))
    loop.collect_once()
    text = scrape(loop)
    lost = [(n, labels) for n, labels, _ in _gpu_samples(text) if labels["gpu"] == "1"]
    assert {n for n, _ in lost} <= PRESENCE
    assert one(text, c.GPU_UP, gpu="1") == 0
    assert one(text, c.GPU_HEALTH_CHECK_STATUS, gpu="1", check="gpu.lost") == c.STATUS_CRIT
    # GPU 0 keeps everything, except the one reading that failed (power draw: TIMEOUT).
    assert one(text, c.GPU_UP, uuid=UUID0) == 1
    assert values(text, c.GPU_POWER_USAGE, uuid=UUID0) == []
    assert one(text, c.GPU_POWER_LIMIT, uuid=UUID0) == 700
    assert (
        one(text, c.GPU_ECC_ERRORS, uuid=UUID0, error_type="uncorrected", counter="volatile") == 2
    )
    assert one(text, c.GPU_ROW_REMAP_PENDING, uuid=UUID0) == 1
    assert one(text, c.GPU_COUNT) == 2
    assert one(text, c.EXPORTER_COLLECTION_ERRORS, reason="device_lost") == 1
    assert one(text, c.EXPORTER_COLLECTION_ERRORS, reason="read_error") == 1
    # The counter counts per collection: it keeps rising while the device stays lost.
    loop.collect_once()
    assert one(scrape(loop), c.EXPORTER_COLLECTION_ERRORS, reason="device_lost") == 2


def test_device_lost_after_start_keeps_its_identity_and_drops_its_telemetry() -> None:
    backend = CountingBackend(load_data(HEALTHY))
    loop = make_loop(backend)
    loop.collect_once()
    backend.data["devices"][1]["lost"] = True
    loop.collect_once()
    text = scrape(loop)
    assert one(text, c.GPU_UP, uuid=UUID1, gpu="1", pci_bus_id=BUS1) == 0
    assert one(text, c.GPU_INFO, uuid=UUID1) == 1  # the serial stays for the RMA
    assert values(text, c.GPU_TEMPERATURE, uuid=UUID1) == []
    assert one(text, c.GPU_TEMPERATURE, uuid=UUID0) == 33
    # The health finding for the lost GPU is labelled with its UUID, not an empty one.
    assert one(text, c.GPU_HEALTH_CHECK_STATUS, check="gpu.lost", uuid=UUID1) == c.STATUS_CRIT


def test_gpu_that_vanishes_from_enumeration_is_reported_down() -> None:
    backend = CountingBackend(load_data(HEALTHY))
    loop = make_loop(backend)
    loop.collect_once()
    del backend.data["devices"][1]
    loop.collect_once()
    text = scrape(loop)
    assert one(text, c.GPU_COUNT) == 1
    assert one(text, c.GPU_UP, uuid=UUID1) == 0
    assert one(text, c.GPU_UP, uuid=UUID0) == 1


def test_nvml_init_failure_exports_no_gpu_count_and_counts_the_error() -> None:
    backend = CountingBackend(load_data(HEALTHY))
    loop = make_loop(backend)
    loop.collect_once()
    backend.data["init_error"] = "driver_not_loaded"
    loop.collect_once()
    text = scrape(loop)
    assert values(text, c.GPU_COUNT) == []
    assert values(text, c.GPU_UP) == [0, 0]  # every GPU seen before is unreachable
    assert one(text, c.EXPORTER_COLLECTION_ERRORS, reason="nvml_init") == 1
    assert one(text, c.GPU_HEALTH_STATUS) == c.STATUS_CRIT


def test_malformed_reading_is_dropped_and_counted() -> None:
    backend = CountingBackend(load_data(HEALTHY))
    backend.set_reading(0, "temperature_c", {"value": "hot"})
    backend.set_reading(0, "memory", {"value": [1, 2]})
    loop = make_loop(backend)
    loop.collect_once()
    text = scrape(loop)
    assert values(text, c.GPU_TEMPERATURE, uuid=UUID0) == []
    assert values(text, c.GPU_MEMORY_USED, uuid=UUID0) == []
    assert one(text, c.GPU_TEMPERATURE, uuid=UUID1) == 34
    assert one(text, c.EXPORTER_COLLECTION_ERRORS, reason="read_error") == 2


# Shared fault recordings (tests/fixtures/gpu/faults) and what each must show.
SHARED_EXPECTATIONS = {
    "dbe-volatile.json": (
        c.GPU_ECC_ERRORS,
        {"error_type": "uncorrected", "counter": "volatile"},
        2,
    ),
    "gpu-lost.json": (c.GPU_UP, {"gpu": "0"}, 0),
    "remap-pending.json": (c.GPU_ROW_REMAP_PENDING, {}, 1),
    "remap-failure.json": (c.GPU_ROW_REMAP_FAILURE, {}, 1),
    "pcie-width-downtrained.json": (c.GPU_PCIE_LINK_WIDTH, {}, 8),
    "nvlink-down.json": (c.GPU_NVLINK_LINKS_ACTIVE, {"gpu": "3"}, 17),
    "fabric-not-completed.json": (c.GPU_FABRIC_STATE, {"gpu": "0"}, 2),
    "driver-library-mismatch.json": (c.EXPORTER_COLLECTION_ERRORS, {"reason": "nvml_init"}, 1),
    "thermal-slowdown.json": (c.GPU_TEMPERATURE, {}, 88),
}


@pytest.mark.parametrize("name", sorted(SHARED_EXPECTATIONS))
def test_shared_fault_recordings_show_their_fault(name: str) -> None:
    path = SHARED / "faults" / name
    if not path.exists():
        pytest.skip(f"{path} not written yet (the checks engineer's fixtures)")
    metric, match, expected = SHARED_EXPECTATIONS[name]
    loop = make_loop(CountingBackend.from_file(path))
    loop.collect_once()
    assert one(scrape(loop), metric, **match) == expected


# --- health series ------------------------------------------------------------------------------


def _runner(findings: list[Finding]):  # type: ignore[no-untyped-def]
    def run(backend, policy, **kwargs):  # type: ignore[no-untyped-def]
        return HealthReport("gpu-test", kwargs["now"], tuple(findings), "test")

    return run


def test_findings_of_one_check_and_gpu_become_one_series_with_the_worst_status() -> None:
    gpu = GpuRef(0, UUID0, BUS0)
    findings = [
        Finding("nvlink.state", Severity.WARN, "link 3 down", Action.RESET_GPU, gpu),
        Finding("nvlink.state", Severity.CRIT, "link 7 down", Action.DRAIN_AND_RESET, gpu),
        Finding("nvlink.state", Severity.OK, "link 9 up", gpu=gpu),
        Finding("mig.mode", Severity.SKIPPED, "no MIG here", gpu=gpu),
        Finding("gpu.count", Severity.OK, "8 GPUs"),
    ]
    loop = make_loop(CountingBackend.from_file(HEALTHY), health_runner=_runner(findings))
    loop.collect_once()
    text = scrape(loop)
    rows = [(labels, v) for n, labels, v in samples(text) if n == c.GPU_HEALTH_CHECK_STATUS]
    assert rows == [
        (
            {"check": "nvlink.state", "action": "drain_and_reset", **_g(0)},
            c.STATUS_CRIT,
        ),
        ({"check": "gpu.count", "action": "none", "gpu": "", "uuid": "", "pci_bus_id": ""}, 0),
    ]
    assert one(text, c.GPU_HEALTH_STATUS) == c.STATUS_CRIT
    required = {
        labels["action"]: v for n, labels, v in samples(text) if n == c.GPU_HEALTH_REQUIRED_ACTION
    }
    assert set(required) == {a.value for a in Action}
    assert [a for a, v in required.items() if v == 1] == ["drain_and_reset"]


def _g(index: int) -> dict[str, str]:
    return {"gpu": str(index), "uuid": [UUID0, UUID1][index], "pci_bus_id": [BUS0, BUS1][index]}


def test_status_mapping_is_ordered_worst_last() -> None:
    assert c.STATUS_VALUES == {"ok": 0, "unknown": 1, "warn": 2, "crit": 3}
    ranks = sorted(Severity, key=lambda s: s.rank)
    exported = [c.STATUS_VALUES[s.value] for s in ranks if s is not Severity.SKIPPED]
    assert exported == sorted(exported)


def test_health_engine_failure_is_counted_and_reported_unknown() -> None:
    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug")

    loop = make_loop(CountingBackend.from_file(HEALTHY), health_runner=broken)
    loop.collect_once()
    text = scrape(loop)
    assert one(text, c.EXPORTER_COLLECTION_ERRORS, reason="health") == 1
    assert one(text, c.GPU_HEALTH_STATUS) == c.STATUS_UNKNOWN
    assert one(text, c.GPU_TEMPERATURE, uuid=UUID0) == 33  # telemetry still there


# --- scrapes are decoupled from collection ------------------------------------------------------


def test_scrape_never_touches_the_backend() -> None:
    backend = CountingBackend.from_file(HEALTHY)
    loop = make_loop(backend)
    before = scrape(loop)  # before any collection: the exporter's own metrics only
    assert backend.calls == 0
    assert one(before, c.EXPORTER_COLLECTIONS) == 0
    assert values(before, c.GPU_UP) == []
    loop.collect_once()
    calls = backend.calls
    assert calls > 0
    for _ in range(20):
        scrape(loop)
    assert backend.calls == calls


def test_background_thread_collects_on_its_interval() -> None:
    backend = CountingBackend.from_file(HEALTHY)
    loop = make_loop(backend, interval=0.05)
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while loop.snapshot().collections < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        loop.stop()
    assert loop.snapshot().collections >= 3
    count = loop.snapshot().collections
    time.sleep(0.15)
    assert loop.snapshot().collections == count  # stopped means stopped


def test_hung_telemetry_times_out_and_the_next_cycle_is_skipped(
    release_blocked: list[threading.Event],
) -> None:
    backend = CountingBackend.from_file(HEALTHY)
    loop = make_loop(backend, health_runner=_runner([]), timeout=0.2)
    gate = threading.Event()
    release_blocked.append(gate)
    backend.block = gate
    started = time.monotonic()
    loop.collect_once()
    assert time.monotonic() - started < 2
    text = scrape(loop)
    assert one(text, c.EXPORTER_COLLECTION_ERRORS, reason="timeout") == 1
    assert one(text, c.GPU_HEALTH_CHECK_STATUS, check="collection.timeout") == c.STATUS_CRIT
    assert one(text, c.GPU_HEALTH_STATUS) == c.STATUS_CRIT
    assert values(text, c.GPU_TEMPERATURE) == []
    # The worker is still stuck in "NVML": the next cycle must not pile another one on top.
    loop.collect_once()
    text = scrape(loop)
    assert one(text, c.EXPORTER_COLLECTION_ERRORS, reason="busy") == 1
    assert one(text, c.GPU_HEALTH_STATUS) == c.STATUS_CRIT
    # Once NVML answers again, collections recover.
    backend.block = None
    gate.set()
    deadline = time.monotonic() + 5
    while loop._busy() and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.collect_once()
    text = scrape(loop)
    assert one(text, c.GPU_TEMPERATURE, uuid=UUID0) == 33
    assert one(text, c.GPU_HEALTH_STATUS) == c.STATUS_OK


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("00000000:18:00.0", "0000:18:00"),
        ("0000:18:00.0", "0000:18:00"),
        ("0000:18:00", "0000:18:00"),
        ("00000001:2A:00.0", "0001:2a:00"),
        ("garbage", None),
    ],
)
def test_bus_ids_match_across_nvml_sysfs_and_kernel_log_spellings(
    spelling: str, expected: str | None
) -> None:
    # The exporter matches GPUs by bus id with the health engine's normalisation.
    assert normalize_bus_id(spelling) == expected


def test_hung_health_engine_is_reported_and_not_piled_up(
    release_blocked: list[threading.Event],
) -> None:
    """The real run_health watchdog: a read that never returns becomes collection.timeout."""
    backend = CountingBackend.from_file(HEALTHY)
    loop = make_loop(backend, timeout=0.2)
    gate = threading.Event()
    release_blocked.append(gate)
    backend.block = gate
    loop.collect_once()
    text = scrape(loop)
    assert one(text, c.EXPORTER_COLLECTION_ERRORS, reason="timeout") == 1
    assert one(text, c.GPU_HEALTH_CHECK_STATUS, check="collection.timeout") == c.STATUS_CRIT
    assert one(text, c.GPU_HEALTH_REQUIRED_ACTION, action="reboot") == 1
    calls = backend.calls
    loop.collect_once()  # still hung: skipped without touching the backend again
    assert backend.calls == calls
    assert one(scrape(loop), c.EXPORTER_COLLECTION_ERRORS, reason="busy") == 1
    backend.block = None
    gate.set()
    deadline = time.monotonic() + 5
    while loop._busy() and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.collect_once()
    text = scrape(loop)
    assert one(text, c.GPU_HEALTH_STATUS) == c.STATUS_OK
    assert one(text, c.GPU_UP, uuid=UUID0) == 1


def test_memory_used_as_nvidia_smi_shows_it_and_reserved_apart() -> None:
    capture = Path(__file__).parents[1] / "fixtures" / "gpu" / "h100-capture.json"
    loop = make_loop(CountingBackend.from_file(capture))
    loop.collect_once()
    text = scrape(loop)
    # nvidia-smi -q on the capture: Reserved 480 MiB, Used 0 MiB, Total 81559 MiB.
    assert [v for n, _, v in samples(text) if n == c.GPU_MEMORY_USED] == [0]
    assert [v for n, _, v in samples(text) if n == c.GPU_MEMORY_RESERVED] == [480 * 1024 * 1024]
    assert [v for n, _, v in samples(text) if n == c.GPU_MEMORY_TOTAL] == [81559 * 1024 * 1024]


def test_live_loop_exports_the_fabric_manager_unit_state(tmp_path: Path) -> None:
    """The exporter's health run reads unit states through the systemctl it is given (a live
    node: `systemctl`); on an NVSwitch profile a stopped fabric manager is a critical check."""
    from sre_tools.gpu.backend import RecordedBackend

    stub = tmp_path / "systemctl"
    stub.write_text(
        "#!/bin/sh\nprintf 'LoadState=loaded\\nActiveState=failed\\nSubState=failed\\n'\n"
    )
    stub.chmod(0o755)
    backend = RecordedBackend.load(SHARED / "hgx-h100-8-synthetic.json")
    loop = make_loop(backend, "h100-sxm-8", systemctl=str(stub))
    loop.collect_once()
    text = scrape(loop)
    assert one(text, c.GPU_HEALTH_CHECK_STATUS, check="fabric.manager") == c.STATUS_CRIT
    assert one(
        text, c.GPU_HEALTH_CHECK_STATUS, check="fabric.manager", action="restart_fabric_manager"
    )
    # Without a systemctl (a replay) the check is skipped, and skipped checks are not exported.
    replayed = make_loop(RecordedBackend.load(SHARED / "hgx-h100-8-synthetic.json"), "h100-sxm-8")
    replayed.collect_once()
    assert values(scrape(replayed), c.GPU_HEALTH_CHECK_STATUS, check="fabric.manager") == []


MIG_DEVICES = [
    {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb",
        "uuid": "MIG-aaaaaaaa-1111-2222-3333-000000000000",
        "gpu_instance_id": 1,
        "compute_instance_id": 0,
    },
    {
        "index": 1,
        "name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb",
        "uuid": "MIG-aaaaaaaa-1111-2222-3333-000000000001",
        "gpu_instance_id": 2,
        "compute_instance_id": 0,
    },
]


def test_mig_mode_and_instances_are_labelled_with_their_gpu() -> None:
    backend = CountingBackend.from_file(HEALTHY)
    backend.set_reading(1, "mig_mode", {"value": [1, 1]})
    backend.set_reading(1, "mig_devices", {"value": MIG_DEVICES})
    loop = make_loop(backend)
    loop.collect_once()
    text = scrape(loop)
    g0 = {"uuid": UUID0, "gpu": "0", "pci_bus_id": BUS0}
    g1 = {"uuid": UUID1, "gpu": "1", "pci_bus_id": BUS1}
    assert one(text, c.GPU_MIG_MODE, **g0) == 0
    assert one(text, c.GPU_MIG_MODE, **g1) == 1
    instances = [labels for n, labels, _ in samples(text) if n == c.GPU_MIG_INSTANCE_INFO]
    assert instances == [
        {
            **g1,
            "mig_uuid": dev["uuid"],
            "gpu_instance_id": str(dev["gpu_instance_id"]),
            "compute_instance_id": "0",
            "mig_name": dev["name"],
        }
        for dev in MIG_DEVICES
    ]
    assert sum(values(text, c.EXPORTER_COLLECTION_ERRORS)) == 0


def test_no_mig_series_where_mig_is_not_supported() -> None:
    backend = CountingBackend.from_file(HEALTHY)
    for index in (0, 1):
        backend.set_reading(index, "mig_mode", {"error": "NOT_SUPPORTED"})
    loop = make_loop(backend)
    loop.collect_once()
    names = {n for n, _, _ in samples(scrape(loop))}
    assert c.GPU_MIG_MODE not in names
    assert c.GPU_MIG_INSTANCE_INFO not in names
