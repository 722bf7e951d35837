"""Input edge cases: spreadsheet byte-order marks, spec files without SLOs, bad counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.sli.store import import_csv, make_sample
from sre_tools.slo.loader import load_texts
from sre_tools.store import Store

ONLY_SERVICE = """
apiVersion: openslo/v1
kind: Service
metadata: {name: api}
spec: {description: x}
"""


def test_csv_with_byte_order_mark_imports(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        text = "\ufefftimestamp,slo,good,total\n2026-11-20T00:00:00Z,svc-a,9,10\n"
        assert import_csv(store, text, "excel.csv") == 1


def test_spec_files_without_any_slo_are_an_error() -> None:
    with pytest.raises(ValidationError) as info:
        load_texts([("service.yaml", ONLY_SERVICE)])
    assert info.value.source == "service.yaml"
    assert "no SLO found" in info.value.reason


@pytest.mark.parametrize(
    ("good", "total", "field"),
    [
        pytest.param(-1.0, 10.0, "good", id="negative-good"),
        pytest.param(1.0, -10.0, "total", id="negative-total"),
        pytest.param(float("nan"), 10.0, "good", id="nan-good"),
        pytest.param(11.0, 10.0, "good", id="good-above-total"),
    ],
)
def test_bad_counts_are_validation_errors(good: float, total: float, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_sample("svc-a", 1_790_000_000, good, total, bucket=60, source="api")
    assert info.value.field == field
