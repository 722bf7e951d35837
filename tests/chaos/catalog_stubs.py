"""Stand-ins for a GPU node and its monitoring, for the catalog's tests.

:class:`StubNode` puts shell scripts named ``systemctl``, ``sinfo``, ``scontrol``, ``dcgmi`` and
``sre`` first on PATH. They keep their state in files (unit states, the Slurm node's state and
reason, DCGM's injected value) and log their argv, so a test drives a drill with the local
transport and reads what happened. ``sre`` is the real ``sre health`` on a recorded HGX GPU tree
whose fabric stays registered; its fabric.manager check reads the ``systemctl`` stand-in's unit
state (``--systemctl``). ``sinfo`` adds the ``*`` slurmctld shows for a node whose slurmd is
stopped, and plays the site's remediation: it drains the node (reason ``sre: ...``) while its
kernel log holds an XID line.

:class:`FakeMonitoring` is a Prometheus query API and an exporter ``/metrics`` on loopback whose
answers follow the node's state: GpuExporterDown fires while the exporter unit is stopped, the
GpuXid alerts fire and the XID counter counts while the kernel log holds drill lines.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
HEALTHY_GPUS = REPO / "tests/fixtures/gpu/hgx-h100-8-synthetic.json"
# GPU 0 of the recording: the PCI address an injected XID line names.
GPU0_PCI = "0000:18:00"

SYSTEMCTL = r"""#!/bin/sh
# systemctl stand-in: $STUB_STATE/units/UNIT holds the unit's state. `is-active` prints the
# state word and exits 0 only for active (3 otherwise), as systemd does; a unit with a UNIT.slow
# file is "activating" for one is-active after a start. `show --property=... -- UNIT` answers
# LoadState/ActiveState/SubState lines, as systemd does (the health engine's fabric.manager).
for last in "$@"; do :; done
u="$STUB_STATE/units/$last"
echo "$*" >> "$STUB_STATE/systemctl.log"
case "$1" in
  show)
    st=$(cat "$u" 2>/dev/null || echo inactive)
    printf 'LoadState=loaded\nActiveState=%s\nSubState=%s\n' "$st" "$st" ;;
  is-active)
    st=$(cat "$u" 2>/dev/null || echo inactive)
    echo "$st"
    if [ "$st" = activating ]; then echo active > "$u"; fi
    [ "$st" = active ] && exit 0
    exit 3 ;;
  stop) echo inactive > "$u" ;;
  start) if [ -e "$u.slow" ]; then echo activating > "$u"; else echo active > "$u"; fi ;;
  *) echo "systemctl stand-in: unknown command $1" >&2; exit 1 ;;
esac
"""

SINFO = r"""#!/bin/sh
# sinfo stand-in for `sinfo -h -N -n NODE -o %T|%E`.
s="$STUB_STATE"
for a in "$@"; do fmt="$a"; done
# An XID counts until its drill run is acknowledged (the node's drill-acks file).
unacked() {
  grep -o 'sre-drill run=[^]]*' "$REMEDIATE_LOG" 2>/dev/null | sed 's/.*run=//' |
    while read -r r; do grep -qxF "$r" "$s/../drill-acks" 2>/dev/null || echo "$r"; done |
    grep -q .
}
if [ -n "$REMEDIATE_LOG" ] && unacked && [ "$(cat "$s/node_state")" != drained ]; then
  echo drained > "$s/node_state"
  echo "sre: remediation xid 79 (reboot)" > "$s/node_reason"
fi
st=$(cat "$s/node_state")
if [ "$(cat "$s/units/slurmd.service" 2>/dev/null)" = inactive ]; then st="$st*"; fi
case "$fmt" in
  %T) echo "$st"; if [ -e "$s/two_partitions" ]; then echo "$st"; fi ;;
  %E) cat "$s/node_reason" ;;
esac
"""

SCONTROL = r"""#!/bin/sh
# scontrol stand-in for `scontrol update NodeName=N State=DRAIN|RESUME [Reason=...]`.
s="$STUB_STATE"
echo "$*" >> "$s/scontrol.log"
for a in "$@"; do
  case "$a" in
    State=DRAIN) echo drained > "$s/node_state" ;;
    State=RESUME) echo idle > "$s/node_state"; echo none > "$s/node_reason" ;;
    Reason=*) echo "${a#Reason=}" > "$s/node_reason" ;;
  esac
done
"""

# `dcgmi health -c` prints a table with an "Overall Health" row (layout as in NVIDIA's DCGM
# documentation examples; not recorded on a machine of ours).
DCGMI = r"""#!/bin/sh
# dcgmi stand-in: `test --inject --gpuid N -f F -v V` keeps V; `health -c` reports Failure while
# it is not 0.
s="$STUB_STATE"
echo "$*" >> "$s/dcgmi.log"
case "$1" in
  test) for a in "$@"; do v="$a"; done; echo "$v" > "$s/dcgm_value"
        echo "Successfully injected field info." ;;
  health)
    v=$(cat "$s/dcgm_value" 2>/dev/null || echo 0)
    echo "+---------------------------+----------------------------------------------------------+"
    echo "| Health Monitor Report                                                                |"
    echo "+===========================+==========================================================+"
    if [ "$v" = 0 ]; then
    echo "| Overall Health            | Healthy                                                  |"
    else
    echo "| Overall Health            | Failure                                                  |"
    echo "| GPU ID: 0                 | Failure                                                  |"
    echo "|                           | Memory system: Failure                                   |"
    echo "|                           | A double-bit ECC error has occurred on GPU 0.            |"
    fi
    echo "+---------------------------+----------------------------------------------------------+"
    ;;
  *) echo "dcgmi stand-in: unknown command $1" >&2; exit 1 ;;
esac
"""

SRE = r"""#!/bin/sh
# sre on the node: the real `sre health` on a recorded HGX GPU tree (registered fabric); unit
# states come from the systemctl stand-in when the drill passes --systemctl; the node's site
# file names its drill acknowledgment file (xid.drill_acks_file) unless a --config is given.
echo "$*" >> "$STUB_STATE/sre.log"
case " $* " in *" --config "*) ;; *) set -- "$@" --config "{site}" ;; esac
PYTHONPATH="{repo}" exec "{python}" -m sre_tools.cli.main "$@" --replay "{healthy}"
"""


@dataclass
class StubNode:
    root: Path
    bin: Path
    state: Path
    kernel_log: Path
    acks_file: Path = Path()

    def unit(self, name: str) -> str:
        path = self.state / "units" / name
        return path.read_text().strip() if path.exists() else "inactive"

    def set_unit(self, name: str, state: str) -> None:
        (self.state / "units" / name).write_text(state + "\n")

    def node(self) -> tuple[str, str]:
        return (
            (self.state / "node_state").read_text().strip(),
            (self.state / "node_reason").read_text().strip(),
        )

    def set_node(self, state: str, reason: str = "none") -> None:
        (self.state / "node_state").write_text(state + "\n")
        (self.state / "node_reason").write_text(reason + "\n")

    def log(self, tool: str) -> list[str]:
        path = self.state / f"{tool}.log"
        return path.read_text().splitlines() if path.exists() else []

    def remove(self, tool: str) -> None:
        (self.bin / tool).unlink()

    def drill_lines(self) -> int:
        """Drill-tagged lines of runs not acknowledged (they are never removed from the log)."""
        from tests.chaos.conftest import unacknowledged_lines

        return unacknowledged_lines(self.kernel_log, self.acks_file)


def make_stub_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StubNode:
    node = StubNode(tmp_path / "node", tmp_path / "node/bin", tmp_path / "node/state", Path())
    node.kernel_log = node.root / "kern.log"
    (node.state / "units").mkdir(parents=True)
    node.kernel_log.write_text("")  # the file the node's kernel-log source reads: it exists
    node.bin.mkdir(parents=True)
    node.acks_file = node.root / "drill-acks"
    site = node.root / "site.yaml"
    site.write_text(f"xid:\n  drill_acks_file: {node.acks_file}\n")
    sre = SRE.format(healthy=HEALTHY_GPUS, site=site, repo=REPO, python=sys.executable)
    for name, text in (
        ("systemctl", SYSTEMCTL),
        ("sinfo", SINFO),
        ("scontrol", SCONTROL),
        ("dcgmi", DCGMI),
        ("sre", sre),
    ):
        path = node.bin / name
        path.write_text(text)
        path.chmod(0o755)
    for unit in (
        "sre-exporter.service",
        "nvidia-fabricmanager.service",
        "slurmd.service",
    ):
        node.set_unit(unit, "active")
    node.set_node("idle")
    monkeypatch.setenv("STUB_STATE", str(node.state))
    monkeypatch.setenv("PATH", f"{node.bin}{os.pathsep}{os.environ['PATH']}")
    return node


@dataclass
class FakeMonitoring:
    """Prometheus's query API and the exporter's /metrics, answering from ``node``'s state."""

    node: StubNode
    url: str = ""
    queries: list[str] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)  # query -> series values
    xid_events: int = 0

    def firing(self) -> set[str]:
        alerts = set()
        if self.node.unit("sre-exporter.service") != "active":
            alerts.add("GpuExporterDown")
        if self.node.drill_lines():
            alerts |= {"GpuXidEvent", "GpuXidRebootRequired"}
        return alerts

    def answer(self, query: str) -> list[dict[str, Any]]:
        self.queries.append(query)
        match = re.search(r'alertname=~"((?:[^"\\]|\\.)*)"', query)
        if query.startswith("ALERTS{") and match:
            pattern = match.group(1).replace("\\\\", "\\")
            names = sorted(a for a in self.firing() if re.fullmatch(pattern, a))
            return [{"metric": {"alertname": n}, "value": [0, "1"]} for n in names]
        return [{"metric": {}, "value": [0, str(v)]} for v in self.values.get(query, [])]

    def metrics(self) -> str:
        self.xid_events = max(self.xid_events, self.node.drill_lines())
        labels = 'gpu="0",uuid="GPU-0",pci_bus_id="00000000:18:00.0",xid="79"'
        return (
            "# HELP gpu_xid_events_total XID events seen by this exporter.\n"
            "# TYPE gpu_xid_events_total counter\n"
            f"gpu_xid_events_total{{{labels}}} {self.xid_events}\n"
        )


@contextmanager
def fake_monitoring(node: StubNode) -> Iterator[FakeMonitoring]:
    fake = FakeMonitoring(node)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(fake.metrics().encode(), "text/plain; version=0.0.4")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            result = fake.answer(form["query"][0])
            body = {"status": "success", "data": {"resultType": "vector", "result": result}}
            self._send(json.dumps(body).encode(), "application/json")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
