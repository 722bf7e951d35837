"""YAML and JSON from outside: alias bombs, self-referencing aliases and deep nesting are input
errors (exit 2, one line) within a second, for every loader (sre_tools.inputs)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sre_tools import inputs
from sre_tools.exceptions import ValidationError
from sre_tools.inputs import MAX_DEPTH, load_json, load_yaml, load_yaml_documents
from tests.hostile.conftest import Sre, assert_input_error

ROOT = Path(__file__).resolve().parents[2]
SLO_SPEC = ROOT / "sre_tools" / "data" / "examples" / "slos" / "gpu-cluster.sloth.yaml"


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
    # The last one would silently win: a drain budget of 2 raised to 100 further down the file.
    "duplicate-key": (
        "max_drained_nodes: 2\ncooldown_seconds: 60\nmax_drained_nodes: 100\n",
        "invalid YAML: duplicate key 'max_drained_nodes' (first at line 1) at line 3, column 1",
    ),
    "duplicate-nested-key": (
        "a:\n  - {service: x, slo: 1}\n  - service: y\n    service: z\n",
        "duplicate key 'service' (first at line 3) at line 4, column 5",
    ),
    "duplicate-int-spellings": ("{1: a, 0x1: b}\n", "duplicate key 1 (first at line 1)"),
    "duplicate-merge-key": ("a: {<<: {x: 1}, <<: {y: 2}}\n", "duplicate key << (first at line 1)"),
    # Python refuses to convert an integer of more than 4300 digits (sys.set_int_max_str_digits).
    "huge-int": (
        "a: 1\nb: " + "9" * 5000 + "\n",
        "invalid YAML: a number with more than 4300 digits at line 2, column 4",
    ),
    "huge-int-key": (
        "? " + "9" * 5000 + "\n: a\n",
        "a number with more than 4300 digits at line 1",
    ),
    "bad-date": ("a: 2026-13-45\n", "not a valid timestamp (month must be in 1..12) at line 1"),
}


@pytest.fixture(params=["libyaml", "pyyaml"])
def yaml_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test twice: with libyaml's loader (when PyYAML has it) and with PyYAML's own."""
    if request.param == "libyaml" and inputs._c_loader() is None:
        pytest.skip("PyYAML built without libyaml")
    if request.param == "pyyaml":
        monkeypatch.setattr(inputs, "_c_loader", lambda: None)
    inputs._loader_class.cache_clear()
    yield request.param
    monkeypatch.undo()
    inputs._loader_class.cache_clear()


@pytest.mark.parametrize(("text", "reason"), HOSTILE_YAML.values(), ids=HOSTILE_YAML.keys())
def test_hostile_yaml_is_refused_quickly(text: str, reason: str) -> None:
    start = time.monotonic()
    with pytest.raises(ValidationError, match=re.escape(reason)) as info:
        load_yaml_documents(text, "x.yaml")
    assert time.monotonic() - start < 1.0
    assert info.value.source == "x.yaml"
    assert "\n" not in str(info.value)


REFUSED_BY_THE_CONSTRUCTOR = [
    case for case in HOSTILE_YAML if case.startswith(("duplicate", "huge", "bad-date"))
]


@pytest.mark.parametrize("case", REFUSED_BY_THE_CONSTRUCTOR)
def test_either_loader_refuses_a_duplicate_key_or_a_bad_scalar(yaml_loader: str, case: str) -> None:
    text, reason = HOSTILE_YAML[case]
    with pytest.raises(ValidationError, match=re.escape(reason)) as info:
        load_yaml(text, "x.yaml")
    assert info.value.source == "x.yaml"


ACCEPTED_YAML = {
    # A merge brings keys in; the mapping's own keys override them, as YAML intends.
    "merge-override": (
        "base: &b {a: 1, c: 2}\nd:\n  <<: *b\n  a: 3\n",
        {"base": {"a": 1, "c": 2}, "d": {"a": 3, "c": 2}},
    ),
    "merge-list": ("d: {<<: [{x: 1}, {x: 2, y: 3}], z: 4}\n", {"d": {"x": 1, "y": 3, "z": 4}}),
    # A mapping merged into another before it is built itself (its own keys checked first).
    "merge-nested-anchor": (
        "top: {<<: &mid {<<: {a: 1}, a: 2}, b: 3}\nother: *mid\n",
        {"top": {"a": 1, "b": 3}, "other": {"a": 2}},
    ),
    "same-key-in-two-mappings": ("a: {k: 1}\nb: {k: 2}\n", {"a": {"k": 1}, "b": {"k": 2}}),
    "same-key-in-list-items": ("- {k: 1}\n- {k: 2}\n", [{"k": 1}, {"k": 2}]),
    "aliased-mapping-twice": (
        "a: &x {k: 1}\nb: *x\nc: *x\n",
        {"a": {"k": 1}, "b": {"k": 1}, "c": {"k": 1}},
    ),
    "int-at-the-limit": ("a: " + "9" * 4300 + "\n", {"a": int("9" * 4300)}),
}


@pytest.mark.parametrize(("text", "expected"), ACCEPTED_YAML.values(), ids=ACCEPTED_YAML.keys())
def test_yaml_that_stays_accepted(yaml_loader: str, text: str, expected: object) -> None:
    assert load_yaml(text, "x.yaml") == expected


def test_the_same_key_in_two_documents_is_fine(yaml_loader: str) -> None:
    assert load_yaml_documents("service: a\n---\nservice: b\n", "x.yaml") == [
        {"service": "a"},
        {"service": "b"},
    ]


# Every command that reads YAML: (argv before the file, file option or None for a positional).
YAML_COMMANDS = {
    "slo-validate": (["slo", "validate"], None),
    "slo-report-alert-windows": (
        ["slo", "validate", "sre_tools/data/examples/slos/gpu-cluster.sloth.yaml"],
        "--alert-windows",
    ),
    "remediation-config": (["remediation", "status"], "--config"),
    "site-file": (
        ["diag", "import", "tests/fixtures/diag/dcgm/level2-all-skip.json", "--site"],
        "--site",
    ),
}


@pytest.mark.parametrize(
    "case", ["billion-laughs", "self-alias-seq", "deep-flow", "duplicate-key", "huge-int"]
)
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
    if option == "--site":
        args = [*argv, str(path), "--store", str(tmp_path / "s.db")]
    start = time.monotonic()
    code, out, err = sre(*args)
    if option == "--site":  # diagnostic commands exit 3 on bad input, the others 2
        assert code == 3, err
        code = 2
    assert_input_error((code, out, err), str(path), HOSTILE_YAML[case][1])
    assert time.monotonic() - start < 2.0


def test_slo_spec_with_service_twice_is_refused(sre: Sre, tmp_path: Path) -> None:
    spec = SLO_SPEC.read_text(encoding="utf-8")
    assert "\n---" not in spec  # one document: a second `service:` lands in the first
    lines = spec.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("service: "))
    path = tmp_path / "spec.yaml"
    path.write_text(spec + "service: someone-else\n", encoding="utf-8")
    assert_input_error(
        sre("slo", "validate", str(path)),
        str(path),
        f"invalid YAML: duplicate key 'service' (first at line {first + 1}) at line "
        f"{len(lines) + 1}, column 1",
    )


def test_remediation_config_with_the_budget_twice_is_refused(tmp_path: Path) -> None:
    from sre_tools.remediation.config import load_config

    path = tmp_path / "remediation.yaml"
    path.write_text("max_drained_nodes: 2\nmax_drained_nodes: 100\n", encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: invalid YAML: duplicate key 'max_drained_nodes' (first at line 1) at line 2, "
        "column 1"
    )


def test_site_file_with_a_key_twice_is_refused() -> None:
    from sre_tools.health.policy import load_policy

    site = "thermal:\n  margin_warn_c: 10\n  margin_warn_c: 2\n"
    with pytest.raises(ValidationError, match=r"duplicate key 'margin_warn_c' .* at line 3"):
        load_policy("generic", site, "site.yaml")


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
    # A number past a float's range reads as infinity: refused like the literal.
    "overflowing-float": ('{"a": 1e999}', "1e999 is too large for a number"),
    "overflowing-negative-float": ('{"a": -2.5E+400}', "-2.5E+400 is too large for a number"),
    "garbage": ("{not json", "not valid JSON"),
    "huge-int": (
        '{"note": "'
        + "1" * 5000
        + '", "pi": 3.'
        + "1" * 5000
        + ',\n "gpus": ['
        + "9" * 5000
        + "]}",
        "not valid JSON: a number with more than 4300 digits at line 2, column 11",
    ),
    "huge-negative-int": ("[-" + "9" * 5000 + "]", "more than 4300 digits at line 1, column 2"),
}


@pytest.mark.parametrize(("text", "reason"), HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_hostile_json_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(reason)) as info:
        load_json(text, "x.json")
    assert info.value.source == "x.json"


def test_json_int_at_the_limit_is_read() -> None:
    assert load_json("[" + "9" * 4300 + "]", "x.json") == [int("9" * 4300)]


@pytest.mark.parametrize("case", ["deep", "deep-objects", "duplicate", "nan", "huge-int"])
def test_health_report_json_refused_on_the_cli(
    sre: Sre, tmp_path: Path, remediation_env: None, case: str
) -> None:
    path = tmp_path / "report.json"
    path.write_text(HOSTILE_JSON[case][0], encoding="utf-8")
    assert_input_error(
        sre("remediation", "decide", "--report", str(path)), str(path), HOSTILE_JSON[case][1]
    )


def test_event_with_a_huge_number_is_refused_and_audited(
    sre: Sre, tmp_path: Path, remediation_env: None
) -> None:
    """Like any invalid event: refused (exit 2), audited as ``invalid_event``, never an
    internal error."""
    path = tmp_path / "event.json"
    event = {"node": "gpu01", "action": "reset_gpu", "event_id": "e3", "reason": "x"}
    path.write_text(json.dumps(event)[:-1] + ', "gpus": [' + "9" * 5000 + "]}", encoding="utf-8")
    code, out, err = sre("remediation", "event", "--event", str(path))
    assert code == 2, out + err
    assert out == "" and err.count("\n") == 1 and "more than 4300 digits" in err
    assert "internal error" not in err and "Traceback" not in err
    code, out, _err = sre("remediation", "audit", "--json")
    (record,) = json.loads(out)
    assert record["code"] == "invalid_event" and record["outcome"] == "refused"
    assert record["message"].startswith("event refused: not valid JSON: a number with more than")


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


@pytest.mark.parametrize(
    ("args", "text", "message"),
    [
        (
            ("remediation", "status", "--config"),
            "remediation:\n  max_drained_nodes: " + "9" * 4000 + "\n",
            "max_drained_nodes: must be a finite number",
        ),
        (
            ("slo", "validate"),
            "version: prometheus/v1\nservice: svc\nslos:\n  - name: a\n    objective: "
            + "9" * 4000
            + "\n    sli:\n      events:\n        error_query: x\n        total_query: y\n",
            "objective: must be in",
        ),
    ],
    ids=["remediation-config", "slo-objective"],
)
def test_an_integer_too_large_for_a_float_is_an_input_error(
    sre: Sre, tmp_path: Path, args: tuple[str, ...], text: str, message: str
) -> None:
    """Under the 4300-digit limit, yet past a float: one line, exit 2 (was: OverflowError)."""
    path = tmp_path / "big.yaml"
    path.write_text(text)
    code, _, err = sre(*args, str(path))
    assert code == 2 and err.count("\n") == 1, err
    assert message in err and "internal error" not in err and len(err) < 400
