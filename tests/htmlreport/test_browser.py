"""The HTML report in a real headless Chromium (Debian's ``chromium``), over the DevTools protocol
(tests/helpers/chromium.py): no console error, no network request, and the layout checked from
the browser's own geometry and from screenshot pixels, never from font rendering.

How "no network request" is shown: every request the page makes is logged by the browser
(``Network.requestWillBeSent``, the document itself included); the page is loaded once as it is
and once with its Content-Security-Policy bypassed (so that the policy cannot hide an attempt),
and both times the only request is the file itself. A control page with an external image,
stylesheet and a console error proves the same method sees them. The browser also has a proxy on
a closed loopback port, so nothing could leave the machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sre_tools.cli.main import main
from sre_tools.htmlreport import svg
from sre_tools.htmlreport.page import label_colours
from tests.helpers.chromium import Chromium, Page, png_pixels, rgb
from tests.htmlreport.conftest import AT, ReportEnv

DESKTOP = {"width": 1200, "height": 900}
PHONE = {"width": 390, "height": 844, "mobile": True}
SECTIONS = ["summary", "slos", "reliability", "health", "drills"]

pytestmark = pytest.mark.integration  # a real browser

# Everything the layout tests read from the page, in one evaluation: page coordinates.
GEOMETRY = """(() => {
  const box = e => { const b = e.getBoundingClientRect();
    return {x: b.left + scrollX, y: b.top + scrollY, w: b.width, h: b.height}; };
  const bg = e => getComputedStyle(e).backgroundColor;
  return {
    width: innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    fontSize: parseFloat(getComputedStyle(document.body).fontSize),
    sections: [...document.querySelectorAll('main > section')].map(s => ({id: s.id, ...box(s)})),
    slos: [...document.querySelectorAll('.slo')].map(s => {
      const chart = s.querySelector('svg.burn-down');
      return {id: s.dataset.slo, status: s.dataset.status, label: bg(s.querySelector('.label')),
              chart: chart && box(chart), ideal: s.querySelectorAll('svg .ideal').length,
              actual: s.querySelectorAll('svg .actual').length};
    }),
    components: [...document.querySelectorAll('.component svg.reliability')].map(box),
    cells: [...document.querySelectorAll('table.matrix td.cell')].map(c => ({
      host: c.closest('tr').dataset.host, check: c.dataset.check || null,
      severity: c.dataset.severity, bg: bg(c), ...box(c)})),
    cards: [...document.querySelectorAll('.card')].map(c => ({id: c.id, ...box(c)})),
    scrollers: [...document.querySelectorAll('.scroll')].map(s => ({
      client: s.clientWidth, overflow: getComputedStyle(s).overflowX})),
    drillLabels: [...document.querySelectorAll('#drills .label')].map(l => ({
      text: l.textContent, bg: bg(l)})),
  };
})()"""


def css_rgb(hex_colour: str) -> str:
    r, g, b = rgb(hex_colour)
    return f"rgb({r}, {g}, {b})"


@pytest.fixture(scope="module")
def report_file(report_env: ReportEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report.html"
    health = [f"--health={f}" for f in report_env.health]
    args = ["report", "--examples", "--store", str(report_env.store), "--at", AT, "--no-gpu"]
    assert main([*args, *health, "--html", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    with Chromium(tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium


def open_page(browser: Chromium, path: Path, viewport: dict[str, Any], **load: Any) -> Page:
    page = browser.page(**viewport)
    page.load(path, **load)
    return page


def test_control_page_shows_the_method_sees_requests_and_errors(
    browser: Chromium, tmp_path: Path
) -> None:
    control = tmp_path / "control.html"
    control.write_text(
        "<!DOCTYPE html><html><head>"
        '<link rel="stylesheet" href="http://127.0.0.1:9/x.css"></head><body>'
        '<img src="http://example.invalid/x.png"><script>console.error("boom")</script>'
        "</body></html>",
        encoding="utf-8",
    )
    page = open_page(browser, control, DESKTOP)
    page.close()
    assert page.requests == [
        control.as_uri(),
        "http://127.0.0.1:9/x.css",
        "http://example.invalid/x.png",
    ]
    assert ("error", "boom") in page.errors()


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-policy", "policy-bypassed"])
def test_no_console_error_no_request(
    browser: Chromium, report_file: Path, bypass_csp: bool
) -> None:
    page = open_page(browser, report_file, DESKTOP, bypass_csp=bypass_csp)
    page.close()
    assert page.errors() == []
    assert [lvl for lvl, _ in page.console if lvl == "warning"] == []
    assert page.requests == [report_file.resolve().as_uri()]


def dominant(png: bytes) -> tuple[tuple[int, int, int], float]:
    """The most frequent colour of a screenshot clip and its share of the pixels."""
    _, _, pixels = png_pixels(png)
    counts: dict[tuple[int, int, int], int] = {}
    for p in pixels:
        counts[p] = counts.get(p, 0) + 1
    colour, count = max(counts.items(), key=lambda kv: kv[1])
    return colour, count / len(pixels)


def near(pixels: list[tuple[int, int, int]], colour: tuple[int, int, int], tol: int = 40) -> int:
    return sum(1 for p in pixels if all(abs(a - b) <= tol for a, b in zip(p, colour, strict=True)))


def test_desktop_layout(browser: Chromium, report_file: Path, tmp_path: Path) -> None:
    page = open_page(browser, report_file, DESKTOP)
    geo = page.evaluate(GEOMETRY)
    # The on-call summary first, then the sections in order, one below the other.
    assert [s["id"] for s in geo["sections"]] == SECTIONS
    ys = [s["y"] for s in geo["sections"]]
    assert ys == sorted(ys) and ys[0] < 300
    assert [c["id"] for c in geo["cards"]] == [
        "card-pages",
        "card-tickets",
        "card-incidents",
        "card-nodes",
    ]
    assert len({c["y"] for c in geo["cards"]}) == 1  # side by side on a wide screen
    # A burn-down chart per SLO, drawn at its full size with both lines.
    assert [s["id"] for s in geo["slos"]] == [
        "slurm-scheduler-job-launch-success",
        "slurm-scheduler-gpu-node-availability",
        "training-api-availability",
        "training-api-checkpoint-writes",
    ]
    for slo in geo["slos"]:
        chart = slo["chart"]
        assert chart["w"] == 720 and chart["h"] == pytest.approx(720 * svg.HEIGHT / svg.WIDTH)
        assert slo["ideal"] == 1 and slo["actual"] >= 1
        assert slo["label"] == css_rgb(label_colours(slo["status"])[0])
    assert {s["status"] for s in geo["slos"]} == {"page", "ticket", "ok"}
    assert len(geo["components"]) >= 2 and all(c["w"] == 720 for c in geo["components"])
    # The matrix: each cell coloured by its severity, as the browser computes it...
    cells = geo["cells"]
    assert {c["severity"] for c in cells} == {"crit", "warn", "ok", "unknown", "skipped", "absent"}
    for cell in cells:
        expected = "#fafafa" if cell["severity"] == "absent" else label_colours(cell["severity"])[0]
        assert cell["bg"] == css_rgb(expected), cell
    # ...and as the screenshot shows it: a clip inside each kind of cell is that colour.
    checked = set()
    for cell in cells:
        if cell["severity"] in checked or cell["severity"] == "absent":
            continue
        clip = {"x": cell["x"] + 2, "y": cell["y"] + 2, "width": 5, "height": 3}
        colour, share = dominant(page.screenshot(clip))
        assert (colour, share) == (rgb(label_colours(cell["severity"])[0]), 1.0), cell
        checked.add(cell["severity"])
    # The first chart's pixels: the measured line in its blue, the ideal line in its grey.
    chart = geo["slos"][0]["chart"]
    _, _, pixels = png_pixels(
        page.screenshot({"x": chart["x"], "y": chart["y"], "width": chart["w"], "height": 120})
    )
    assert near(pixels, rgb(svg.ACTUAL)) > 300 and near(pixels, rgb(svg.IDEAL), 30) > 100
    drill_labels = {d["text"]: d["bg"] for d in geo["drillLabels"]}
    assert drill_labels["passed 2"] == css_rgb(label_colours("ok")[0])
    assert drill_labels["failed 1"] == css_rgb(label_colours("failed")[0])
    shot = page.screenshot()
    page.close()
    width, height = int.from_bytes(shot[16:20], "big"), int.from_bytes(shot[20:24], "big")
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and width == 1200
    assert height == pytest.approx(geo["sections"][-1]["y"] + geo["sections"][-1]["h"], abs=200)
    # SRE_REPORT_SCREENSHOTS=DIR keeps two views for the docs (docs/images/ comes from here):
    # the first screen (summary and the first SLO) and the health matrix with the drills.
    keep = os.environ.get("SRE_REPORT_SCREENSHOTS")
    if keep:
        folder = Path(keep)
        folder.mkdir(parents=True, exist_ok=True)
        top = {"x": 0, "y": 0, "width": 1200, "height": geo["slos"][1]["chart"]["y"] - 40}
        (folder / "html-report-top.png").write_bytes(page_top(report_file, browser, top))
        health = next(s for s in geo["sections"] if s["id"] == "health")
        drills = next(s for s in geo["sections"] if s["id"] == "drills")
        bottom = {
            "x": 0,
            "y": health["y"],
            "width": 1200,
            "height": drills["y"] + drills["h"] - health["y"],
        }
        (folder / "html-report-health.png").write_bytes(page_top(report_file, browser, bottom))


def page_top(path: Path, browser: Chromium, clip: dict[str, float]) -> bytes:
    page = open_page(browser, path, DESKTOP)
    try:
        return page.screenshot(clip)
    finally:
        page.close()


def test_phone_layout(browser: Chromium, report_file: Path) -> None:
    page = open_page(browser, report_file, PHONE)
    geo = page.evaluate(GEOMETRY)
    page.close()
    assert geo["width"] == 390
    assert geo["scrollWidth"] == 390  # nothing wider than the phone: no sideways scrolling
    assert geo["fontSize"] >= 14
    assert [s["id"] for s in geo["sections"]] == SECTIONS
    for slo in geo["slos"]:
        # The chart shrinks to the screen (less the page and box padding), keeping its shape.
        assert 300 <= slo["chart"]["w"] <= 390 - 32
        assert slo["chart"]["h"] == pytest.approx(slo["chart"]["w"] * svg.HEIGHT / svg.WIDTH)
    for box in [*geo["cards"], *geo["cells"]]:
        assert box["x"] >= 0
    assert all(c["x"] + c["w"] <= 390 for c in geo["cards"])
    # Wide tables scroll inside their own box instead.
    assert all(s["client"] <= 390 and s["overflow"] == "auto" for s in geo["scrollers"])


def test_print(browser: Chromium, report_file: Path) -> None:
    page = open_page(browser, report_file, DESKTOP)
    page.media("print")
    geo = page.evaluate(GEOMETRY)
    pdf = page.pdf()
    page.close()
    assert page.errors() == []
    assert [s["id"] for s in geo["sections"]] == SECTIONS
    # Printed tables are not cut at a scroller's edge, and the status colours are kept.
    assert {s["overflow"] for s in geo["scrollers"]} == {"visible"}
    for cell in geo["cells"]:
        if cell["severity"] != "absent":
            assert cell["bg"] == css_rgb(label_colours(cell["severity"])[0])
    assert all(slo["chart"]["w"] > 300 for slo in geo["slos"])
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert (
        pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(b"/Type /Page>") >= 3
    )
