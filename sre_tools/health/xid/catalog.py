"""NVIDIA's XID catalog (vendored JSON): entries by XID number, bucket texts, the 144-150 decode.

The file is read once, on first use (``importlib.resources``), and its shape is validated: a
catalog update that renames a key fails here with the field named, not later as a ``KeyError``
inside a health check.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sre_tools.exceptions import ValidationError

CATALOG_FILE = "nvidia-xid-catalog.json"
_ENTRY_STRINGS = (
    "mnemonic",
    "description",
    "immediate_action",
    "investigatory_action",
    "xid154_linkage",
    "trigger_conditions",
)


@dataclass(frozen=True)
class CatalogEntry:
    """One row of the catalog's "Xids" sheet; bucket names are kept exactly as NVIDIA wrote them."""

    xid: int
    mnemonic: str
    description: str
    applies_to: Mapping[str, bool]
    immediate_action: str
    investigatory_action: str
    xid154_linkage: str
    trigger_conditions: str

    @property
    def short_mnemonic(self) -> str:
        """The mnemonic on one line (some span two: ``A /\\nB``)."""
        return " ".join(self.mnemonic.split())

    def to_dict(self) -> dict[str, Any]:
        return {
            "xid": self.xid,
            "mnemonic": self.mnemonic,
            "description": self.description,
            "applies_to": dict(self.applies_to),
            "immediate_action": self.immediate_action,
            "investigatory_action": self.investigatory_action,
            "xid154_linkage": self.xid154_linkage,
            "trigger_conditions": self.trigger_conditions,
        }


@dataclass(frozen=True)
class DecodeRow:
    """One row of "Xid 144-150 Decode": intrInfo bit patterns (``-`` = any bit, bit 31 first)."""

    xid: int
    subcode: str
    intr_v1: str  # drivers before R575
    intr_v2: str  # R575 and later
    error_status: tuple[int, ...]  # empty: any status
    bucket: str  # Resolution Bucket (Data Center Recovery Action)
    action2_v1: str
    action2_v2: str
    action2: str  # a second bucket when the action-2 pattern matches
    investigatory: str
    severity: str


@dataclass(frozen=True)
class Catalog:
    source: str
    entries: Mapping[int, CatalogEntry]
    buckets: Mapping[str, str]
    decode: tuple[DecodeRow, ...]

    def get(self, xid: int | None) -> CatalogEntry | None:
        return None if xid is None else self.entries.get(xid)

    def bucket_text(self, name: str) -> str | None:
        return self.buckets.get(name)


def _fail(message: str, where: str) -> ValidationError:
    return ValidationError(message, source=f"XID catalog ({CATALOG_FILE})", field=where)


def _hex_list(text: str, where: str) -> tuple[int, ...]:
    out = []
    for part in text.replace(" ", "").split("/"):
        if not part:
            continue
        try:
            out.append(int(part, 16))
        except ValueError:
            raise _fail(f"expected hex error status, got {text!r}", where) from None
    return tuple(out)


def _pattern(text: str, where: str) -> str:
    if text and (len(text) != 32 or set(text) - {"0", "1", "-"}):
        raise _fail(f"expected a 32-character 0/1/- pattern, got {text!r}", where)
    return text


def _decode_rows(raw: Any) -> tuple[DecodeRow, ...]:
    if not isinstance(raw, dict) or not isinstance(raw.get("rows"), list):
        raise _fail("expected an object with 'rows'", "xid_144_150_decode")
    rows = []
    for i, row in enumerate(raw["rows"]):
        where = f"xid_144_150_decode.rows[{i}]"
        if not isinstance(row, dict) or not all(isinstance(row.get(c), str) for c in "ABCDEFGHIJK"):
            raise _fail("expected an object with string columns A..K", where)
        try:
            xid = int(row["A"])
        except ValueError:
            raise _fail(f"expected an XID number, got {row['A']!r}", f"{where}.A") from None
        rows.append(
            DecodeRow(
                xid=xid,
                subcode=row["B"],
                intr_v1=_pattern(row["C"], f"{where}.C"),
                intr_v2=_pattern(row["D"], f"{where}.D"),
                error_status=_hex_list(row["E"], f"{where}.E"),
                bucket=row["F"],
                action2_v1=_pattern(row["G"], f"{where}.G"),
                action2_v2=_pattern(row["H"], f"{where}.H"),
                action2=row["I"],
                investigatory=row["J"],
                severity=row["K"],
            )
        )
    return tuple(rows)


def parse_catalog(data: Any, source: str = CATALOG_FILE) -> Catalog:
    """Validate the catalog's shape and index it (:class:`ValidationError` names the field)."""
    if not isinstance(data, dict):
        raise _fail("expected a JSON object", "")
    xids = data.get("xids")
    if not isinstance(xids, list) or not xids:
        raise _fail("expected a non-empty list", "xids")
    entries: dict[int, CatalogEntry] = {}
    for i, item in enumerate(xids):
        where = f"xids[{i}]"
        if not isinstance(item, dict):
            raise _fail("expected an object", where)
        number = item.get("xid")
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise _fail(f"expected a non-negative integer, got {number!r}", f"{where}.xid")
        for key in _ENTRY_STRINGS:
            if not isinstance(item.get(key), str):
                raise _fail("expected a string", f"{where}.{key}")
        applies = item.get("applies_to")
        if not isinstance(applies, dict) or not all(isinstance(v, bool) for v in applies.values()):
            raise _fail("expected an object of booleans", f"{where}.applies_to")
        if number in entries:
            raise _fail(f"duplicate XID {number}", f"{where}.xid")
        entries[number] = CatalogEntry(
            xid=number,
            mnemonic=item["mnemonic"],
            description=item["description"],
            applies_to=dict(applies),
            immediate_action=item["immediate_action"],
            investigatory_action=item["investigatory_action"],
            xid154_linkage=item["xid154_linkage"],
            trigger_conditions=item["trigger_conditions"],
        )
    buckets = data.get("resolution_buckets")
    if not isinstance(buckets, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in buckets.items()
    ):
        raise _fail("expected an object of strings", "resolution_buckets")
    return Catalog(
        source=str(data.get("source", source)),
        entries=entries,
        buckets=dict(buckets),
        decode=_decode_rows(data.get("xid_144_150_decode")),
    )


@functools.cache
def load_catalog() -> Catalog:
    """The vendored catalog, read and validated on first use (then cached)."""
    # Next to the package (importlib.resources costs start-up time; sre_tools is never zipped).
    root = Path(__file__).resolve().parents[2]
    text = (root / "data" / "xid" / CATALOG_FILE).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"invalid JSON at line {exc.lineno}, column {exc.colno}", "") from None
    return parse_catalog(data)


def lookup(xid: int) -> CatalogEntry | None:
    """The catalog entry of ``xid``, or None when the catalog does not know it."""
    return load_catalog().get(xid)
