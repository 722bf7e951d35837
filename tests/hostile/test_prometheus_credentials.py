"""``--prometheus`` credentials: never printed in any message, never sent to another origin on a
redirect (real loopback HTTP servers: 127.0.0.1 redirects, 127.0.0.2 is the other host)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sre_tools.exceptions import QueryError, ValidationError
from sre_tools.sli.prometheus import PrometheusSource
from sre_tools.webclient import redact_url
from tests.helpers.procs import closed_port
from tests.hostile.conftest import Sre

SECRET = "s3cr3t-pw"
EXAMPLE = str(
    Path(__file__).resolve().parents[2] / "sre_tools/data/examples/slos/gpu-cluster.sloth.yaml"
)
ANSWER = json.dumps(
    {"status": "success", "data": {"resultType": "vector", "result": [{"value": [0, "0.001"]}]}}
).encode()


class Server:
    """A loopback HTTP server that records each request's path and Authorization header and
    either answers like Prometheus or redirects to ``redirect_to``."""

    def __init__(self, host: str):
        self.seen: list[tuple[str, str | None]] = []
        self.redirect_to: str | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.seen.append((self.path, self.headers.get("Authorization")))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if outer.redirect_to and self.path.startswith("/api/"):
                    self.send_response(302)
                    self.send_header("Location", outer.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(ANSWER)))
                self.end_headers()
                self.wfile.write(ANSWER)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    with Server("127.0.0.1") as origin, Server("127.0.0.2") as other:
        yield origin, other


def _with_creds(url: str) -> str:
    return url.replace("http://", f"http://admin:{SECRET}@")


def test_redirect_to_another_host_drops_credentials(servers: tuple[Server, Server]) -> None:
    origin, other = servers
    origin.redirect_to = f"{other.url}/elsewhere"
    PrometheusSource(_with_creds(origin.url), timeout=5).query("up", 0)
    assert origin.seen[0][1] is not None and origin.seen[0][1].startswith("Basic ")
    assert other.seen == [("/elsewhere", None)]


def test_redirect_to_another_port_drops_credentials(servers: tuple[Server, Server]) -> None:
    origin, _other = servers
    with Server("127.0.0.1") as second:
        origin.redirect_to = f"{second.url}/elsewhere"
        PrometheusSource(_with_creds(origin.url), timeout=5).query("up", 0)
        assert second.seen == [("/elsewhere", None)]


def test_redirect_on_the_same_origin_keeps_credentials(servers: tuple[Server, Server]) -> None:
    origin, _other = servers
    origin.redirect_to = f"{origin.url}/prometheus/query"
    PrometheusSource(_with_creds(origin.url), timeout=5).query("up", 0)
    assert [path for path, _ in origin.seen] == ["/api/v1/query", "/prometheus/query"]
    assert origin.seen[0][1] == origin.seen[1][1] is not None


def test_bearer_token_is_not_forwarded_either(
    servers: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    origin, other = servers
    monkeypatch.setenv("SRE_PROMETHEUS_TOKEN", SECRET)
    origin.redirect_to = f"{other.url}/x"
    PrometheusSource(origin.url, timeout=5).query("up", 0)
    assert origin.seen[0][1] == f"Bearer {SECRET}" and other.seen[0][1] is None


BAD_URLS = {
    "no-scheme": f"admin:{SECRET}@prometheus:9090",
    "no-scheme-no-user": f"{SECRET}@prometheus",
    "ftp": f"ftp://admin:{SECRET}@prometheus",
    "port-out-of-range": f"http://admin:{SECRET}@prometheus:99999",
    "port-not-a-number": f"http://admin:{SECRET}@prometheus:http",
    "broken-ipv6": f"http://admin:{SECRET}@[::1",
    "newline": f"http://admin:{SECRET}@prometheus\n:9090",
    "space": f"http://admin:{SECRET}@prom etheus",
    "at-in-password": f"http://admin:{SECRET}@x@prometheus:-1",
    "no-host": f"http://admin:{SECRET}@:9090",
    # A "/", "?" or "#" in the password ends the host part early (urlsplit): the rest was read
    # as the port or the path and printed in the message, or even requested.
    "slash-in-password": f"http://admin:{SECRET}/x@prometheus:9090",
    "slash-after-a-numeric-password": f"http://admin:12/{SECRET}@prometheus",
    "hash-in-password": f"http://admin:{SECRET}#x@prometheus:9090",
    "question-mark-in-password": f"http://admin:{SECRET}?x@prometheus:9090",
    # A token in the query string would be printed in every message.
    "token-in-query": f"http://prometheus:9090/?token={SECRET}",
    "token-in-fragment": f"http://prometheus:9090/#{SECRET}",
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_bad_url_is_an_input_error_without_the_password(sre: Sre, url: str) -> None:
    with pytest.raises(ValidationError) as info:
        PrometheusSource(url)
    assert SECRET not in str(info.value) and info.value.field == "--prometheus"
    code, out, err = sre("slo", "report", EXAMPLE, "--prometheus", url)
    assert code == 2 and SECRET not in out + err, err
    assert (
        err.startswith("sre: error: --prometheus: invalid Prometheus URL") and err.count("\n") == 1
    )


def test_percent_encoded_password_is_sent_decoded(servers: tuple[Server, Server]) -> None:
    """The way to put "/", "?", "#" or "@" in a password: percent-encoded in the URL."""
    origin, _ = servers
    host = origin.url.removeprefix("http://")
    PrometheusSource(f"http://ad%40min:a%2Fb%3Fc%23d@{host}", timeout=5).query("up", 0)
    creds = base64.b64encode(b"ad@min:a/b?c#d").decode()
    assert origin.seen[0][1] == f"Basic {creds}"


def test_unreachable_prometheus_is_a_runtime_error_without_the_password(sre: Sre) -> None:
    with closed_port() as port:
        url = f"http://admin:{SECRET}@127.0.0.1:{port}"
        with pytest.raises(QueryError) as info:
            PrometheusSource(url, timeout=5).query("up", 0)
        assert SECRET not in str(info.value)
        code, out, err = sre("slo", "report", EXAMPLE, "--prometheus", url, "--timeout", "5")
    assert code == 1 and SECRET not in out + err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"http://a:{SECRET}@h:9090/p", "http://***@h:9090/p"),
        (f"a:{SECRET}@h", "***@h"),
        (f"https://a:{SECRET}@x@h", "https://***@h"),
        ("http://h:9090", "http://h:9090"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --- the drills' exporter probe reads /metrics through the same client -----------------------


def test_exporter_probe_sends_url_credentials_and_never_prints_them(
    servers: tuple[Server, Server],
) -> None:
    from sre_tools.chaos.probes import exporter_metric

    origin, other = servers
    # The server answers JSON, not the text format: the probe reads it (with the credentials)
    # and then refuses it, naming the URL without them.
    with pytest.raises(QueryError) as info:
        exporter_metric(_with_creds(origin.url), "gpu_xid_events_total", timeout=5)
    assert origin.seen[0][0] == "/metrics"
    assert origin.seen[0][1] == "Basic " + base64.b64encode(f"admin:{SECRET}".encode()).decode()
    assert "not the Prometheus text format" in str(info.value) and SECRET not in str(info.value)
    # A redirect to another host loses the credentials, as for --prometheus.
    origin.redirect_to = f"{other.url}/metrics"
    origin.seen.clear()
    with pytest.raises(QueryError):
        exporter_metric(_with_creds(origin.url) + "/api/metrics", "x", timeout=5)
    assert other.seen == [("/metrics", None)]


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_exporter_probe_bad_url_is_an_input_error_without_the_password(url: str) -> None:
    from sre_tools.chaos.probes import exporter_metric

    with pytest.raises(ValidationError) as info:
        exporter_metric(url, "x")
    assert SECRET not in str(info.value) and info.value.field == "url"


def test_exporter_probe_unreachable_without_the_password() -> None:
    from sre_tools.chaos.probes import exporter_metric

    with closed_port() as port, pytest.raises(QueryError) as info:
        exporter_metric(f"http://admin:{SECRET}@127.0.0.1:{port}/metrics", "x", timeout=5)
    assert "cannot read the exporter's metrics" in str(info.value)
    assert SECRET not in str(info.value)
