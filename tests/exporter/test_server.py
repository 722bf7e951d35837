"""The HTTP(S) server on 127.0.0.1: endpoints, basic auth, TLS, content negotiation."""

from __future__ import annotations

import base64
import gzip
import hashlib
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.exporter.auth import BasicAuth
from sre_tools.exporter.poller import CollectionLoop
from sre_tools.exporter.prometheus_collector import make_registry
from sre_tools.exporter.server import ExporterServer, ListenAddress, parse_listen, tls_context
from tests.exporter.conftest import HEALTHY, CountingBackend, make_loop

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
TOKEN = "s3cret-token-with-enough-entropy"  # a test credential
SHA_LINE = f"prometheus:sha256:{hashlib.sha256(TOKEN.encode()).hexdigest()}"


def get(
    url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    opener = NO_PROXY
    if context is not None:
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
    try:
        with opener.open(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def loop() -> CollectionLoop:
    return make_loop(CountingBackend.from_file(HEALTHY))


def serve(loop: CollectionLoop, **kwargs: object) -> ExporterServer:
    return ExporterServer(
        make_registry(loop.snapshot),
        ListenAddress("127.0.0.1", 0),
        ready=lambda: loop.snapshot().ready,
        **kwargs,  # type: ignore[arg-type]
    ).start()


@pytest.fixture
def plain(loop: CollectionLoop) -> Iterator[ExporterServer]:
    server = serve(loop)
    yield server
    server.stop()


# --- endpoints ----------------------------------------------------------------------------------


def test_endpoints_and_readiness(loop: CollectionLoop, plain: ExporterServer) -> None:
    assert plain.url.startswith("http://127.0.0.1:")
    assert get(f"{plain.url}/-/healthy")[0] == 200
    assert get(f"{plain.url}/-/ready")[0] == 503  # no collection yet
    status, headers, body = get(f"{plain.url}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"gpu_exporter_collections_total 0.0" in body
    loop.collect_once()
    assert get(f"{plain.url}/-/ready")[0] == 200
    body = get(f"{plain.url}/metrics")[2]
    assert b'gpu_temperature_celsius{gpu="0"' in body
    assert b"process_cpu_seconds_total" in body  # the exporter's own process metrics
    assert get(f"{plain.url}/nope")[0] == 404
    assert get(f"{plain.url}/")[0] == 200


def test_openmetrics_and_gzip_are_negotiated(loop: CollectionLoop, plain: ExporterServer) -> None:
    loop.collect_once()
    status, headers, body = get(
        f"{plain.url}/metrics",
        headers={
            "Accept": "application/openmetrics-text; version=1.0.0",
            "Accept-Encoding": "gzip",
        },
    )
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = gzip.decompress(body).decode()
    assert text.rstrip().endswith("# EOF")
    assert "# TYPE gpu_xid_events counter" in text or "gpu_ecc_errors_total{" in text


# --- basic auth ---------------------------------------------------------------------------------


def test_basic_auth_is_required_when_configured(loop: CollectionLoop) -> None:
    server = serve(loop, auth=BasicAuth.from_text(SHA_LINE))
    try:
        status, headers, _ = get(f"{server.url}/metrics")
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Basic realm=")
        assert get(f"{server.url}/metrics", user="prometheus", password="wrong")[0] == 401
        assert get(f"{server.url}/metrics", user="nobody", password=TOKEN)[0] == 401
        assert get(f"{server.url}/metrics", user="prometheus", password=TOKEN)[0] == 200
        assert get(f"{server.url}/", user="prometheus", password="wrong")[0] == 401
        # Probes stay open for load balancers and kubelets.
        assert get(f"{server.url}/-/healthy")[0] == 200
        bad = {"Authorization": "Basic !!!not-base64"}
        assert get(f"{server.url}/metrics", headers=bad)[0] == 401
    finally:
        server.stop()


def _bcrypt_hash(password: str) -> str | None:
    try:
        import bcrypt  # type: ignore[import-not-found]

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode())
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
    except ImportError:
        return None
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    return hashed if hashed and hashed.startswith("$2") else None


def test_bcrypt_hashes_verify_and_successes_are_cached() -> None:
    hashed = _bcrypt_hash(TOKEN)
    if hashed is None:
        pytest.skip("neither the bcrypt package nor a bcrypt crypt(3) here")
    auth = BasicAuth.from_text(f"# scrape user\n\nprometheus:{hashed}\n")
    assert auth.users == ["prometheus"]
    assert auth.verify("prometheus", TOKEN)
    assert auth.verify("prometheus", TOKEN)  # from the cache
    assert not auth.verify("prometheus", TOKEN + "x")
    assert not auth.verify("other", TOKEN)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no users defined"),
        ("# only a comment\n", "no users defined"),
        ("prometheus\n", "line 1: expected user:hash"),
        ("prometheus:hunter2\n", "line 1: unsupported hash for user 'prometheus'"),
        (f"{SHA_LINE}\n{SHA_LINE}\n", "line 2: user 'prometheus' defined twice"),
        ("a:sha256:abc\n", "line 1: unsupported hash"),
    ],
    ids=["empty", "comment-only", "no-colon", "plaintext", "duplicate", "short-digest"],
)
def test_auth_file_errors_name_the_line_and_never_the_secret(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        BasicAuth.from_text(text, "auth.txt")
    assert message in str(err.value)
    assert "hunter2" not in str(err.value)


def test_credentials_never_print_their_hash() -> None:
    auth = BasicAuth.from_text(SHA_LINE)
    assert hashlib.sha256(TOKEN.encode()).hexdigest() not in repr(auth._users)


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with openssl (no cryptography package)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed (apt-get install openssl)")
    out = tmp_path_factory.mktemp("tls")
    cert, key = out / "cert.pem", out / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def test_tls_serves_metrics_to_a_verifying_client(
    loop: CollectionLoop, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    loop.collect_once()
    server = serve(loop, tls=tls_context(cert, key), auth=BasicAuth.from_text(SHA_LINE))
    try:
        assert server.url.startswith("https://127.0.0.1:")
        client = ssl.create_default_context(cafile=str(cert))
        status, _, body = get(
            f"{server.url}/metrics", user="prometheus", password=TOKEN, context=client
        )
        assert status == 200
        assert b"gpu_up{" in body
        assert get(f"{server.url}/metrics", context=client)[0] == 401
        # A client that does not trust the certificate is refused by its own TLS stack.
        with pytest.raises(urllib.error.URLError):
            get(f"{server.url}/metrics", context=ssl.create_default_context())
        # Plain HTTP to the TLS port gets no metrics.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.stop()


def test_a_stalled_tls_client_does_not_block_other_scrapes(
    loop: CollectionLoop, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server = serve(loop, tls=tls_context(cert, key))
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        started = time.monotonic()
        client = ssl.create_default_context(cafile=str(cert))
        assert get(f"{server.url}/-/healthy", context=client)[0] == 200
        assert time.monotonic() - started < 2
    finally:
        stalled.close()
        server.stop()


def test_tls_files_are_checked_with_the_option_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="--tls-cert"):
        tls_context(tmp_path / "missing.pem", tmp_path / "key.pem")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValidationError, match="cannot load certificate"):
        tls_context(bad, bad)


# --- listen addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("127.0.0.1:9835", "127.0.0.1", 9835, True),
        ("localhost:9835", "localhost", 9835, True),
        ("[::1]:9835", "::1", 9835, True),
        (":9835", "", 9835, False),
        ("0.0.0.0:9835", "", 9835, False),
        ("10.1.2.3:0", "10.1.2.3", 0, False),
    ],
)
def test_listen_addresses(text: str, host: str, port: int, loopback: bool) -> None:
    address = parse_listen(text)
    assert (address.host, address.port, address.is_loopback) == (host, port, loopback)


@pytest.mark.parametrize("text", ["9835", "127.0.0.1:http", "::1:9835", "[::1]9835", "h:70000"])
def test_bad_listen_addresses_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError, match="--listen"):
        parse_listen(text)


def test_port_in_use_is_a_clear_error(loop: CollectionLoop, plain: ExporterServer) -> None:
    with pytest.raises(ValidationError, match=r"cannot listen on 127\.0\.0\.1"):
        ExporterServer(make_registry(loop.snapshot), ListenAddress("127.0.0.1", plain.port))
