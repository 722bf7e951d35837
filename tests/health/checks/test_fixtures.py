"""The recordings: generated deterministically, valid, honest about where each value came from,
healthy where they should be."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from sre_tools.gpu.backend import RecordedBackend
from sre_tools.health.model import Severity
from tests.health.checks.conftest import FAULTS, FIXTURES, H100, HGX, Runner, problems


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_fixtures_are_what_the_generator_writes() -> None:
    built = _generator().build()
    on_disk = {
        str(p.relative_to(FIXTURES)): p.read_text(encoding="utf-8")
        for p in sorted(FIXTURES.rglob("*.json"))
    }
    assert sorted(built) == sorted(on_disk), "run tests/fixtures/gpu/make_fixtures.py"
    for rel, text in built.items():
        assert on_disk[rel] == text, f"{rel} is stale: run tests/fixtures/gpu/make_fixtures.py"


def test_generator_is_deterministic() -> None:
    gen = _generator()
    assert gen.build() == gen.build()


@pytest.mark.parametrize(
    "path",
    sorted(p for p in FIXTURES.rglob("*.json") if p != H100),
    ids=lambda p: str(p.relative_to(FIXTURES)),
)
def test_every_other_fixture_loads_and_says_it_is_synthetic(path: Path) -> None:
    backend = RecordedBackend.load(path)
    assert backend.data["synthetic"] is True
    assert "SYNTHETIC" in backend.data["note"]


def test_the_h100_recording_is_the_real_capture_with_every_reading_marked() -> None:
    data = RecordedBackend.load(H100).data
    assert data["synthetic"] is False
    assert "captures/h100-sxm-580" in data["note"]
    entries = [*data["system"].values(), *data["devices"][0]["readings"].values()]
    for entry in entries:
        if "not_recorded" in entry:
            assert set(entry) == {"not_recorded"} and entry["not_recorded"]
            continue
        assert entry["source"] in {"real", "derived", "not_supported"}, entry
        if entry["source"] == "derived":
            assert entry["from"], entry
        if entry["source"] == "not_supported":
            assert entry["error"] == "NOT_SUPPORTED" and entry["from"], entry
        else:
            assert "value" in entry, entry
    keys = set(data["devices"][0]["readings"])
    from sre_tools.gpu import readings

    assert keys == {
        readings.key(name, args)
        for name in readings.DEVICE
        for args in readings.DEVICE_ARGS.get(name, [()])
    }


def test_h100_fixture_mirrors_the_lent_machine() -> None:
    data = RecordedBackend.load(H100).data
    r = data["devices"][0]["readings"]
    assert data["system"]["driver_version"]["value"] == "580.159.04"
    assert data["system"]["cuda_driver_version"]["value"] == 13000
    assert r["name"]["value"] == "NVIDIA H100 80GB HBM3"
    assert r["pci"]["value"]["bus_id"] == "00000000:00:06.0"
    assert r["persistence_mode"]["value"] == 1
    assert (r["pcie_link_gen"]["value"], r["pcie_link_width"]["value"]) == (5, 16)
    assert (r["temperature_c"]["value"], r["margin_temperature_c"]["value"]) == (37, 50)
    assert r["memory"]["value"]["reserved_bytes"] == 480 * 1024 * 1024
    assert r["memory"]["value"]["used_bytes"] == 0
    for key in ("nvlink_state(0)", "nvlink_errors(17)", "fabric", "retired_pages(dbe)"):
        assert r[key]["error"] == "NOT_SUPPORTED"
    for kind in ("shutdown", "slowdown", "mem_max", "gpu_max"):
        assert r[f"temperature_threshold_c({kind})"]["error"] == "NOT_SUPPORTED"
    assert "not_recorded" in r["inforom_valid"]


def test_not_recorded_plays_back_as_skipped_never_healthy(run: Runner) -> None:
    report = run(H100)
    (inforom,) = [f for f in report.findings if f.check == "inforom.valid"]
    assert inforom.severity is Severity.SKIPPED
    assert "not recorded" in inforom.summary


def test_hgx_fixture_has_real_h100_values_at_hgx_addresses() -> None:
    data = RecordedBackend.load(HGX).data
    buses = [d["readings"]["pci"]["value"]["bus_id"] for d in data["devices"]]
    assert buses == [f"00000000:{b}:00.0" for b in ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")]
    capture = RecordedBackend.load(H100).data["devices"][0]["readings"]
    for dev in data["devices"]:
        r = dev["readings"]
        assert r["vbios_version"]["value"] == capture["vbios_version"]["value"]
        assert r["clock_mhz(sm)"]["value"] == capture["clock_mhz(sm)"]["value"]
        assert 100_000 <= r["power_usage_mw"]["value"] <= 140_000  # idle H100 SXM: ~120 W


@pytest.mark.parametrize(
    ("path", "profile"),
    [
        pytest.param(H100, "generic", id="h100-generic"),
        pytest.param(HGX, "h100-sxm-8", id="hgx-h100-sxm-8"),
        pytest.param(HGX, "generic", id="hgx-generic"),
    ],
)
def test_healthy_fixtures_have_no_problems(run: Runner, path: Path, profile: str) -> None:
    report = run(path, profile=profile)
    assert problems(report) == []
    assert report.exit_code == 0
    assert not [f for f in report.findings if f.severity is Severity.UNKNOWN]


def test_healthy_hgx_judges_nvlink_and_fabric(run: Runner) -> None:
    report = run(HGX, profile="h100-sxm-8")
    by_check = {(f.check, f.severity) for f in report.findings}
    for check in ("nvlink.state", "nvlink.errors", "fabric.state", "thermal.gpu", "pcie.width"):
        assert (check, Severity.OK) in by_check
    assert len([f for f in report.findings if f.check == "nvlink.state"]) == 8


def test_fault_fixtures_all_have_a_test_case() -> None:
    from tests.health.checks.test_faults import CASES

    named = {c.id for c in CASES} | {"replay-storm-0", "replay-storm-1"}
    assert {p.stem for p in FAULTS.glob("*.json")} == named


def test_real_capture_judges_core_temperature_by_the_tlimit_margin(run: Runner) -> None:
    report = run(H100)
    (f,) = [x for x in report.findings if x.check == "thermal.gpu"]
    assert f.severity is Severity.OK
    assert f.evidence["judged_by"] == "margin to T.Limit"
    assert f.evidence["margin_to_tlimit_c"] == 50
