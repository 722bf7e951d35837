"""The synthetic recordings: generated deterministically, valid, healthy where they should be."""

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
    "path", sorted(FIXTURES.rglob("*.json")), ids=lambda p: str(p.relative_to(FIXTURES))
)
def test_every_fixture_loads_and_says_it_is_synthetic(path: Path) -> None:
    backend = RecordedBackend.load(path)
    assert backend.data["synthetic"] is True
    assert "SYNTHETIC" in backend.data["note"]


def test_h100_fixture_mirrors_the_lent_machine() -> None:
    data = RecordedBackend.load(H100).data
    r = data["devices"][0]["readings"]
    assert data["system"]["driver_version"]["value"] == "580.159.04"
    assert data["system"]["cuda_driver_version"]["value"] == 13000
    assert r["name"]["value"] == "NVIDIA H100 80GB HBM3"
    assert r["persistence_mode"]["value"] == 1
    assert (r["pcie_link_gen"]["value"], r["pcie_link_width"]["value"]) == (5, 16)
    for key in ("nvlink_state(0)", "nvlink_errors(17)", "fabric", "retired_pages(dbe)"):
        assert r[key] == {"error": "NOT_SUPPORTED"}


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
