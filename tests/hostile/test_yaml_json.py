"""YAML and JSON from outside: alias bombs, self-referencing aliases and deep nesting are input
errors (exit 2, one line) within a second, for every loader (sre_tools.inputs)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sre_tools.exceptions import ValidationError
from sre_tools.inputs import MAX_DEPTH, load_json, load_yaml, load_yaml_documents
from tests.hostile.conftest import Sre, assert_input_error


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def nested_block(depth: int) -> str:
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + f"{'  ' * depth}v: 1\n"


HOSTILE_YAML = {
    "billion-laughs": (billion_laughs(), "aliases expand to more than"),
    "self-alias-seq": ("a: &a [1, *a]\n", "an alias refers to a node that contains it"),
    "self-alias-map": ("a: &a {b: *a}\n", "an alias refers to a node that contains it"),
    "merge-self": ("a: &a {<<: *a}\n", "an alias refers to a node that contains it"),
    "deep-flow": ("a: " + "[" * 100_000, "nested too deeply"),
    "deep-flow-closed": ("a: " + "[" * 200 + "]" * 200, "nested too deeply"),
    "deep-block": (nested_block(MAX_DEPTH + 5), "nested too deeply"),
    "deep-through-alias": (
        nested_block(40).replace("k0:\n", "k0: &deep\n", 1) + "b: [" * 30 + "*deep" + "]" * 30,
        "nested too deeply",
    ),
}


@pytest.mark.parametrize(("text", "reason"), HOSTILE_YAML.values(), ids=HOSTILE_YAML.keys())
def test_hostile_yaml_is_refused_quickly(text: str, reason: str) -> None:
    start = time.monotonic()
    with pytest.raises(ValidationError, match=reason) as info:
        load_yaml_documents(text, "x.yaml")
    assert time.monotonic() - start < 1.0
    assert info.value.source == "x.yaml"


# Every command that reads YAML: (argv before the file, file option or None for a positional).
YAML_COMMANDS = {
    "slo-validate": (["slo", "validate"], None),
    "slo-report-alert-windows": (
        ["slo", "validate", "sre_tools/data/examples/slos/gpu-cluster.sloth.yaml"],
        "--alert-windows",
    ),
    "remediation-config": (["remediation", "status"], "--config"),
}


@pytest.mark.parametrize("case", ["billion-laughs", "self-alias-seq", "deep-flow"])
@pytest.mark.parametrize(("argv", "option"), YAML_COMMANDS.values(), ids=YAML_COMMANDS.keys())
def test_every_yaml_loader_refuses(
    sre: Sre,
    tmp_path: Path,
    remediation_env: None,
    case: str,
    argv: list[str],
    option: str | None,
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE_YAML[case][0], encoding="utf-8")
    args = [*argv, str(path)] if option is None else [*argv, option, str(path)]
    start = time.monotonic()
    assert_input_error(sre(*args), str(path), HOSTILE_YAML[case][1])
    assert time.monotonic() - start < 2.0


def test_mig_config_refuses_alias_bomb() -> None:
    from sre_tools.mig.config import parse_mig_config

    with pytest.raises(ValidationError, match="aliases expand"):
        parse_mig_config(billion_laughs(), "mig.yaml")


HOSTILE_JSON = {
    "deep": ("[" * 100_000, "nested too deeply"),
    "deep-closed": ("[" * 100 + "]" * 100, "nested too deeply"),
    "deep-objects": ('{"a":' * 70 + "1" + "}" * 70, "nested too deeply"),
    "duplicate": ('{"node": "gpu01", "node": "gpu02"}', "duplicate key"),
    "nan": ('{"a": NaN}', "NaN is not a number"),
    "infinity": ("[-Infinity]", "-Infinity is not a number"),
    "garbage": ("{not json", "not valid JSON"),
}


@pytest.mark.parametrize(("text", "reason"), HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_hostile_json_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as info:
        load_json(text, "x.json")
    assert info.value.source == "x.json"


@pytest.mark.parametrize("case", ["deep", "deep-objects", "duplicate", "nan"])
def test_health_report_json_refused_on_the_cli(
    sre: Sre, tmp_path: Path, remediation_env: None, case: str
) -> None:
    path = tmp_path / "report.json"
    path.write_text(HOSTILE_JSON[case][0], encoding="utf-8")
    assert_input_error(
        sre("remediation", "decide", "--report", str(path)), str(path), HOSTILE_JSON[case][1]
    )


def _nest(depth: int, flow: bool) -> str:
    return "[" * depth + "]" * depth if flow else nested_block(depth)


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(1, 3 * MAX_DEPTH), flow=st.booleans())
# The boundary, every run (a random draw found the block form off by one once).
@example(depth=MAX_DEPTH - 1, flow=False)
@example(depth=MAX_DEPTH, flow=False)
@example(depth=MAX_DEPTH, flow=True)
@example(depth=MAX_DEPTH + 1, flow=True)
def test_fuzz_yaml_depth_limit_is_exact(depth: int, flow: bool) -> None:
    text = _nest(depth, flow)
    levels = depth if flow else depth + 1  # the block form has a mapping per key, then v: 1
    if levels <= MAX_DEPTH:
        load_yaml(text, "x.yaml")
    else:
        with pytest.raises(ValidationError, match="nested too deeply"):
            load_yaml(text, "x.yaml")


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(1, 3 * MAX_DEPTH))
def test_fuzz_json_depth_limit_is_exact(depth: int) -> None:
    text = "[" * depth + "]" * depth
    if depth <= MAX_DEPTH:
        assert load_json(text, "x.json") is not None
    else:
        with pytest.raises(ValidationError, match="nested too deeply"):
            load_json(text, "x.json")


@settings(max_examples=100, deadline=None)
@given(data=st.recursive(st.none() | st.integers() | st.text(), st.lists, max_leaves=20))
def test_fuzz_json_round_trip(data: object) -> None:
    assert load_json(json.dumps(data), "x.json") == data
