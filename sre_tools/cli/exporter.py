"""``sre exporter``: serve GPU health and telemetry to Prometheus.

Binds to loopback unless told otherwise; TLS (``--tls-cert``/``--tls-key``) and HTTP basic auth
(``--basic-auth-file``) for anything wider. SIGTERM and SIGINT stop it cleanly (exit 0).
``--once`` prints one collection's exposition text and exits; ``--alert-rules`` prints the packaged
alert rules. Exit codes: 0 ok, 1 runtime failure, 2 invalid input (a bad flag, policy, recording,
certificate or auth file; a port already in use).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sre_tools.exporter.metric_names import DEFAULT_LISTEN
from sre_tools.health.policy import PROFILES

log = logging.getLogger("sre_tools.exporter")

_path = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    help="HOST:PORT to serve on ([::1]:PORT for IPv6; :PORT for every interface).",
)
@click.option(
    "--interval",
    default="15s",
    show_default=True,
    help="Collection interval (scrapes only read the latest collection).",
)
@click.option("--replay", type=_path, default=None, help="Serve a recording instead of NVML.")
@click.option(
    "--kernel-log",
    type=_path,
    default=None,
    help="Read kernel-log lines from FILE each collection instead of the kernel's log "
    "(with --replay: instead of the recording's).",
)
@click.option("--config", type=_path, default=None, help="Site policy YAML (overrides profile).")
@click.option(
    "--profile",
    default=None,
    help=f"Policy profile: {', '.join(PROFILES)} (default: picked from the node).",
)
@click.option(
    "--state",
    "state_path",
    type=_path,
    default=None,
    help="Counter state file, so rates survive restarts (default: in memory).",
)
@click.option("--tls-cert", type=_path, default=None, help="PEM certificate (needs --tls-key).")
@click.option("--tls-key", type=_path, default=None, help="PEM private key (needs --tls-cert).")
@click.option(
    "--basic-auth-file",
    type=_path,
    default=None,
    help="user:hash lines (bcrypt $2b$... or sha256:HEX); guards /metrics.",
)
@click.option("--once", is_flag=True, help="Collect once, print the metrics, exit.")
@click.option(
    "--alert-rules",
    "print_rules",
    is_flag=True,
    help="Print the packaged Prometheus alert rules and exit.",
)
@click.option(
    "--runbook-base",
    default=None,
    help="With --alert-rules: base URL the runbooks/ links are made absolute against.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def exporter(
    listen: str,
    interval: str,
    replay: Path | None,
    kernel_log: Path | None,
    config: Path | None,
    profile: str | None,
    state_path: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    basic_auth_file: Path | None,
    once: bool,
    print_rules: bool,
    runbook_base: str | None,
    log_level: str,
) -> int:
    """Prometheus exporter for GPU health findings and NVML telemetry."""
    from sre_tools.durations import parse_duration
    from sre_tools.exceptions import ValidationError

    if print_rules:
        from sre_tools.exporter.alerts import rules_text, with_runbook_base

        click.echo(with_runbook_base(rules_text(), runbook_base), nl=False)
        return 0
    if runbook_base is not None:
        raise ValidationError("only with --alert-rules", field="--runbook-base")
    seconds = parse_duration(interval, field="--interval")
    if (tls_cert is None) != (tls_key is None):
        raise ValidationError("--tls-cert and --tls-key go together", field="--tls-cert")
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    loop = _build_loop(replay, config, profile, state_path, seconds, kernel_log)
    if once:
        from prometheus_client.exposition import generate_latest

        from sre_tools.exporter.prometheus_collector import make_registry

        loop.collect_once()
        click.echo(generate_latest(make_registry(loop.snapshot, process=False)).decode(), nl=False)
        return 0
    return _serve(loop, listen, tls_cert, tls_key, basic_auth_file)


def _build_loop(
    replay: Path | None,
    config: Path | None,
    profile: str | None,
    state_path: Path | None,
    interval: float,
    kernel_log: Path | None = None,
) -> Any:
    from sre_tools.exporter.poller import CollectionLoop
    from sre_tools.gpu.backend import RealBackend, RecordedBackend
    from sre_tools.health.policy import load_policy_file
    from sre_tools.health.state import CounterState

    policy = load_policy_file(config, profile)
    state = CounterState(state_path) if state_path else CounterState()
    source = _kernel_log_reader(kernel_log) if kernel_log is not None else None
    if source is not None:
        source()  # an unreadable file is invalid input (exit 2), not a warning every cycle
    if replay is not None:
        backend: Any = RecordedBackend.load(replay)
        recorded_log = backend.data.get("kernel_log")
        lines = [str(x) for x in recorded_log] if isinstance(recorded_log, list) else []
        return CollectionLoop(
            backend,
            policy,
            interval=interval,
            state=state,
            source=f"replay:{replay}",
            host=str(backend.data.get("host") or "replay"),
            # The host's own PCI bus and kernel log must not leak into a recording.
            sysfs=Path("/nonexistent-sysfs"),
            kernel_log_lines=lines,
            kernel_log_source=source,
        )
    return CollectionLoop(
        RealBackend(),
        policy,
        interval=interval,
        state=state,
        kernel_log_source=source,
        systemctl="systemctl",  # a live node's units: the fabric manager on NVSwitch profiles
    )


def _kernel_log_reader(path: Path) -> Callable[[], list[str]]:
    """Lines of ``path``, read again on every call (``--kernel-log``): the same cap as
    ``sre health --kernel-log``, and an unreadable file raises ValidationError."""
    from sre_tools.cli.common import read_input

    def read() -> list[str]:
        return read_input(str(path))[0].splitlines()

    return read


def _serve(
    loop: Any,
    listen: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    basic_auth_file: Path | None,
) -> int:
    import signal
    import threading

    from sre_tools.exporter.auth import BasicAuth
    from sre_tools.exporter.exposition import Exposition
    from sre_tools.exporter.prometheus_collector import make_registry
    from sre_tools.exporter.server import ExporterServer, parse_listen, tls_context

    address = parse_listen(listen)
    tls = tls_context(tls_cert, tls_key) if tls_cert and tls_key else None
    auth = BasicAuth.load(basic_auth_file) if basic_auth_file else None
    if not address.is_loopback and (tls is None or auth is None):
        log.warning(
            "listening on %s without %s: anyone who can reach it can read the metrics",
            address,
            " and ".join(x for x, on in (("TLS", tls), ("basic auth", auth)) if on is None),
        )
    exposition = Exposition(make_registry(loop.snapshot), loop.snapshot)
    loop.listeners.append(exposition.refresh)
    server = ExporterServer(
        exposition,
        address,
        tls=tls,
        auth=auth,
        ready=lambda: loop.snapshot().ready,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    watcher = _start_event_watcher(loop.backend)
    try:
        server.start()
        loop.start()
        log.info(
            "serving %s/metrics (collection every %gs, source %s%s)",
            server.url,
            loop.interval,
            loop.source,
            ", basic auth" if auth else "",
        )
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        loop.stop()
        if watcher is not None:
            watcher.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 0


def _start_event_watcher(backend: Any) -> Any:
    """NVML XID events for the real backend (the XID pipeline's watcher); None for replays."""
    if not hasattr(backend, "push_event"):
        return None
    try:
        from sre_tools.health.xid.events import start_event_watcher
    except ImportError:
        return None
    try:
        return start_event_watcher(backend)
    except Exception:  # no NVML events is a degraded exporter, not a dead one
        log.warning("cannot start the NVML event watcher; XIDs from the kernel log only")
        return None
