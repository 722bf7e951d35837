"""Untrusted remediation events (JSON from Salt, a file, stdin) with a key given twice are refused:
the engine audits them as invalid, the CLI exits 2 naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sre_tools.exceptions import ValidationError
from sre_tools.remediation.model import EVENT_KEYS, parse_event_json
from tests.hostile.conftest import Sre

GOOD = {"node": "gpu01", "action": "drain", "event_id": "e-1", "reason": "xid 79"}


def with_duplicate(key: str, first: object, second: object) -> str:
    body = json.dumps({k: v for k, v in GOOD.items() if k != key})[1:-1]
    name = json.dumps(key)
    return f"{{{name}: {json.dumps(first)}, {body}, {name}: {json.dumps(second)}}}"


@pytest.mark.parametrize("key", sorted(GOOD))
def test_duplicate_top_level_key_is_refused(key: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_event_json(with_duplicate(key, GOOD[key], "gpu99"), source="ev.json")
    assert info.value.field == key and info.value.reason == "duplicate key"
    assert str(info.value) == f"ev.json: {key}: duplicate key"


def test_duplicate_key_inside_evidence_is_refused() -> None:
    text = json.dumps(GOOD)[:-1] + ', "evidence": {"xid": 79, "xid": 48}}'
    with pytest.raises(ValidationError, match="duplicate key"):
        parse_event_json(text, source="ev.json")


def test_cli_refuses_and_audits_a_duplicate_node(
    sre: Sre, tmp_path: Path, remediation_env: None
) -> None:
    path = tmp_path / "event.json"
    path.write_text(with_duplicate("node", "gpu01", "gpu02"), encoding="utf-8")
    code, out, err = sre("remediation", "event", "--event", str(path))
    assert code == 2, out + err
    # Input error: one line on stderr naming the file; stdout stays empty.
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"sre: error: {path}: event refused: ") and "node: duplicate key" in err
    code, out, _err = sre("remediation", "audit", "--json")
    records = json.loads(out)
    assert records[-1]["code"] == "invalid_event" and records[-1]["field"] == "node"


@settings(max_examples=80, deadline=None)
@given(
    key=st.sampled_from(sorted(EVENT_KEYS)),
    values=st.tuples(st.text(max_size=8) | st.integers(), st.text(max_size=8) | st.integers()),
)
def test_fuzz_any_duplicated_key_is_refused(key: str, values: tuple[object, object]) -> None:
    with pytest.raises(ValidationError, match="duplicate key") as info:
        parse_event_json(with_duplicate(key, *values), source="ev.json")
    assert info.value.field == key
