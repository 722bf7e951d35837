"""The HTML report's text, without a browser: escaping of hostile stored text, the
Content-Security-Policy and its style hash, nothing external, the health matrix's order, and the
charts' geometry from the numbers they are given."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sre_tools.health.model import Action, Severity
from sre_tools.htmlreport import render, svg
from sre_tools.htmlreport.page import health_matrix, label_colours
from sre_tools.text import LABEL_STYLES, printable
from tests.helpers.reports import finding, report
from tests.htmlreport.conftest import HOSTILE, HOSTILE_HOST, health_reports


class Tags(HTMLParser):
    """Every start tag with its attributes, the text of every element, and the style blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    return tags


def hostile_data() -> dict[str, Any]:
    incident = {
        "id": 7,
        "started": "2026-11-20T11:00:00Z",
        "component": HOSTILE,
        "host": HOSTILE_HOST,
        "gpu": "0",
        "cause": HOSTILE,
        "xid": 79,
    }
    drills = [
        {
            "drill": HOSTILE,
            "runs": 1,
            "statuses": {"failed": 1},
            "first": "2026-11-19T00:00:00Z",
            "last": "2026-11-19T00:00:00Z",
            "expectations": [{"name": HOSTILE, "measures": None, "passed": 0, "failed": 1}],
            "times": {
                k: {"count": 0, "median_seconds": None, "max_seconds": None, "mean_seconds": None}
                for k in ("detect", "alert", "drain", "recover")
            },
        }
    ]
    return {
        "slos": [],
        "open_incidents": [incident],
        "health": list(health_reports()),
        "drills": drills,
    }


def test_hostile_text_is_text() -> None:
    page = render(hostile_data(), title=HOSTILE, sources=[HOSTILE_HOST])
    lowered = page.lower()
    assert "<script" not in lowered and "<b>" not in lowered
    for raw in ("\x1b", "\x00", "\x07", "\u202e"):
        assert raw not in page
    # Shown as the terminal shows them: escapes, then HTML entities for markup and quotes.
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot;q&quot; &amp;" in page
    assert "\\x00\\u202egnp.exe" in page
    tags = parse(page)
    text = "".join(tags.text)
    assert "<script>alert('x')</script>\"q\" & \\x1b[31mred\\x00\\u202egnp.exe" in text
    assert "<b>node</b>\\x1b]0;t\\x07" in text
    # Nothing but the page's own elements: the hostile strings made no tag or attribute.
    assert {t for t, _ in tags.tags} <= PAGE_TAGS
    # The hover text of the matrix cell keeps the hostile summary whole, inside one attribute.
    titles = [a.get("title") for t, a in tags.tags if t == "td" and a.get("title")]
    assert any(f"GPU 0: {printable(HOSTILE)}" == t for t in titles)


PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "main",
    "section", "div", "span", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "small",
    "footer", "svg", "line", "text", "polyline", "circle", "rect", "i",
}  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40))
def test_any_stored_text_stays_text(value: str) -> None:
    data = hostile_data()
    incident = {**data["open_incidents"][0], "cause": value, "host": value, "component": value}
    node = {**data["health"][0], "host": value}
    node["findings"] = [{**f, "check": value or "x", "summary": value} for f in node["findings"]]
    page = render(
        {"open_incidents": [incident], "health": [node], "drills": data["drills"]},
        title=value,
        sources=[value],
    )
    tags = parse(page)
    assert {t for t, _ in tags.tags} <= PAGE_TAGS
    shown = "".join(tags.text)
    assert printable(value) in shown
    # The policy is the page's own: stored text cannot add a second one or change it.
    assert [a.get("http-equiv") for t, a in tags.tags if t == "meta"].count(
        "Content-Security-Policy"
    ) == 1


def test_policy_allows_only_the_pages_own_style() -> None:
    page = render(hostile_data(), title="t")
    tags = parse(page)
    [policy] = [a["content"] for t, a in tags.tags if t == "meta" and a.get("http-equiv")]
    assert policy is not None
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["img-src"] == "'none'"
    [style] = tags.styles
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert directives["style-src"] == f"'sha256-{digest}'"
    # No inline style attribute (the policy would block it), no script, no external reference.
    for tag, attrs in tags.tags:
        assert "style" not in attrs, tag
        assert not {"src", "href", "srcset", "action", "xlink:href", "data"} & set(attrs), tag
        assert not any(k.startswith("on") for k in attrs), tag
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    assert ['name="viewport"' in page, "@media print" in style] == [True, True]


def test_status_colours_come_from_the_label_table() -> None:
    # The same words the terminal colours red, yellow, green: the same colours in HTML.
    assert label_colours("crit") == label_colours("page") == label_colours("failed")
    assert label_colours("warn") == label_colours("ticket")
    assert len({label_colours(s.value) for s in Severity}) == len(Severity)
    style = parse(render({"health": []}, title="t")).styles[0]
    for name in LABEL_STYLES:
        background = label_colours(name)[0]
        css_class = "l-" + re.sub(r"[^a-z0-9]+", "-", name)
        assert f".{css_class}{{background:{background};" in style


@pytest.mark.parametrize(
    ("findings", "cell"),
    [
        pytest.param(
            [("crit", "reset_gpu"), ("ok", "none"), ("warn", "power_cycle")],
            ("crit", "power_cycle"),
            id="worst-severity-most-disruptive-acting-action",
        ),
        pytest.param(
            [("unknown", "none"), ("warn", "restart_app")],
            ("warn", "restart_app"),
            id="warn-beats-unknown",
        ),
        pytest.param([("ok", "none"), ("skipped", "none")], ("ok", "none"), id="ok-beats-skipped"),
        pytest.param([("unknown", "reboot")], ("unknown", "none"), id="unknown-asks-no-action"),
    ],
)
def test_matrix_cell(findings: list[tuple[str, str]], cell: tuple[str, str]) -> None:
    node = report(
        *(finding("xid.recent", sev, act, gpu=i) for i, (sev, act) in enumerate(findings)),
        host="n1",
    )
    checks, rows = health_matrix([node.to_dict()])
    assert checks == ["xid.recent"]
    [(host, status, action, cells)] = rows
    assert (host, status, action) == ("n1", node.severity.value, node.action.value)
    assert cells["xid.recent"][:2] == cell


def test_matrix_rows_and_columns() -> None:
    checks, rows = health_matrix(list(health_reports()))
    assert checks == sorted(
        {"ecc.uncorrected_volatile", "thermal.gpu", "xid.recent", "nvlink.state", "pcie.link"}
    )
    by_host = {host: (status, action, cells) for host, status, action, cells in rows}
    status, action, cells = by_host["gpu-node-07"]
    assert (status, action) == (Severity.CRIT.value, Action.POWER_CYCLE.value)
    assert cells["ecc.uncorrected_volatile"][:2] == ("crit", "reset_gpu")
    assert cells["ecc.uncorrected_volatile"][2] == ["GPU 1: ecc.uncorrected_volatile is crit"]
    assert "pcie.link" not in cells  # not reported by that node: an empty cell
    assert by_host[HOSTILE_HOST][2]["pcie.link"][:2] == ("warn", "drain_and_reset")


def test_sections_and_empty_states() -> None:
    empty = render(
        {"slos": [], "reliability": None, "open_incidents": [], "health": [], "drills": []},
        title="t",
    )
    ids = re.findall(r'<section id="([a-z]+)"', empty)
    assert ids == ["summary", "slos", "reliability", "health", "drills"]
    for message in (
        "No SLO given",
        "No incidents in the window",
        "No GPU health reports given",
        "No drill runs recorded",
    ):
        assert message in empty
    only_drills = render({"drills": []}, title="t")
    assert re.findall(r'<section id="([a-z]+)"', only_drills) == ["drills"]


def points_of(chart: str, cls: str) -> list[tuple[float, float]]:
    found = re.search(rf'<polyline class="{cls}" points="([^"]+)"', chart)
    assert found, chart
    return [(float(a), float(b)) for a, b in (p.split(",") for p in found.group(1).split())]


def test_burn_down_geometry() -> None:
    day = 86400.0
    points = [(0.0, 1.0), (day, 0.9), (2 * day, None), (3 * day, 0.5), (4 * day, -0.25)]
    chart = svg.burn_down(points, start=0.0, end=4 * day, label="x")
    top, bottom = svg.TOP, svg.HEIGHT - svg.BOTTOM
    left, right = svg.LEFT, svg.WIDTH - svg.RIGHT
    # The y axis runs from 100 % down to the lowest value (-25 %): 1.25 units over the plot.
    unit = (bottom - top) / 1.25
    lines = [
        [(float(a), float(b)) for a, b in (p.split(",") for p in found.split())]
        for found in re.findall(r'<polyline class="actual" points="([^"]+)"', chart)
    ]
    # The missing day breaks the line in two.
    assert len(lines) == 2
    assert lines[0] == [(left, top), (left + (right - left) / 4, round(top + 0.1 * unit, 1))]
    assert lines[1] == [
        (left + 3 * (right - left) / 4, round(top + 0.5 * unit, 1)),
        (right, bottom),
    ]
    ideal = re.search(
        r'<line class="ideal" x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="([\d.]+)"', chart
    )
    assert ideal is not None
    assert [float(v) for v in ideal.groups()] == [left, top, right, round(top + unit, 1)]
    assert 'data-points="4"' in chart


def test_failures_over_time_geometry() -> None:
    buckets = [(0.0, 10.0, 0, 1.0), (10.0, 20.0, 4, 0.998), (20.0, 30.0, 2, 0.999)]
    chart = svg.failures_over_time(buckets, label="gpu")
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', chart)]
    plot = svg.HEIGHT - svg.TOP - svg.BOTTOM
    assert heights == [plot, plot / 2]  # 4 failures fill the axis, 2 fill half; none: no bar
    line = points_of(chart, "availability")
    # Availability: 100 % at the top, lower values lower; one point per bucket, at its middle.
    assert [x for x, _ in line] == [
        round(svg.LEFT + (svg.WIDTH - svg.LEFT - svg.RIGHT) * f, 1) for f in (1 / 6, 3 / 6, 5 / 6)
    ]
    ys = [y for _, y in line]
    assert ys[0] == svg.TOP and ys[1] > ys[2] > ys[0]


def test_drill_statuses_take_their_colours() -> None:
    row = hostile_data()["drills"][0]
    statuses = {"aborted": 2, "error": 1, "passed": 3, "some-new-status": 1}
    page = render({"drills": [{**row, "statuses": statuses}]}, title="t")
    assert '<span class="label l-warn">aborted 2</span>' in page
    assert '<span class="label l-failed">error 1</span>' in page
    assert '<span class="label l-ok">passed 3</span>' in page
    assert '<span class="label l-unknown">some-new-status 1</span>' in page
