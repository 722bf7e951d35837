"""The vendored catalog: loads, validates its shape, looks XIDs up."""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.health.xid.catalog import load_catalog, lookup, parse_catalog

ROOT = Path(__file__).resolve().parents[3]
CATALOG = ROOT / "sre_tools" / "data" / "xid" / "nvidia-xid-catalog.json"
# The checksum recorded when the catalog was vendored (source: sre_tools/data/xid/README.md).
CHECKSUM = CATALOG.with_name(CATALOG.name + ".sha256")
# Where it was vendored from: a checkout beside this one, not in CI.
SHARED = ROOT.parent / "shared" / "data" / "nvidia-xid-catalog.json"


def raw() -> dict[str, Any]:
    text = (resources.files("sre_tools") / "data" / "xid" / "nvidia-xid-catalog.json").read_text(
        encoding="utf-8"
    )
    data: dict[str, Any] = json.loads(text)
    return data


def test_catalog_loads_every_xid_and_bucket() -> None:
    cat = load_catalog()
    assert len(cat.entries) == len(raw()["xids"])
    assert cat.get(79) is not None and cat.get(79).immediate_action == "RESTART_BM"  # type: ignore[union-attr]
    assert "WORKFLOW_XID_48" in cat.buckets
    assert {row.xid for row in cat.decode} == {144, 145, 146, 147, 148, 149, 150}
    assert load_catalog() is cat  # read once


def test_lookup_by_number() -> None:
    entry = lookup(48)
    assert entry is not None
    assert entry.mnemonic == "ROBUST_CHANNEL_GPU_ECC_DBE"
    assert entry.to_dict()["xid"] == 48
    assert lookup(99999) is None


def test_mnemonic_on_one_line() -> None:
    entry = lookup(13)
    assert entry is not None
    assert "\n" in entry.mnemonic
    assert entry.short_mnemonic == "ROBUST_CHANNEL_GR_EXCEPTION / ROBUST_CHANNEL_GR_ERROR_SW_NOTIFY"


def test_vendored_copy_matches_its_recorded_checksum() -> None:
    recorded, name = CHECKSUM.read_text(encoding="ascii").split()
    assert name == CATALOG.name
    vendored = resources.files("sre_tools") / "data" / "xid" / "nvidia-xid-catalog.json"
    assert hashlib.sha256(vendored.read_bytes()).hexdigest() == recorded


@pytest.mark.skipif(not SHARED.exists(), reason="no shared/ checkout beside this repository")
def test_vendored_copy_is_the_shared_one() -> None:
    vendored = resources.files("sre_tools") / "data" / "xid" / "nvidia-xid-catalog.json"
    assert vendored.read_bytes() == SHARED.read_bytes()


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw())
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["xids"], [], "xids"),
        (["xids", 0, "xid"], "one", "xids[0].xid"),
        (["xids", 3, "immediate_action"], None, "xids[3].immediate_action"),
        (["xids", 2, "applies_to"], {"A100": "YES"}, "xids[2].applies_to"),
        (["xids", 1, "xid"], 1, "xids[1].xid"),  # duplicate of xids[0]
        (["resolution_buckets"], KeyError, "resolution_buckets"),
        (["xid_144_150_decode", "rows", 0, "C"], "0101", "xid_144_150_decode.rows[0].C"),
        (["xid_144_150_decode", "rows", 0, "E"], "zz", "xid_144_150_decode.rows[0].E"),
    ],
    ids=[
        "no-xids",
        "xid-not-int",
        "bucket-not-string",
        "applies-not-bool",
        "duplicate",
        "no-buckets",
        "bad-pattern",
        "bad-status",
    ],
)
def test_shape_errors_name_the_field(path: list[Any], value: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_catalog(_broken(path, value))
    assert info.value.field == field


def test_not_an_object() -> None:
    with pytest.raises(ValidationError):
        parse_catalog([1, 2])
