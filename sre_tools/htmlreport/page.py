"""The self-contained HTML report: one file, no script, no request, readable on a phone, printable.

:func:`render` takes the data the text and JSON outputs show (the dictionaries ``sre report
--json``, ``sre slo report --json``, ``sre reliability report --json`` and ``sre drill report
--json`` print) and lays it out as sections, in this order, each present when its key is:

- ``summary``: what pages, what tickets, open incidents, nodes that need an action (from
  ``slos``, ``open_incidents`` and ``health``);
- ``slos``: per SLO, the budget burn-down over the period with the ideal line (``budget_history``),
  burn rates per window, time to exhaustion, firing alerts;
- ``reliability``: MTBF, MTTR, availability per component and for the fleet, and failures and
  availability over time (``series``), drill-measured times apart (``drills`` in it);
- ``health``: the GPU health matrix, node x check, each cell the worst severity of that check's
  findings on that node (the finding model's order) with the action the worst findings ask for;
- ``drills``: drill runs, statuses, measured times and expectations.

Every piece of stored text goes through :func:`esc`. The page carries a Content-Security-Policy
that allows nothing but its own ``<style>`` block (by hash): no script, no image, no font, no
connection.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sre_tools.durations import humanize
from sre_tools.health.model import Action, Severity
from sre_tools.htmlreport import svg
from sre_tools.htmlreport.svg import esc
from sre_tools.text import LABEL_STYLES, num, pct
from sre_tools.timeutil import parse_time

# The colour word of a rich style (LABEL_STYLES) as a CSS background and text colour.
_PALETTE: dict[str, tuple[str, str]] = {
    "red": ("#c62828", "#ffffff"),
    "yellow": ("#f9a825", "#000000"),
    "magenta": ("#8e24aa", "#ffffff"),
    "green": ("#2e7d32", "#ffffff"),
    "cyan": ("#00838f", "#ffffff"),
    "dim": ("#e0e0e0", "#424242"),
}
ABSENT = ("#fafafa", "#9e9e9e")  # a check that did not report on a node

# Section id -> what it shows when its data is there but empty.
NO_DATA = {
    "slos": "No SLO given: no SLO section.",
    "reliability": "No incidents in the window: no MTBF, MTTR or availability to show.",
    "health": "No GPU health reports given: no health matrix.",
    "drills": "No drill runs recorded in the window.",
}


def label_colours(name: str) -> tuple[str, str]:
    """Background and text colour of a status word, from the one table of styled words."""
    style = LABEL_STYLES.get(name, ("", "dim"))[1]
    for word in reversed(style.split()):
        if word in _PALETTE:
            return _PALETTE[word]
    return _PALETTE["dim"]


def _css_class(name: str) -> str:
    return "l-" + re.sub(r"[^a-z0-9]+", "-", name.lower())


def _label(name: object, text: object = None) -> str:
    """A status word in its colours; ``text`` instead of the word when given."""
    shown = LABEL_STYLES.get(str(name), (str(name), ""))[0] if text is None else text
    return f'<span class="label {_css_class(str(name))}">{esc(shown)}</span>'


def _stylesheet() -> str:
    rules = [
        f".{_css_class(name)}{{background:{bg};color:{fg}}}"
        for name in LABEL_STYLES
        for bg, fg in [label_colours(name)]
    ]
    rules.append(f".l-absent{{background:{ABSENT[0]};color:{ABSENT[1]}}}")
    return _CSS + "\n".join(rules) + "\n"


_CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:#212121;background:#fff}
header,main{max-width:1100px;margin:0 auto;padding:0 16px}
header{padding-top:16px;border-bottom:1px solid #e0e0e0}
h1{font-size:1.5rem;margin:0 0 4px}
h2{font-size:1.25rem;margin:28px 0 8px;border-bottom:2px solid #eeeeee;padding-bottom:4px}
h3{font-size:1.05rem;margin:18px 0 6px;overflow-wrap:anywhere}
p.meta{color:#616161;margin:0 0 12px;overflow-wrap:anywhere}
section{margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{flex:1 1 150px;border:1px solid #e0e0e0;border-radius:6px;padding:10px 12px}
.card .n{font-size:1.8rem;font-weight:700;display:block}
.card.hot{border-color:#c62828;border-width:2px}
.card ul{margin:4px 0 0;padding-left:18px;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:6px 0 12px;font-size:.9rem}
th,td{border:1px solid #e0e0e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5}
td.num{text-align:right;white-space:nowrap}
.label{display:inline-block;padding:0 6px;border-radius:3px;font-weight:600;font-size:.85rem}
.slo{border:1px solid #e0e0e0;border-radius:6px;padding:8px 12px;margin:12px 0}
.facts{display:flex;flex-wrap:wrap;gap:4px 18px;margin:4px 0}
.facts span{white-space:nowrap}
svg.chart{display:block;width:100%;height:auto;max-width:720px}
.legend{font-size:.8rem;color:#616161}
.legend i{display:inline-block;width:18px;height:3px;vertical-align:middle;margin:0 4px}
table.matrix td.cell{text-align:center;white-space:nowrap;font-size:.8rem;font-weight:600}
table.matrix td.cell small{display:block;font-weight:400}
table.matrix th.check{font-size:.75rem;font-weight:600;max-width:9em;overflow-wrap:anywhere}
table.matrix tbody th{white-space:nowrap}
@media (max-width:600px){
 svg.chart text{font-size:18px}
 td,th{padding:3px 5px}
}
.empty{color:#616161;font-style:italic}
footer{max-width:1100px;margin:24px auto;padding:8px 16px;color:#757575;font-size:.8rem;
border-top:1px solid #e0e0e0}
@media print{
 body{font-size:10pt}
 header,main,footer{max-width:none;padding:0}
 .scroll{overflow:visible}
 .slo,.card,table,svg.chart{break-inside:avoid}
 h2{break-after:avoid}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
@page{margin:12mm}
"""


def _table(columns: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table in a horizontal scroller; cells are HTML already (escape with :func:`esc`)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return (
        f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _empty(section: str) -> str:
    return f'<p class="empty">{esc(NO_DATA[section])}</p>'


def _ts(text: object) -> float:
    return parse_time(str(text)).timestamp()


# --- sections -------------------------------------------------------------------------------


def _summary(data: Mapping[str, Any]) -> str:
    slos = data.get("slos") or []
    paging = [r for r in slos if r["status"] == "page"]
    tickets = [r for r in slos if r["status"] == "ticket"]
    cards = []

    def card(key: str, title: str, items: list[str], status: str) -> str:
        hot = " hot" if items and status in ("page", "crit") else ""
        listing = "".join(f"<li>{i}</li>" for i in items)
        return (
            f'<div class="card{hot}" id="card-{key}"><span class="n">{len(items)}</span>'
            f"{esc(title)}{f'<ul>{listing}</ul>' if listing else ''}</div>"
        )

    if "slos" in data:
        cards.append(
            card(
                "pages", "SLOs paging", [f"{_label('page')} {esc(r['id'])}" for r in paging], "page"
            )
        )
        cards.append(
            card(
                "tickets",
                "SLOs with a ticket",
                [f"{_label('ticket')} {esc(r['id'])}" for r in tickets],
                "ticket",
            )
        )
    if "open_incidents" in data:
        cards.append(
            card(
                "incidents",
                "open incidents",
                [
                    f"#{esc(i['id'])} {esc(i['component'])} {esc(i['host'] or '')}"
                    for i in data["open_incidents"]
                ],
                "crit",
            )
        )
    if "health" in data:
        acting = [r for r in data["health"] if r["status"] in ("crit", "warn")]
        cards.append(
            card(
                "nodes",
                "nodes that need an action",
                [f"{_label(r['status'])} {esc(r['host'])}: {esc(r['action'])}" for r in acting],
                "crit" if any(r["status"] == "crit" for r in acting) else "warn",
            )
        )
    parts = [f'<div class="cards">{"".join(cards)}</div>']
    incidents = data.get("open_incidents") or []
    if incidents:
        parts.append("<h3>Open incidents</h3>")
        parts.append(
            _table(
                ["id", "started", "component", "host", "gpu", "cause", "xid"],
                [
                    [
                        esc(i["id"]),
                        esc(i["started"]),
                        esc(i["component"]),
                        esc(i["host"] if i["host"] is not None else "-"),
                        esc(i["gpu"] if i["gpu"] is not None else "-"),
                        esc(i["cause"] or "-"),
                        esc(i["xid"] if i["xid"] is not None else "-"),
                    ]
                    for i in incidents
                ],
            )
        )
    return _section("summary", "On-call summary", "".join(parts))


def _slo(r: Mapping[str, Any]) -> str:
    history = [(_ts(p["at"]), p["budget_remaining"]) for p in r.get("budget_history") or []]
    end = _ts(r["at"])
    start = end - float(r["period_seconds"])
    chart = svg.burn_down(
        history or [(end, r["budget_remaining"])],
        start=start,
        end=end,
        label=f"{r['id']}: error budget remaining over {r['period']}",
    )
    facts = [
        ("status", _label(r["status"])),
        ("objective", esc(f"{r['objective_percent']:g}% over {r['period']}")),
        ("SLI (period)", esc(pct(r["sli"]))),
        ("budget left", esc(pct(r["budget_remaining"], 1))),
        ("time to exhaustion", esc(humanize(r["time_to_exhaustion_seconds"]))),
        ("firing", esc(", ".join(r["firing"]) or "-")),
    ]
    windows = [w for w in r["burn_rates"] if w != r["period"]]
    rates = _table(
        ["window", *windows, r["period"] + " (period)"],
        [
            [
                "burn rate",
                *[esc(num(r["burn_rates"][w])) for w in windows],
                esc(num(r["burn_rates"].get(r["period"]))),
            ]
        ],
        "rates",
    )
    alerts = _table(
        ["alert", "windows", "threshold", "long", "short", "firing"],
        [
            [
                esc(f"{a['severity']}-{a['speed']}"),
                esc(f"{a['long_window']} / {a['short_window']}"),
                esc(num(a["factor"])),
                esc(num(a["long_burn_rate"])),
                esc(num(a["short_burn_rate"])),
                _label(a["severity"]) if a["firing"] else "-",
            ]
            for a in r["alerts"]
        ],
        "alerts",
    )
    legend = (
        '<div class="legend"><i class="sw-actual"></i>budget remaining'
        '<i class="sw-ideal"></i>ideal (burn rate 1)</div>'
    )
    facts_html = "".join(f"<span>{esc(k)}: {v}</span>" for k, v in facts)
    return (
        f'<div class="slo" data-slo="{esc(r["id"])}" data-status="{esc(r["status"])}">'
        f'<h3>{esc(r["id"])}</h3><div class="facts">{facts_html}</div>'
        f"{chart}{legend}{rates}{alerts}</div>"
    )


def _slos(rows: Sequence[Mapping[str, Any]]) -> str:
    body = "".join(_slo(r) for r in rows) if rows else _empty("slos")
    return _section("slos", "SLOs: error budget", body)


def _reliability(rel: Mapping[str, Any] | None) -> str:
    if rel is None:
        return _section("reliability", "Reliability", _empty("reliability"))
    gpus = "GPUs unknown" if rel["gpus"] is None else f"{rel['gpus']} GPUs"
    nodes = "nodes unknown" if rel["nodes"] is None else f"{rel['nodes']} nodes"
    meta = (
        f'<p class="meta">{esc(rel["since"])} .. {esc(rel["until"])} '
        f"({esc(humanize(rel['window_seconds']))}, {esc(gpus)}, {esc(nodes)})</p>"
    )
    names = [*rel["components"], "fleet"]

    def stats(name: str) -> Mapping[str, Any]:
        found: Mapping[str, Any] = rel["fleet"] if name == "fleet" else rel["components"][name]
        return found

    rows = []
    for name in names:
        s = stats(name)
        mtbf = "no failures" if s["mtbf_seconds"] is None else humanize(s["mtbf_seconds"])
        rows.append(
            [
                esc(name),
                esc(s["failures"]),
                esc(s["open"]),
                esc(mtbf),
                esc(humanize(s["mttr_seconds"])),
                esc(humanize(s["mttd_seconds"])),
                esc(pct(s["availability"], 3)),
            ]
        )
    parts = [
        meta,
        _table(
            ["component", "failures", "open", "MTBF", "MTTR", "MTTD", "availability"],
            rows,
            "components",
        ),
    ]
    series = rel.get("series") or []
    if series:
        parts.append(
            '<div class="legend">bars: failures per period (left axis); '
            "line: availability (right axis)</div>"
        )
        for name in names:
            buckets = []
            for b in series:
                s = b["fleet"] if name == "fleet" else b["components"].get(name)
                failures = 0 if s is None else int(s["failures"])
                avail = 1.0 if s is None else s["availability"]
                buckets.append((_ts(b["since"]), _ts(b["until"]), failures, avail))
            parts.append(
                f'<div class="component" data-component="{esc(name)}"><h3>{esc(name)}</h3>'
                + svg.failures_over_time(buckets, label=f"{name}: failures and availability")
                + "</div>"
            )
    drills = rel.get("drills")
    if drills and drills.get("runs"):
        parts.append(f"<h3>Measured by {esc(drills['runs'])} drill run(s), not incidents</h3>")
        parts.append(
            _table(
                ["time", "measurements", "mean", "median", "max"],
                [
                    [
                        esc(title),
                        esc(drills[key]["count"]),
                        esc(humanize(drills[key]["mean_seconds"])),
                        esc(humanize(drills[key]["median_seconds"])),
                        esc(humanize(drills[key]["max_seconds"])),
                    ]
                    for title, key in (
                        ("MTTD (to detect)", "detect"),
                        ("to alert", "alert"),
                        ("to drain", "drain"),
                        ("MTTR (to recover)", "recover"),
                    )
                ],
            )
        )
    return _section("reliability", "Reliability", "".join(parts))


def health_matrix(
    reports: Sequence[Mapping[str, Any]],
) -> tuple[list[str], list[tuple[str, str, str, dict[str, tuple[str, str, list[str]]]]]]:
    """Checks (columns) and per node ``(host, status, action, {check: (severity, action,
    summaries)})``: a cell is the worst severity of the check's findings on the node (every GPU),
    its action the most disruptive one the warn/crit findings among them ask for, as
    :class:`~sre_tools.health.model.HealthReport` decides for a whole node."""
    checks: list[str] = sorted({f["check"] for r in reports for f in r["findings"]})
    rows = []
    for r in reports:
        cells: dict[str, tuple[str, str, list[str]]] = {}
        by_check: dict[str, list[Mapping[str, Any]]] = {}
        for f in r["findings"]:
            by_check.setdefault(f["check"], []).append(f)
        for check, findings in by_check.items():
            worst = max((Severity(f["severity"]) for f in findings), key=lambda s: s.rank)
            acting = [
                Action(f["action"])
                for f in findings
                if Severity(f["severity"]) in (Severity.WARN, Severity.CRIT)
            ]
            action = max(acting, key=lambda a: a.rank) if acting else Action.NONE
            summaries = [
                (f"GPU {f['gpu']['index']}: " if f.get("gpu") else "") + str(f["summary"])
                for f in findings
                if Severity(f["severity"]) is worst
            ]
            cells[check] = (worst.value, action.value, summaries)
        rows.append((str(r["host"]), str(r["status"]), str(r["action"]), cells))
    return checks, rows


def _health(reports: Sequence[Mapping[str, Any]]) -> str:
    if not reports:
        return _section("health", "GPU health", _empty("health"))
    checks, rows = health_matrix(reports)
    head = "<th>node</th><th>status</th><th>action</th>" + "".join(
        f'<th class="check">{esc(c)}</th>' for c in checks
    )
    body = []
    for host, status, action, cells in rows:
        tds = [
            f"<th>{esc(host)}</th>",
            f'<td class="cell {_css_class(status)}" data-severity="{esc(status)}">'
            f"{esc(LABEL_STYLES.get(status, (status, ''))[0])}</td>",
            f"<td>{esc(action)}</td>",
        ]
        for check in checks:
            if check not in cells:
                tds.append('<td class="cell l-absent" data-severity="absent">-</td>')
                continue
            severity, act, summaries = cells[check]
            shown = LABEL_STYLES.get(severity, (severity, ""))[0]
            extra = f"<small>{esc(act)}</small>" if act != Action.NONE.value else ""
            tds.append(
                f'<td class="cell {_css_class(severity)}" data-severity="{esc(severity)}" '
                f'data-check="{esc(check)}" data-action="{esc(act)}" '
                f'title="{esc("; ".join(summaries))}">{esc(shown)}{extra}</td>'
            )
        body.append(f'<tr data-host="{esc(host)}">' + "".join(tds) + "</tr>")
    ats = sorted(str(r["at"]) for r in reports)
    meta = (
        f'<p class="meta">{len(rows)} node(s), {len(checks)} check(s); reports from '
        f"{esc(ats[0])} to {esc(ats[-1])}. A cell: the worst severity of the check on the node, "
        "and the action it asks for; hover for the findings.</p>"
    )
    table = (
        f'<div class="scroll"><table class="matrix"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
    return _section("health", "GPU health", meta + table)


def _drills(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return _section("drills", "Drills", _empty("drills"))
    from sre_tools.chaos.model import MEASURES
    from sre_tools.chaos.results import STATUS_LABEL

    def status_cell(statuses: Mapping[str, int]) -> str:
        return " ".join(
            _label(STATUS_LABEL.get(status, "unknown"), f"{status} {count}")
            for status, count in statuses.items()
        )

    runs = _table(
        ["drill", "runs", "statuses", "first", "last", *[f"{k} median / max" for k in MEASURES]],
        [
            [
                esc(r["drill"]),
                esc(r["runs"]),
                status_cell(r["statuses"]),
                esc(r["first"]),
                esc(r["last"]),
                *[
                    esc(
                        f"{humanize(r['times'][k]['median_seconds'])} / "
                        f"{humanize(r['times'][k]['max_seconds'])}"
                    )
                    if r["times"][k]["count"]
                    else "-"
                    for k in MEASURES
                ],
            ]
            for r in rows
        ],
        "drills",
    )
    expectations = _table(
        ["drill", "expectation", "measures", "passed", "failed"],
        [
            [
                esc(r["drill"]),
                esc(e["name"]),
                esc(e["measures"] or "-"),
                esc(e["passed"]),
                _label("failed", e["failed"]) if e["failed"] else "0",
            ]
            for r in rows
            for e in r["expectations"]
        ],
        "expectations",
    )
    return _section("drills", "Drills", runs + "<h3>Expectations</h3>" + expectations)


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}"><h2>{esc(title)}</h2>{body}</section>'


def render(data: Mapping[str, Any], *, title: str, sources: Sequence[str] = ()) -> str:
    """The whole page for ``data`` (see the module docstring for its keys)."""
    sections = []
    if any(k in data for k in ("slos", "open_incidents", "health")):
        sections.append(_summary(data))
    if "slos" in data:
        sections.append(_slos(data["slos"]))
    if "reliability" in data:
        sections.append(_reliability(data["reliability"]))
    if "health" in data:
        sections.append(_health(data["health"]))
    if "drills" in data:
        sections.append(_drills(data["drills"]))
    css = _stylesheet() + (
        f".sw-actual{{background:{svg.ACTUAL}}}.sw-ideal{{background:{svg.IDEAL}}}\n"
    )
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    policy = (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'none'; "
        "base-uri 'none'; form-action 'none'"
    )
    meta = "".join(f'<p class="meta">{esc(line)}</p>' for line in sources)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(title)}</title><style>{css}</style></head>\n"
        f"<body><header><h1>{esc(title)}</h1>{meta}</header>\n<main>"
        + "\n".join(sections)
        + "</main>\n<footer>Generated by sre_tools. Self-contained: no script, no external "
        "resource.</footer></body></html>\n"
    )
