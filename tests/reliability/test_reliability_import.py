"""The incident log: CSV validation (file, row, field), all-or-nothing import, open/resolve/list."""

from __future__ import annotations

import pytest
from reliability_helpers import FULL_HEADER, HEADER, csv_text

from sre_tools.exceptions import NotFoundError, ValidationError
from sre_tools.reliability.incidents import (
    import_csv,
    list_incidents,
    open_incident,
    resolve_incident,
)
from sre_tools.reliability.loader import parse_incidents_csv
from sre_tools.store import Store

GOOD = "2026-11-01T10:00:00Z,2026-11-01T12:00:00Z,gpu,node-01,3,hardware,false"


def count(store: Store) -> int:
    return int(str(store.query("SELECT COUNT(*) FROM incidents")[0][0]))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "incidents.csv: empty file", id="empty-file"),
        pytest.param(
            "started,resolved,component,host,gpu,category\n",
            "incidents.csv: header: missing column planned",
            id="header-missing-column",
        ),
        pytest.param(
            HEADER + ",owner\n", "incidents.csv: header: unknown column 'owner'", id="header-extra"
        ),
        pytest.param(
            HEADER + ",started\n",
            "incidents.csv: header: duplicate column 'started'",
            id="header-duplicate",
        ),
        pytest.param(
            csv_text("x,2026-11-01T12:00:00Z,gpu,node-01,3,hardware,false"),
            "incidents.csv: row 2: started: invalid timestamp 'x'",
            id="bad-started",
        ),
        pytest.param(
            csv_text(GOOD, GOOD, ",2026-11-01T12:00:00Z,gpu,node-01,3,hardware,false"),
            "incidents.csv: row 4: started: missing timestamp",
            id="empty-started-row-4",
        ),
        pytest.param(
            csv_text("2026-11-01T10:00:00Z,yesterday,gpu,n,0,hw,false"),
            "incidents.csv: row 2: resolved: invalid timestamp 'yesterday'",
            id="bad-resolved",
        ),
        pytest.param(
            csv_text("2026-11-01T10:00:00Z,2026-11-01T09:00:00Z,gpu,n,0,hw,false"),
            "incidents.csv: row 2: resolved: resolved is before started",
            id="resolved-before-started",
        ),
        pytest.param(
            csv_text("2026-11-01T10:00:00Z,,gpu,n,0,hw,maybe"),
            "incidents.csv: row 2: planned: invalid value 'maybe'",
            id="bad-planned",
        ),
        pytest.param(
            csv_text("2026-11-01T10:00:00Z,,gpu,n,0,hw,"),
            "incidents.csv: row 2: planned: invalid value ''",
            id="empty-planned",
        ),
        pytest.param(
            csv_text("2026-11-01T10:00:00Z,,,n,0,hw,no"),
            "incidents.csv: row 2: component: must not be empty",
            id="empty-component",
        ),
        pytest.param(
            csv_text("2026-11-01T10:00:00Z,,gpu,n,0,hw"),
            "incidents.csv: row 2: expected 7 fields, got 6",
            id="short-row",
        ),
        pytest.param(
            csv_text(
                "2026-11-01T10:00:00Z,2026-11-01T11:00:00Z,gpu,n,0,hw,no,2026-11-01T09:59:00Z,,",
                header=FULL_HEADER,
            ),
            "incidents.csv: row 2: detected: detected is before started",
            id="detected-before-started",
        ),
        pytest.param(
            csv_text(
                "2026-11-01T10:00:00Z,2026-11-01T11:00:00Z,gpu,n,0,hw,no,2026-11-01T11:00:01Z,,",
                header=FULL_HEADER,
            ),
            "incidents.csv: row 2: detected: detected is after resolved",
            id="detected-after-resolved",
        ),
        pytest.param(
            csv_text("2026-11-01T10:00:00Z,,gpu,n,0,hw,no,,,seventy-nine", header=FULL_HEADER),
            "incidents.csv: row 2: xid: invalid XID 'seventy-nine'",
            id="bad-xid",
        ),
        pytest.param(
            csv_text("2026-11-01T10:00:00Z,,gpu,n,0,hw,no,,,0", header=FULL_HEADER),
            "incidents.csv: row 2: xid: XID must be an integer between 1",
            id="zero-xid",
        ),
        pytest.param(
            csv_text("9999-12-31T23:00:00-05:00,,gpu,n,0,hw,no"),
            "incidents.csv: row 2: started: timestamp '9999-12-31T23:00:00-05:00' out of range",
            id="timestamp-overflows-utc",
        ),
        pytest.param(
            csv_text("1970-01-01T00:30:00+01:00,,gpu,n,0,hw,no"),
            "incidents.csv: row 2: started: timestamp '1970-01-01T00:30:00+01:00' out of range",
            id="timestamp-before-1970-utc",
        ),
        pytest.param(
            csv_text('2026-11-01T10:00:00Z,,gpu,n,0,hw,"no'),
            "incidents.csv: row 2: malformed CSV",
            id="unterminated-quote",
        ),
    ],
)
def test_bad_csv_names_file_row_and_field(text: str, expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_incidents_csv(text, "incidents.csv")
    assert str(info.value).startswith(expected), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("planned", "expected"),
    [
        pytest.param(word, value, id=f"planned={word}")
        for word, value in [
            ("true", True), ("TRUE", True), ("yes", True), ("1", True),
            ("false", False), ("No", False), ("no", False), ("0", False),
        ]
    ],
)  # fmt: skip
def test_planned_values(planned: str, expected: bool) -> None:
    [incident] = parse_incidents_csv(csv_text(f"2026-11-01T10:00:00Z,,gpu,n,0,hw,{planned}"))
    assert incident.planned is expected


def test_parses_optional_columns_in_any_order_and_blank_lines() -> None:
    text = (
        "\ufeffxid,Started,resolved,component,host,gpu,category,planned,cause,detected\n"
        "\n"
        '79,2026-11-01T10:00:00+01:00,2026-11-01T12:00:00Z,gpu,node-01,3,hardware,no,"fell off '
        'the bus, reseated",2026-11-01T09:01:00Z\n'
    )
    [incident] = parse_incidents_csv(text, "x.csv")
    assert incident.started == 1_793_523_600  # 2026-11-01T09:00:00Z
    assert incident.detected == incident.started + 60
    assert incident.resolved == incident.started + 3 * 3600
    assert incident.xid == 79
    assert incident.cause == "fell off the bus, reseated"
    assert not incident.planned


def test_example_file_ships_and_parses() -> None:
    from importlib.resources import files

    text = files("sre_tools").joinpath("data/examples/incidents.csv").read_text("utf-8")
    incidents = parse_incidents_csv(text, "incidents.csv")
    assert 25 <= len(incidents) <= 40
    assert {"gpu", "nvlink", "infiniband", "psu", "host", "software"} <= {
        i.component for i in incidents
    }
    assert any(i.planned for i in incidents)
    assert {79, 48, 94, 119} <= {i.xid for i in incidents if i.xid is not None}


def test_import_is_all_or_nothing(store: Store) -> None:
    import_csv(store, csv_text(GOOD), "first.csv")
    bad = csv_text(*[GOOD.replace("node-01", f"node-{n}") for n in range(50)], "x,,gpu,n,0,hw,no")
    with pytest.raises(ValidationError, match="row 52: started"):
        import_csv(store, bad, "bad.csv")
    assert count(store) == 1
    assert store.query("SELECT COUNT(*) FROM imports")[0][0] == 1


def test_reimport_refused_unless_forced(store: Store) -> None:
    text = csv_text(GOOD, GOOD.replace("node-01", "node-02"))
    assert import_csv(store, text, "a.csv") == 2
    with pytest.raises(ValidationError, match=r"^b\.csv: already imported \(2 rows"):
        import_csv(store, text, "b.csv")
    assert count(store) == 2
    assert import_csv(store, text, "b.csv", force=True) == 2
    assert count(store) == 4
    sha, kind, path, rows = store.query("SELECT sha256, kind, path, rows FROM imports")[0]
    assert (kind, path, rows) == ("incidents", "b.csv", 2)
    assert isinstance(sha, str)
    assert len(sha) == 64


def test_open_resolve_list(store: Store) -> None:
    first = open_incident(store, component="gpu", host="n1", started=1000, xid=79)
    second = open_incident(store, component="psu", started=2000, detected=2100, planned=True)
    assert first.id is not None
    assert second.id is not None
    assert first.is_open
    assert [i.id for i in list_incidents(store, open_only=True)] == [first.id, second.id]
    done = resolve_incident(store, first.id, at=4600)
    assert done.resolved == 4600
    assert done.repair_seconds == 3600
    assert [i.id for i in list_incidents(store, open_only=True)] == [second.id]
    assert [i.id for i in list_incidents(store, since=1500)] == [second.id]
    assert [i.id for i in list_incidents(store, until=2000)] == [first.id]
    with pytest.raises(ValidationError, match="already resolved"):
        resolve_incident(store, first.id, at=5000)
    with pytest.raises(NotFoundError, match="no incident with id 999"):
        resolve_incident(store, 999)
    with pytest.raises(ValidationError, match=r"before incident .* was detected"):
        resolve_incident(store, second.id, at=2050)
    with pytest.raises(ValidationError, match="--detected: detected is before started"):
        open_incident(store, component="gpu", started=2000, detected=1000)
    with pytest.raises(ValidationError, match="--component: must not be empty"):
        open_incident(store, component="  ")
