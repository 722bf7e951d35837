"""Policy profiles and site files change thresholds and expectations."""

from __future__ import annotations

from pathlib import Path

import pytest

from sre_tools.health.model import Severity
from tests.health.checks.conftest import FAULTS, H100, HGX, T0, Runner, ok, only, patched, problems

# (config, check, severity on the healthy H100 fixture)
CASES = [
    pytest.param(None, "thermal.gpu", Severity.OK, id="thermal-default-margins"),
    pytest.param(
        "thermal:\n  margin_warn_c: 60\n", "thermal.gpu", Severity.WARN, id="thermal-wide-warn"
    ),
    pytest.param(
        "thermal:\n  margin_warn_c: 60\n  margin_crit_c: 56\n",
        "thermal.gpu",
        Severity.CRIT,
        id="thermal-wide-crit",
    ),
    pytest.param("thermal:\n  hbm_warn_c: 30\n", "thermal.hbm", Severity.WARN, id="hbm-warn"),
    pytest.param(
        "thermal:\n  hbm_warn_c: 30\n  hbm_crit_c: 35\n",
        "thermal.hbm",
        Severity.CRIT,
        id="hbm-crit",
    ),
    pytest.param("power:\n  warn_ratio: 0.05\n", "power.draw", Severity.WARN, id="power-ratio"),
    pytest.param("pcie:\n  expected_width: 32\n", "pcie.width", Severity.CRIT, id="pcie-width-32"),
    pytest.param(
        "persistence_mode: false\n", "persistence", Severity.OK, id="persistence-unwanted"
    ),
]


@pytest.mark.parametrize(("config", "check", "severity"), CASES)
def test_site_overrides_change_thresholds(
    run: Runner, config: str | None, check: str, severity: Severity
) -> None:
    (f,) = only(run(H100, config=config), check)
    assert f.severity is severity


def test_persistence_off_warns_only_when_policy_wants_it(run: Runner) -> None:
    data = patched(H100, {0: {"persistence_mode": ok(0)}})
    (on,) = only(run(data), "persistence")
    assert on.severity is Severity.WARN
    (off,) = only(run(data, config="persistence_mode: false\n"), "persistence")
    assert off.severity is Severity.OK


def test_hbm_crit_capped_at_device_mem_max(run: Runner) -> None:
    data = patched(
        H100, {0: {"temperature_threshold_c(mem_max)": ok(90), "memory_temperature_c": ok(91)}}
    )
    (f,) = only(run(data), "thermal.hbm")
    assert f.severity is Severity.CRIT
    assert f.evidence["crit_at_c"] == 90


def test_profile_gen_expectation_applies_under_load_only(run: Runner) -> None:
    busy = {"pcie_link_gen": ok(4), "utilization": ok({"gpu_percent": 90, "memory_percent": 40})}
    idle = {"pcie_link_gen": ok(1)}
    site = "expected_gpus: 1\n"  # the node's profile (h100) expects Gen5
    (under_load,) = only(run(patched(H100, {0: busy}), config=site), "pcie.gen")
    assert under_load.severity is Severity.WARN
    assert under_load.evidence["expected_gen"] == 5
    (at_idle,) = only(run(patched(H100, {0: idle}), config=site), "pcie.gen")
    assert at_idle.severity is Severity.OK
    lenient = site + "pcie:\n  load_utilization_percent: 95\n"
    (below_busy,) = only(run(patched(H100, {0: busy}), config=lenient), "pcie.gen")
    assert below_busy.severity is Severity.OK


def test_h100_profile_expects_18_links_from_the_first_run(run: Runner) -> None:
    report = run(FAULTS / "nvlink-down.json", profile="h100-sxm-8")
    assert {f.severity for f in only(report, "nvlink.state")} == {Severity.OK, Severity.CRIT}
    (a100,) = {
        f.severity
        for f in only(run(FAULTS / "nvlink-down.json", profile="a100-sxm-8"), "nvlink.state")
    }
    assert a100 is Severity.OK  # an A100 profile expects 12 links; 17 is plenty


def test_nvswitch_false_skips_fabric(run: Runner) -> None:
    report = run(
        FAULTS / "fabric-not-completed.json", config="profile: h100-sxm-8\nnvswitch: false\n"
    )
    assert {f.severity for f in only(report, "fabric.state")} == {Severity.SKIPPED}
    assert report.problems() == []


def test_nvlink_error_rate_threshold_from_policy(run: Runner) -> None:
    counters = patched(HGX, {})["devices"][0]["readings"]["nvlink_errors(0)"]["value"]
    run(HGX, profile="h100-sxm-8")
    bumped = patched(
        HGX, {0: {"nvlink_errors(0)": ok({**counters, "replay": counters["replay"] + 50})}}
    )
    strict = "profile: h100-sxm-8\nnvlink:\n  error_rate_warn_per_hour: 10\n"
    report = run(bumped, config=strict, now=T0 + 3600)
    assert [f.severity for f in only(report, "nvlink.errors") if f.gpu and f.gpu.index == 0] == [
        Severity.WARN
    ]


@pytest.mark.parametrize(
    ("source", "profile", "config", "chosen"),
    [
        pytest.param(H100, None, None, "h100", id="one-h100-picks-h100"),
        pytest.param(HGX, None, None, "h100-sxm-8", id="hgx-picks-h100-sxm-8"),
        pytest.param(HGX, "generic", None, "generic", id="explicit-profile-wins"),
        pytest.param(HGX, None, "profile: generic\n", "generic", id="site-profile-wins"),
        pytest.param(H100, None, "thermal:\n  hbm_warn_c: 30\n", "h100", id="site-without-profile"),
    ],
)
def test_profile_picked_from_the_node_unless_named(
    run: Runner, source: Path, profile: str | None, config: str | None, chosen: str
) -> None:
    report = run(source, profile=profile, config=config)
    (f,) = only(report, "policy.profile")
    assert f.evidence["profile"] == chosen
    if profile is None and config is None:
        assert f.evidence["chosen"].startswith("node: NVIDIA H100 80GB HBM3")


def test_site_overrides_apply_on_top_of_the_picked_profile(run: Runner) -> None:
    report = run(H100, config="thermal:\n  hbm_warn_c: 30\n")
    (hbm,) = only(report, "thermal.hbm")
    assert hbm.severity is Severity.WARN  # the site's 30 C, on the h100 profile
    (gen,) = only(report, "pcie.gen")
    assert gen.evidence["expected_gen"] == 5


def test_one_h100_needs_no_site_file(run: Runner) -> None:
    report = run(H100)
    assert report.exit_code == 0 and problems(report) == []
    assert {f.severity for f in only(report, "fabric.state")} == {Severity.SKIPPED}


def test_profile_for_node_table() -> None:
    from sre_tools.health.policy import profile_for_node

    assert profile_for_node("NVIDIA H100 80GB HBM3", 8, True) == "h100-sxm-8"
    assert profile_for_node("NVIDIA H100 80GB HBM3", 8, False) == "h100"
    assert profile_for_node("NVIDIA H100 PCIe", 2, False) == "h100"
    assert profile_for_node("NVIDIA A100-SXM4-80GB", 8, True) == "a100-sxm-8"
    assert profile_for_node("NVIDIA A100-SXM4-80GB", 4, False) == "generic"
    assert profile_for_node("", 0, False) == "generic"


@pytest.mark.parametrize("gpus", [7, 4, 1])
def test_an_hgx_board_that_lost_gpus_keeps_its_hgx_profile(gpus: int) -> None:
    # Model and fabric choose the profile, not the count: an HGX board with a GPU gone is still
    # judged as the 8-GPU board it is (it was h100 / generic, whose floors are 0 or none).
    from sre_tools.health.policy import profile_for_node

    assert profile_for_node("NVIDIA H100 80GB HBM3", gpus, True) == "h100-sxm-8"
    assert profile_for_node("NVIDIA A100-SXM4-80GB", gpus, True) == "a100-sxm-8"


def test_health_on_an_hgx_board_with_a_lost_gpu_is_crit_against_8(run: Runner) -> None:
    import json

    data = json.loads(HGX.read_text())
    data["devices"] = [d for d in data["devices"] if d["index"] != 7]
    report = run(data)
    (profile,) = only(report, "policy.profile")
    assert profile.evidence["profile"] == "h100-sxm-8"
    (count,) = only(report, "gpu.count")
    assert count.severity is Severity.CRIT
    assert count.summary == "7 of 8 expected GPUs present"


@pytest.mark.parametrize("name", ["generic", "h100", "h100-sxm-8", "a100-sxm-8"])
def test_shipped_profiles_parse_as_pyyaml_does(name: str) -> None:
    from sre_tools.health.policy import PROFILES, _profile_text, parse_profile
    from sre_tools.inputs import load_yaml

    assert name in PROFILES
    text = _profile_text(name)
    # PyYAML through the shared loader, which also refuses a key given twice.
    assert parse_profile(text) == load_yaml(text, name)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: {b: 1}\n", id="flow-mapping"),
        pytest.param("a: [1, 2]\n", id="flow-sequence"),
        pytest.param("- a\n", id="sequence"),
        pytest.param("a: 'quoted'\n", id="quoted"),
    ],
)
def test_profile_parser_refuses_yaml_outside_its_subset(text: str) -> None:
    from sre_tools.exceptions import ValidationError
    from sre_tools.health.policy import parse_profile

    with pytest.raises(ValidationError):
        parse_profile(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("a: 1\nb: 2\na: 3\n", "line 3: duplicate key 'a' (first at line 1)", id="top"),
        pytest.param(
            "a:\n  b: 1\n  c: 2\n  b: 3\n",
            "line 4: duplicate key 'b' (first at line 2)",
            id="nested",
        ),
        pytest.param(
            "a:\n  b: 1\na:\n  c: 2\n", "line 3: duplicate key 'a' (first at line 1)", id="block"
        ),
    ],
)
def test_profile_parser_refuses_a_key_given_twice(text: str, message: str) -> None:
    """As the shared YAML loader does: the second value would silently replace the first."""
    from sre_tools.exceptions import ValidationError
    from sre_tools.health.policy import parse_profile

    with pytest.raises(ValidationError) as info:
        parse_profile(text, "profile p")
    assert str(info.value) == f"profile p: {message}"


def test_profile_parser_keeps_the_same_key_in_different_mappings() -> None:
    from sre_tools.health.policy import parse_profile

    text = "a:\n  b: 1\nc:\n  b: 2\n"
    assert parse_profile(text) == {"a": {"b": 1}, "c": {"b": 2}}


@pytest.mark.parametrize(
    ("site", "field"),
    [
        ("thermal:\n  margin_crit_c: 20\n  margin_warn_c: 5\n", "thermal.margin_warn_c"),
        ("thermal:\n  hbm_warn_c: 99\n", "thermal.hbm_warn_c"),
    ],
)
def test_warning_past_the_critical_threshold_is_refused(site: str, field: str) -> None:
    """A site file whose warning level comes after its critical one would never warn."""
    from sre_tools.exceptions import ValidationError
    from sre_tools.health.policy import load_policy

    with pytest.raises(ValidationError) as err:
        load_policy(None, site, "site.yaml")
    assert err.value.field == field and "the warning comes first" in str(err.value)
    load_policy(None, "thermal:\n  margin_crit_c: 5\n  margin_warn_c: 5\n", "site.yaml")
