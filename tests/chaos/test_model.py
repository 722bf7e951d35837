"""The drill model: Chaos Toolkit documents both ways, tolerances, and bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sre_tools.chaos import catalog
from sre_tools.chaos.model import BlastMode, load_experiment, parse_experiment, parse_tolerance
from sre_tools.chaos.tolerance import jsonpath_values, within_tolerance
from sre_tools.exceptions import ValidationError
from tests.chaos.conftest import catalog_doc

# A Chaos Toolkit experiment written by hand (no x-sre key): it must load, and keep its controls.
HAND_WRITTEN = {
    "version": "1.0.0",
    "title": "hand-written",
    "description": "written for chaostoolkit",
    "configuration": {"greeting": "hello"},
    "controls": [{"name": "tracing", "provider": {"type": "python", "module": "chaostracing"}}],
    "steady-state-hypothesis": {
        "title": "true works",
        "probes": [
            {
                "type": "probe",
                "name": "true",
                "tolerance": 0,
                "provider": {"type": "process", "path": "true"},
            }
        ],
    },
    "method": [
        {
            "type": "action",
            "name": "echo",
            "provider": {"type": "process", "path": "echo", "arguments": ["${greeting}"]},
            "pauses": {"after": 1},
        }
    ],
    "rollbacks": [],
}


@pytest.mark.parametrize("name", catalog.names())
def test_catalog_drills_round_trip(name: str) -> None:
    exp = load_experiment(str(catalog.path_of(name)))
    assert parse_experiment(exp.to_ctk()) == exp
    assert exp.rollbacks and exp.hypothesis and exp.expect
    assert exp.blast_radius.max_nodes == 1


def test_catalog_has_the_first_drills() -> None:
    assert {"node-drain", "xid-inject"} <= set(catalog.names())


def test_hand_written_experiment_loads_and_round_trips() -> None:
    exp = parse_experiment(HAND_WRITTEN)
    assert exp.controls == tuple(HAND_WRITTEN["controls"])
    assert exp.blast_radius.mode is BlastMode.COUNT  # the safe default: one node
    again = exp.to_ctk()
    assert again["controls"] == HAND_WRITTEN["controls"]
    assert again["method"] == HAND_WRITTEN["method"]
    assert parse_experiment(again) == exp


@pytest.mark.parametrize(
    ("tolerance", "value", "expected"),
    [
        pytest.param(True, True, True, id="bool"),
        pytest.param(True, 1, False, id="bool-not-int"),
        pytest.param(0, 0, True, id="int"),
        pytest.param(0, {"status": 0, "stdout": ""}, True, id="int-process-status"),
        pytest.param("idle", "idle", True, id="string"),
        pytest.param(["idle", "mixed"], "mixed", True, id="list-member"),
        pytest.param({"type": "range", "range": [1, 5]}, 5, True, id="range-inclusive"),
        pytest.param({"type": "range", "range": [1, 5]}, 6, False, id="range-outside"),
        pytest.param({"type": "range", "range": [1, 5]}, "3", False, id="range-not-number"),
        pytest.param({"type": "regex", "pattern": "^drain"}, "drained", True, id="regex"),
        pytest.param(
            {"type": "regex", "pattern": "ok", "target": "stdout"},
            {"status": 0, "stdout": "all ok"},
            True,
            id="regex-target",
        ),
        pytest.param(
            {"type": "jsonpath", "path": "$.nodes[*].state", "expect": "idle"},
            {"nodes": [{"state": "idle"}, {"state": "idle"}]},
            True,
            id="jsonpath-all-equal",
        ),
        pytest.param(
            {"type": "jsonpath", "path": "$.nodes[1].state", "expect": "idle"},
            {"nodes": [{"state": "idle"}, {"state": "down"}]},
            False,
            id="jsonpath-index",
        ),
        pytest.param(
            {"type": "jsonpath", "path": "$['a b']"}, {"a b": 1}, True, id="jsonpath-quoted"
        ),
        pytest.param({"type": "jsonpath", "path": "$.missing"}, {}, False, id="jsonpath-no-match"),
    ],
)
def test_tolerances(tolerance: Any, value: Any, expected: bool) -> None:
    parsed = parse_tolerance(tolerance)
    assert within_tolerance(parsed, value) is expected
    assert parse_tolerance(parsed.to_ctk()) == parsed


def test_jsonpath_wildcard_on_mapping() -> None:
    assert sorted(jsonpath_values({"a": {"x": 1, "y": 2}}, "$.a.*")) == [1, 2]


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    doc = catalog_doc("xid-inject")
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        pytest.param(["title"], "", "title", id="empty-title"),
        pytest.param(["method"], _DELETE, "method", id="no-method"),
        pytest.param(["method"], [], "method", id="empty-method"),
        pytest.param(["method", 0, "type"], "attack", "method[0].type", id="activity-type"),
        pytest.param(
            ["method", 0, "provider", "module"],
            "os",
            "method[0].provider.module",
            id="module-outside-sre-tools",
        ),
        pytest.param(
            ["method", 0, "provider", "func"], "_private", "method[0].provider.func", id="private"
        ),
        pytest.param(
            ["method", 0, "provider"],
            {"type": "process", "path": "sh", "arguments": "-c 'rm -rf /'"},
            "method[0].provider.arguments",
            id="shell-string",
        ),
        pytest.param(
            ["steady-state-hypothesis", "probes", 0, "tolerance"],
            {"type": "range", "range": [5, 1]},
            "steady-state-hypothesis.probes[0].tolerance.range",
            id="range-reversed",
        ),
        pytest.param(
            ["steady-state-hypothesis", "probes", 0, "tolerance"],
            {"type": "regex", "pattern": "("},
            "steady-state-hypothesis.probes[0].tolerance.pattern",
            id="bad-regex",
        ),
        pytest.param(
            ["steady-state-hypothesis", "probes", 0, "tolerance"],
            {"type": "jsonpath", "path": "$..deep"},
            "steady-state-hypothesis.probes[0].tolerance.path",
            id="jsonpath-unsupported",
        ),
        pytest.param(
            ["rollbacks", 0, "type"], "probe", "rollbacks[0].type", id="rollback-is-a-probe"
        ),
        pytest.param(
            ["x-sre", "blast_radius", "mode"], "SOME", "x-sre.blast_radius.mode", id="blast-mode"
        ),
        pytest.param(
            ["x-sre", "blast_radius", "max_nodes"], 0, "x-sre.blast_radius.max_nodes", id="cap"
        ),
        pytest.param(["x-sre", "expect", 0, "within"], -1, "x-sre.expect[0].within", id="within"),
        pytest.param(["x-sre", "surprise"], 1, "x-sre.surprise", id="unknown-extension"),
    ],
)
def test_bad_experiments_name_file_and_field(
    tmp_path: Path, path: list[Any], value: Any, field: str
) -> None:
    import yaml

    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(_broken(path, value)))
    with pytest.raises(ValidationError) as info:
        load_experiment(str(file))
    assert info.value.source == str(file)
    assert info.value.field == field
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        pytest.param("bad.yaml", "title: [unclosed", "invalid YAML", id="yaml"),
        pytest.param("bad.json", '{"title": "a", "title": "b"}', "duplicate key", id="json-dup"),
        pytest.param("bad.yaml", "- a list\n", "must be a mapping", id="not-a-mapping"),
    ],
)
def test_unreadable_experiments(tmp_path: Path, name: str, text: str, reason: str) -> None:
    file = tmp_path / name
    file.write_text(text)
    with pytest.raises(ValidationError, match=reason) as info:
        load_experiment(str(file))
    assert str(file) in str(info.value)


def test_missing_file() -> None:
    with pytest.raises(ValidationError, match="cannot read file"):
        load_experiment("/nonexistent/drill.yaml")


def test_deadlines_from_the_configuration_and_from_var(tmp_path: Path) -> None:
    """`within`/`poll` may name a configuration value; the export keeps the name, and a run's
    --var value replaces the default (a site's SlurmdTimeout, its alert's `for`)."""
    from sre_tools.chaos.runner import Runner
    from sre_tools.chaos.safety import Safety, Targets

    doc = catalog_doc("slurmd-kill")
    exp = parse_experiment(doc)
    (check,) = exp.expect
    assert (check.within, check.within_var) == (360.0, "not_responding_within")
    assert parse_experiment(exp.to_ctk()).to_ctk() == exp.to_ctk()
    assert exp.to_ctk()["x-sre"]["expect"][0]["within"] == "${not_responding_within}"

    safety = Safety(tmp_path / "store.db")
    try:

        def runner(value: Any) -> Runner:
            return Runner(
                exp, Targets(("n1",), ("n1",)), safety=safety, journal_dir=tmp_path,
                variables={"not_responding_within": value},
            )  # fmt: skip

        assert runner("42.5").experiment.expect[0].within == 42.5  # --var gives text
        assert runner(30).experiment.expect[0].within == 30.0
        with pytest.raises(ValidationError) as err:
            runner("soon")
        assert err.value.field == "configuration.not_responding_within"
        with pytest.raises(ValidationError, match=r"must be in \(0, within\]"):
            runner(1)  # below its poll of 5 s
    finally:
        safety.close()


@pytest.mark.parametrize(
    ("within", "field", "piece"),
    [
        ("${nope}", "x-sre.expect[0].within", "${nope} is not in the configuration"),
        ("${slow", "x-sre.expect[0].within", "must be a number or ${name}"),
        ("${sinfo}", "configuration.sinfo", "must be a finite number"),
    ],
)
def test_bad_deadline_references(within: str, field: str, piece: str) -> None:
    doc = catalog_doc("slurmd-kill")
    doc["x-sre"]["expect"][0]["within"] = within
    with pytest.raises(ValidationError) as err:
        parse_experiment(doc)
    assert err.value.field == field and piece in str(err.value)
