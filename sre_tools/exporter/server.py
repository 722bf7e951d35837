"""The exporter's HTTP(S) server: ``/metrics``, ``/-/healthy``, ``/-/ready``.

prometheus-client's ``start_http_server`` does TLS but not basic auth, so this is a small
``http.server`` around :class:`~sre_tools.exporter.exposition.Exposition` (content negotiation:
Prometheus text or OpenMetrics, gzip when asked; pre-rendered once per collection).

- Basic auth, when configured, guards ``/metrics`` and ``/``; the probes ``/-/healthy`` and
  ``/-/ready`` stay open (they reveal nothing and load balancers rarely send credentials).
- TLS: the handshake runs in the request's own thread (never in the accept loop) under the
  request timeout, so a client that stalls cannot block other scrapes.
- Requests are logged at DEBUG without headers: credentials never reach a log.
"""

from __future__ import annotations

import base64
import binascii
import html
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.registry import CollectorRegistry

from sre_tools.exceptions import ValidationError
from sre_tools.exporter.auth import BasicAuth
from sre_tools.exporter.exposition import Exposition

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
REALM = "sre exporter"


@dataclass(frozen=True)
class ListenAddress:
    host: str  # "" = every interface
    port: int

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen(text: str, *, field: str = "--listen") -> ListenAddress:
    """``127.0.0.1:9835``, ``[::1]:9835``, ``localhost:9835``, ``:9835`` (every interface)."""
    raw = text.strip()
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValidationError(f"invalid address {text!r} (use [IPv6]:PORT)", field=field)
        port_text = rest[1:]
    else:
        host, sep, port_text = raw.rpartition(":")
        if not sep:
            raise ValidationError(f"invalid address {text!r} (use HOST:PORT)", field=field)
        if ":" in host:
            raise ValidationError(
                f"invalid address {text!r} (write IPv6 hosts in brackets: [::1]:9835)", field=field
            )
    if host == "0.0.0.0":  # noqa: S104  (spelled out by the operator)
        host = ""
    try:
        port = int(port_text)
    except ValueError:
        raise ValidationError(f"invalid port in {text!r}", field=field) from None
    if not 0 <= port <= 65535:
        raise ValidationError(f"port {port} out of range", field=field)
    return ListenAddress(host, port)


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context (TLS 1.2+) from PEM files; errors name the file, never its content."""
    for path, option in ((cert, "--tls-cert"), (key, "--tls-key")):
        if not path.is_file():
            raise ValidationError("no such file", source=str(path), field=option)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise ValidationError(
            f"cannot load certificate/key ({reason})", source=f"{cert}, {key}"
        ) from None
    return ctx


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Connections waiting to be accepted. socketserver's default of 5 makes the kernel drop the
    # SYNs of a burst of scrapers (50 Prometheus replicas, a federation fan-out), which then wait
    # for a SYN retransmit: one second, then three.
    request_queue_size = 512
    exposition: Exposition
    auth: BasicAuth | None
    ready: Callable[[], bool]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up or fails the TLS handshake: not worth a traceback on stderr.
        log.debug("request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT_SECONDS
    # Headers and body go out in two writes: without TCP_NODELAY a small (gzipped) body waits
    # for the client's delayed ACK, 40 ms on Linux.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "sre-exporter"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(
        self,
        code: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorized(self) -> bool:
        auth = self.server.auth
        if auth is None:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not value:
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        return bool(sep) and auth.verify(user, password)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/-/healthy":
            self._send(200, b"OK\n")
            return
        if path == "/-/ready":
            ready = self.server.ready()
            self._send(200 if ready else 503, b"ready\n" if ready else b"no collection yet\n")
            return
        if path not in ("/metrics", "/"):
            self._send(404, b"not found\n")
            return
        if not self._authorized():
            self._send(
                401,
                b"unauthorized\n",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )
            return
        if path == "/":
            page = (
                f"<html><head><title>{html.escape(REALM)}</title></head><body>"
                '<h1>sre exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>\n'
            )
            self._send(200, page.encode(), "text/html; charset=utf-8")
            return
        try:
            body = self.server.exposition.render(
                self.headers.get("Accept", ""), self.headers.get("Accept-Encoding", "")
            )
        except Exception:
            log.exception("cannot render metrics")
            self._send(500, b"cannot render metrics\n")
            return
        headers = {"Content-Encoding": "gzip"} if body.gzipped else {}
        self._send(200, body.content, body.content_type, headers)

    def do_HEAD(self) -> None:
        self.do_GET()


class ExporterServer:
    """Serves an exposition (or a plain registry) on ``address`` in a background thread."""

    def __init__(
        self,
        exposition: Exposition | CollectorRegistry,
        address: ListenAddress,
        *,
        tls: ssl.SSLContext | None = None,
        auth: BasicAuth | None = None,
        ready: Callable[[], bool] = lambda: True,
    ):
        server_cls = type("_BoundServer", (_Server,), {"address_family": address.family})
        try:
            self._server: _Server = server_cls((address.host, address.port), _Handler)
        except OSError as exc:
            raise ValidationError(
                f"cannot listen on {address}: {exc.strerror or exc}", field="--listen"
            ) from None
        if isinstance(exposition, CollectorRegistry):
            exposition = Exposition(exposition)
        self._server.exposition = exposition
        self._server.auth = auth
        self._server.ready = ready
        if tls is not None:
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.tls = tls is not None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> ExporterServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.25},
            name="sre-exporter-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> ExporterServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
