"""``sre xid``: explain NVIDIA XID kernel-log lines (catalog buckets, our action) and show the
catalog's entry for an XID.

Exit codes: 0 parsed (also when no line was an XID), 2 invalid input (an unreadable file, an XID
number the catalog does not know, no input at all).
"""

from __future__ import annotations

from typing import Any

import click

from sre_tools.cli.output import console, emit, json_option, markup_safe, table


@click.group()
def xid() -> None:
    """NVIDIA XIDs: explain kernel-log lines, show catalog entries."""


def _read_source(name: str) -> list[str]:
    """Lines from a file (``.gz`` too) or ``-`` (stdin); undecodable bytes become U+FFFD."""
    from sre_tools.inputs import MAX_KERNEL_LOG_BYTES, read_capped

    data, _source = read_capped(name, MAX_KERNEL_LOG_BYTES, what="kernel log")
    return data.decode("utf-8", "replace").splitlines()


def _cell(value: Any) -> str | None:
    """Catalog text folds to one line; :func:`table` shows it as plain text."""
    if value is None:
        return None
    return " / ".join(str(value).split("\n"))


def _render(data: dict[str, Any]) -> None:
    con = console()
    events, gpus = data["events"], data["gpus"]
    if not events:
        con.print(f"no XID events found in {data['lines']} line(s)")
        return
    rows = [
        [
            e["time"] or (f"+{e['uptime']:.6f}s" if e["uptime"] is not None else None),
            e["pci_bus_id"],
            e["gpu_instance"],
            e["xid"],
            e["mnemonic"],
            e["catalog_immediate"],
            e["catalog_investigatory"],
            e["action"],
        ]
        for e in events
    ]
    con.print(
        table(
            f"{len(events)} XID event(s)",
            [
                "time",
                "PCI bus",
                "GPU-I",
                "XID",
                "mnemonic",
                "catalog immediate",
                "catalog investigatory",
                "action",
            ],
            [[_cell(c) for c in row] for row in rows],
        )
    )
    con.print(
        table(
            "Decision per GPU",
            ["PCI bus", "GPU-I", "XIDs", "action", "severity", "reason"],
            [
                [
                    _cell(g["pci_bus_id"]),
                    _cell(g["gpu_instance"]),
                    _cell(", ".join(str(x) for x in g["xids"])),
                    _cell(g["action"]),
                    _cell(g["severity"]),
                    _cell(g["reason"]),
                ]
                for g in gpus
            ],
        )
    )


@xid.command()
@click.argument("lines", nargs=-1)
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    metavar="FILE",
    help="Read kernel-log lines from FILE ('-' for stdin; .gz unpacked). Repeatable.",
)
@click.option(
    "--no-fabric-manager",
    is_flag=True,
    help="The node has no NVSwitch/Fabric Manager: a solo XID 45 means restart the app.",
)
@json_option
def explain(
    lines: tuple[str, ...], files: tuple[str, ...], no_fabric_manager: bool, as_json: bool
) -> None:
    """Parse XID lines (dmesg, /dev/kmsg, journalctl, syslog) and say what to do.

    LINE arguments, --file FILE and '-' (stdin) may be combined. Every event gets the catalog's
    immediate and investigatory buckets and our action; events of one GPU are combined into one
    decision (the most disruptive action, XID 154 authoritative).

    \b
    Examples:
      sre xid explain 'NVRM: Xid (PCI:0000:18:00): 79, pid=1234, name=python, ...'
      dmesg | sre xid explain -f -
      sre xid explain --file /var/log/kern.log --json
    """
    from sre_tools.exceptions import ValidationError
    from sre_tools.health.xid.classify import analyze
    from sre_tools.health.xid.events import dedupe
    from sre_tools.health.xid.parser import parse_lines

    sources = list(files) + (["-"] if lines == ("-",) else [])
    text_lines: list[str] = [] if lines == ("-",) else list(lines)
    if not text_lines and not sources:
        raise ValidationError(
            "nothing to explain: give LINE arguments, --file FILE, or '-' for stdin",
            source="sre xid explain",
        )
    for name in dict.fromkeys(sources):
        text_lines.extend(_read_source(name))
    events = dedupe(parse_lines(text_lines))
    analysis = analyze(events, fabric_manager=not no_fabric_manager)
    data = {"lines": len(text_lines), **analysis.to_dict()}
    emit(data, as_json, _render)


@xid.command()
@click.argument("number", type=int)
@json_option
def show(number: int, as_json: bool) -> None:
    """Print the catalog's entry for XID NUMBER, with the bucket texts and our action."""
    from sre_tools.exceptions import NotFoundError
    from sre_tools.health.xid.catalog import load_catalog
    from sre_tools.health.xid.classify import classify
    from sre_tools.health.xid.model import XidEvent

    catalog = load_catalog()
    entry = catalog.get(number)
    if entry is None:
        raise NotFoundError(f"XID {number} is not in the catalog", field="NUMBER")
    solo = classify(XidEvent(xid=number, pci_bus_id=None), catalog=catalog)
    data = {
        **entry.to_dict(),
        "immediate_action_text": catalog.bucket_text(entry.immediate_action),
        "investigatory_action_text": catalog.bucket_text(entry.investigatory_action),
        "action_when_solo": solo.action.value,
        "severity_when_solo": solo.severity.value,
        "reason": solo.reason,
    }

    def render(d: dict[str, Any]) -> None:
        con = console()
        applies = ", ".join(k for k, v in d["applies_to"].items() if v) or "none"
        con.print(f"[bold]XID {d['xid']}[/] {markup_safe(d['mnemonic'])}")
        con.print(f"  {markup_safe(d['description'])}")
        con.print(f"  applies to: {markup_safe(applies)}")
        for label, key in (
            ("immediate", "immediate_action"),
            ("investigatory", "investigatory_action"),
        ):
            name = " / ".join(d[key].splitlines()) or "-"
            con.print(f"  catalog {label}: [bold]{markup_safe(name)}[/]")
            text = d[f"{key}_text"]
            if text and text != d[key]:
                for line in text.splitlines():
                    con.print(f"      {markup_safe(line)}")
        if d["xid154_linkage"]:
            con.print(f"  XID 154 linkage: {markup_safe(d['xid154_linkage'])}")
        con.print(
            f"  our action (seen alone): [bold]{d['action_when_solo']}[/] "
            f"({d['severity_when_solo']}: {markup_safe(d['reason'])})"
        )
        if d["trigger_conditions"]:
            con.print("  trigger conditions:")
            for line in d["trigger_conditions"].splitlines():
                con.print(f"      {markup_safe(line)}")

    emit(data, as_json, render)
