"""Probes of the drill catalog, called as ``python`` providers (see :mod:`.actions`).

Two kinds:

- on the node, through its transport (``transport`` injected by the runner): the kernel log,
  Slurm (``sinfo`` runs on the node), systemd, ``sre health``, ``dcgmi``;
- on the controller, over HTTP: every probe with a ``prometheus_url`` or ``url`` argument queries
  Prometheus (through :class:`sre_tools.sli.prometheus.PrometheusSource`, the toolkit's one
  client) or the exporter's ``/metrics`` from the machine that runs ``sre drill``, never through
  the node's transport. ``{node}`` in a URL becomes the node's name.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from sre_tools.chaos.actions import (
    DEFAULT_DRILL_ACKS_FILE,
    KMSG,
    acknowledged_runs,
    command,
    drill_runs_in_log,
    local_or,
    node_or_host,
    slurm_node,
    validate_command,
    validate_unit,
)
from sre_tools.exceptions import QueryError, ValidationError
from sre_tools.transport import Transport, TransportError

# --- the kernel log --------------------------------------------------------------------------


def drill_xid_lines(
    kernel_log: str = KMSG,
    acks_file: str = DEFAULT_DRILL_ACKS_FILE,
    timeout: float = 30.0,
    transport: Transport | None = None,
) -> int:
    """How many drill-tagged XID lines in ``kernel_log`` still count: those of runs not
    acknowledged in ``acks_file`` (read as the health engine reads it)."""
    transport = local_or(transport)
    runs = drill_runs_in_log(kernel_log, timeout, transport)
    if not runs:
        return 0
    acked = acknowledged_runs(acks_file, timeout, transport)
    return sum(1 for r in runs if r not in acked)


# --- Slurm -----------------------------------------------------------------------------------


def _sinfo_field(transport: Transport, node: str, sinfo: str, fmt: str, timeout: float) -> str:
    # -N prints a node once per partition it is in: the first line is the node's.
    argv = [sinfo, "-h", "-N", "-n", slurm_node(node), "-o", fmt]
    _, out = command(transport, argv, timeout)
    lines = out.strip().splitlines()
    return lines[0].strip() if lines else ""


def node_state(
    sinfo: str = "sinfo",
    timeout: float = 30.0,
    transport: Transport | None = None,
    node: str = "",
) -> str:
    """Slurm's state of ``node`` (``idle``, ``mixed``, ``drained``, ...). A trailing ``*``
    (``idle*``, ``down*``) means slurmctld gets no answer from the node's slurmd."""
    return _sinfo_field(local_or(transport), node_or_host(node), sinfo, "%T", timeout)


def node_reason(
    sinfo: str = "sinfo",
    timeout: float = 30.0,
    transport: Transport | None = None,
    node: str = "",
) -> str:
    """Slurm's reason for ``node`` being drained or down (``none`` when it has none)."""
    return _sinfo_field(local_or(transport), node_or_host(node), sinfo, "%E", timeout)


def node_responding(
    sinfo: str = "sinfo",
    timeout: float = 30.0,
    transport: Transport | None = None,
    node: str = "",
) -> bool:
    """Whether slurmctld hears from ``node``'s slurmd (its state has no ``*`` suffix)."""
    state = node_state(sinfo=sinfo, timeout=timeout, transport=transport, node=node)
    return bool(state) and not state.endswith("*")


# --- systemd ---------------------------------------------------------------------------------


def unit_state(
    unit: str,
    systemctl: str = "systemctl",
    timeout: float = 30.0,
    transport: Transport | None = None,
) -> str:
    """``systemctl is-active UNIT``: ``active``, ``inactive``, ``failed``, ``activating``, ...
    (its exit status is non-zero for every state but active; the word is what counts)."""
    transport = local_or(transport)
    validate_unit(unit)
    result = transport.run([systemctl, "is-active", unit], timeout)
    state = result.stdout.decode(errors="replace").strip().splitlines()
    if not state:
        err = result.stderr.decode(errors="replace").strip()
        raise TransportError(
            f"systemctl is-active {unit} exited {result.rc} without a state: {err}",
            target=transport.target,
        )
    return state[0].strip()


def unit_active(
    unit: str,
    systemctl: str = "systemctl",
    timeout: float = 30.0,
    transport: Transport | None = None,
) -> bool:
    return unit_state(unit, systemctl=systemctl, timeout=timeout, transport=transport) == "active"


# --- sre health on the node ------------------------------------------------------------------


def health_report(
    sre: str = "sre",
    kernel_log: str = "",
    profile: str = "",
    replay: str = "",
    config: str = "",
    timeout: float = 120.0,
    transport: Transport | None = None,
    systemctl: str = "",
) -> dict[str, Any]:
    """``sre health --json`` on the node (its report as a mapping). Exit 0-2 are verdicts; exit 3
    is UNKNOWN with a report, or an error without one (raised with its message). An empty option
    is not passed."""
    transport = local_or(transport)
    validate_command(sre, "sre")
    argv = [sre, "health", "--json"]
    for flag, value in (
        # /dev/kmsg is the node's own kernel log, which sre health reads by default (as a file
        # it would be read until an end that never comes).
        ("--kernel-log", "" if kernel_log == KMSG else kernel_log),
        ("--profile", profile),
        ("--replay", replay),
        ("--config", config),
        # Which systemctl reads unit states (fabric.manager); a replay reads none without it.
        ("--systemctl", systemctl),
    ):
        if value:
            argv += [flag, str(value)]
    result = transport.run(argv, timeout)
    text = result.stdout.decode(errors="replace")
    try:
        report = json.loads(text) if text.strip() else None
    except ValueError:
        report = None
    if not isinstance(report, dict) or "status" not in report:
        err = result.stderr.decode(errors="replace").strip()
        raise TransportError(
            f"sre health exited {result.rc} without a JSON report: {err[:300]}",
            target=transport.target,
        )
    return report


def health_status(
    sre: str = "sre",
    kernel_log: str = "",
    profile: str = "",
    replay: str = "",
    config: str = "",
    timeout: float = 120.0,
    transport: Transport | None = None,
) -> str:
    """The node's worst health status now: ``ok``, ``warn``, ``crit`` or ``unknown``."""
    report = health_report(sre, kernel_log, profile, replay, config, timeout, transport)
    return str(report["status"])


def health_finding(
    check: str,
    sre: str = "sre",
    kernel_log: str = "",
    profile: str = "",
    replay: str = "",
    config: str = "",
    timeout: float = 120.0,
    transport: Transport | None = None,
    systemctl: str = "",
) -> str:
    """``SEVERITY:ACTION`` of the worst finding of ``check`` (its findings on every GPU; a check
    id like ``xid`` or ``fabric.state``), e.g. ``crit:reboot``; ``absent`` when the report has
    no finding of that check."""
    from sre_tools.health.model import Action, Severity

    report = health_report(sre, kernel_log, profile, replay, config, timeout, transport, systemctl)
    worst: tuple[int, int, str] | None = None
    for finding in report.get("findings") or ():
        if not isinstance(finding, Mapping) or finding.get("check") != check:
            continue
        try:
            severity, action = Severity(finding["severity"]), Action(finding["action"])
        except (KeyError, ValueError):
            continue
        key = (severity.rank, action.rank, f"{severity.value}:{action.value}")
        if worst is None or key > worst:
            worst = key
    return "absent" if worst is None else worst[2]


# --- DCGM ------------------------------------------------------------------------------------

_OVERALL_RE = re.compile(r"Overall Health\s*\|\s*([A-Za-z]+)")


def command_available(
    command_name: str, timeout: float = 30.0, transport: Transport | None = None
) -> bool:
    """Whether ``command_name`` is on the node's PATH (or, as an absolute path, executable).
    ``command -v`` runs in ``sh`` with the name as a positional argument, never in the script
    text; the name is checked against a strict pattern first."""
    transport = local_or(transport)
    validate_command(command_name)
    argv = ["sh", "-c", 'command -v -- "$1"', "sh", command_name]
    rc, _ = command(transport, argv, timeout, ok=(0, 1, 127), what="command -v")
    return rc == 0


def dcgm_health(
    dcgmi: str = "dcgmi", timeout: float = 60.0, transport: Transport | None = None
) -> str:
    """``dcgmi health -c``'s overall verdict, lower case: ``healthy``, ``warning`` or
    ``failure``. The host engine must have health watches set (``dcgmi health -s a``)."""
    transport = local_or(transport)
    validate_command(dcgmi, "dcgmi")
    result = transport.run([dcgmi, "health", "-c"], timeout)
    out = result.stdout.decode(errors="replace")
    match = _OVERALL_RE.search(out)
    if match is None:
        err = (result.stderr.decode(errors="replace") or out).strip()
        raise TransportError(
            f"dcgmi health -c exited {result.rc} without an overall verdict: {err[:300]}",
            target=transport.target,
        )
    return match.group(1).lower()


# --- Prometheus and the exporter (from the controller) ---------------------------------------

_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ALERT_RE = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:.*|()+?]*$")


def _promql_string(value: str) -> str:
    """A PromQL double-quoted string literal holding ``value``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def alerts_selector(
    alert: str,
    labels: Mapping[str, Any] | None = None,
    node_label: str = "",
    node: str = "",
) -> str:
    """``ALERTS{alertname=~"ALERT", alertstate="firing", ...}``. ``alert`` is a name or an RE2
    pattern (``GpuXid.*``; Prometheus anchors it); ``labels`` match exactly; with
    ``node_label`` (``instance``) the node's name matches as a host name, FQDN or ``host:port``."""
    if not isinstance(alert, str) or not _ALERT_RE.match(alert):
        raise ValidationError(f"not an alert name or pattern: {alert!r}", field="alert")
    matchers = [f"alertname=~{_promql_string(alert)}", 'alertstate="firing"']
    for key, value in (labels or {}).items():
        if not _LABEL_RE.match(str(key)) or key in ("alertname", "alertstate"):
            raise ValidationError(f"not a usable label name: {key!r}", field="labels")
        matchers.append(f"{key}={_promql_string(str(value))}")
    if node_label:
        if not _LABEL_RE.match(node_label):
            raise ValidationError(f"not a label name: {node_label!r}", field="node_label")
        pattern = re.escape(node_or_host(node)) + "([.:].*)?"
        matchers.append(f"{node_label}=~{_promql_string(pattern)}")
    return "ALERTS{" + ", ".join(matchers) + "}"


def _source(prometheus_url: str, timeout: float) -> Any:
    from sre_tools.sli.prometheus import PrometheusSource

    return PrometheusSource(prometheus_url, timeout=float(timeout))


def alert_firing(
    prometheus_url: str,
    alert: str,
    labels: Mapping[str, Any] | None = None,
    node_label: str = "",
    timeout: float = 10.0,
    node: str = "",
) -> bool:
    """Whether Prometheus at ``prometheus_url`` has ``alert`` firing now (pending is not
    firing): a query of its ``ALERTS`` series, from the controller."""
    expr = alerts_selector(alert, labels, node_label, node)
    return bool(_source(prometheus_url, timeout).query(expr, time.time()))


def promql(prometheus_url: str, query: str, timeout: float = 10.0) -> float | None:
    """The value of an instant PromQL ``query`` (one series or a scalar) from the controller;
    ``None`` when it returns nothing or NaN. More than one series is an error: aggregate."""
    result = _source(prometheus_url, timeout).query(query, time.time())
    if not result:
        return None
    if len(result) > 1:
        raise QueryError(f"{query!r} returned {len(result)} series; aggregate it to one")
    try:
        value = float(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        raise QueryError(f"{query!r}: malformed sample {result[0]!r:.200}") from None
    return value if math.isfinite(value) else None


def promql_threshold(
    prometheus_url: str,
    query: str,
    below: float | None = None,
    above: float | None = None,
    timeout: float = 10.0,
) -> str:
    """Judge ``query`` against a bound: ``met`` (value below ``below`` / above ``above``),
    ``not-met``, ``no-data``, or ``not-configured`` when ``prometheus_url`` or ``query`` is empty
    (a drill's optional expectation, e.g. an SLI dip where the site has an SLO)."""
    if not prometheus_url or not query:
        return "not-configured"
    value = promql(prometheus_url, query, timeout)
    if value is None:
        return "no-data"
    ok = (below is None or value < float(below)) and (above is None or value > float(above))
    return "met" if ok else "not-met"


def exporter_metric(
    url: str,
    name: str,
    labels: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
    node: str = "",
) -> float | None:
    """The sum of the samples named ``name`` (with ``_total`` for a counter) whose labels include
    ``labels``, read from the exporter's ``/metrics`` at ``url`` from the controller (``{node}``
    in ``url`` becomes the node's name); ``None`` when no sample matches. ``https`` and
    credentials in the URL work as for ``--prometheus`` (basic auth, never printed)."""
    from prometheus_client.parser import text_string_to_metric_families

    from sre_tools.webclient import Endpoint

    url = url.replace("{node}", node_or_host(node))
    endpoint = Endpoint(url, field="url", what="exporter", timeout=float(timeout))
    parts = urllib.parse.urlsplit(endpoint.url)
    if parts.path in ("", "/"):
        endpoint.url = urllib.parse.urlunsplit(parts._replace(path="/metrics"))
    try:
        text = endpoint.read().decode("utf-8", "replace")
    except QueryError as exc:
        raise QueryError(f"cannot read the exporter's metrics: {exc}") from None
    url = endpoint.url
    want = {str(k): str(v) for k, v in (labels or {}).items()}
    total: float | None = None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name != name:
                    continue
                if all(sample.labels.get(k) == v for k, v in want.items()):
                    total = (total or 0.0) + float(sample.value)
    except ValueError as exc:
        raise QueryError(f"{url}: not the Prometheus text format: {exc}") from None
    return total
