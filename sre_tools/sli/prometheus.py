"""SLI source over the Prometheus HTTP API (also Thanos Query and Mimir, which speak the same API).

Each window is one instant query of the SLO's error-ratio expression at the report time. The
expressions are the ones the generated rules record, so a report and the alerts agree.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from sre_tools.exceptions import QueryError, ValidationError
from sre_tools.inputs import load_json
from sre_tools.slo.model import SLO
from sre_tools.slo.promql import window_ratio

DEFAULT_TIMEOUT_SECONDS = 30.0

# Everything up to the last "@" before the host: the userinfo, with or without a scheme.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)?.*@", re.DOTALL)
_UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f]")


def redact_url(url: str) -> str:
    """``url`` with any userinfo replaced by ``***``, for messages (``http://***@host:9090``)."""
    return _USERINFO.sub(lambda m: f"{m.group(1) or ''}***@", url)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


class _SameOriginAuthRedirect(urllib.request.HTTPRedirectHandler):
    """Follows redirects; sends the credentials again only to the same scheme, host and port.

    The header is added as "unredirected", so urllib itself never copies it to the new request.
    """

    def __init__(self, auth: str | None):
        super().__init__()
        self.auth = auth

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and self.auth and _origin(newurl) == _origin(req.full_url):
            new.add_unredirected_header("Authorization", self.auth)
        return new


class PrometheusSource:
    """Instant queries against ``base_url`` (``http://127.0.0.1:9090``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        bearer_token: str | None = None,
        opener: Any = None,
    ):
        # A message shows the URL without its userinfo: the password in it is never printed.
        shown = redact_url(base_url)
        try:
            parsed = urllib.parse.urlsplit(base_url)
            host, port = parsed.hostname, parsed.port  # port: ValueError when out of range
        except ValueError as exc:
            raise ValidationError(
                f"invalid Prometheus URL {shown!r}: {exc}", field="--prometheus"
            ) from None
        if parsed.scheme not in {"http", "https"} or not host or _UNSAFE_URL_CHARS.search(base_url):
            raise ValidationError(
                f"invalid Prometheus URL {shown!r} (expected http(s)://host:port)",
                field="--prometheus",
            )
        self._auth: str | None = None
        if parsed.username is not None:
            # Credentials in the URL become a basic-auth header; they are never printed.
            user = urllib.parse.unquote(parsed.username)
            creds = f"{user}:{urllib.parse.unquote(parsed.password or '')}"
            self._auth = "Basic " + base64.b64encode(creds.encode()).decode()
            netloc = f"[{host}]" if ":" in host else host
            if port:
                netloc += f":{port}"
            parsed = parsed._replace(netloc=netloc)
        token = bearer_token or os.environ.get("SRE_PROMETHEUS_TOKEN")
        if token:
            self._auth = f"Bearer {token}"
        self.base_url = urllib.parse.urlunsplit(parsed).rstrip("/")
        self.timeout = timeout
        self._open = opener or urllib.request.build_opener(_SameOriginAuthRedirect(self._auth)).open

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        """Run an instant query; return the vector result (list of samples)."""
        body = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"}).encode()
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            f"{self.base_url}/api/v1/query",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        if self._auth:
            request.add_unredirected_header("Authorization", self._auth)
        try:
            with self._open(request, timeout=self.timeout) as resp:
                payload = load_json(resp.read().decode("utf-8"), self.base_url)
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            raise QueryError(f"{self.base_url}: HTTP {exc.code}: {detail}") from None
        except TimeoutError:
            raise QueryError(f"{self.base_url}: query timed out after {self.timeout:g}s") from None
        except urllib.error.URLError as exc:
            raise QueryError(f"{self.base_url}: cannot reach Prometheus: {exc.reason}") from None
        except (ValidationError, UnicodeDecodeError):
            raise QueryError(f"{self.base_url}: answer is not JSON") from None
        except (OSError, http.client.HTTPException) as exc:  # a connection cut mid-answer
            raise QueryError(f"{self.base_url}: reading the answer failed: {exc!r:.200}") from None
        if not isinstance(payload, dict) or payload.get("status") != "success":
            detail = payload.get("error", payload) if isinstance(payload, dict) else payload
            raise QueryError(f"{self.base_url}: query failed: {detail!r:.200}")
        data = payload.get("data")
        if not isinstance(data, dict):
            raise QueryError(f"{self.base_url}: malformed answer")
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data.get("result")}]
        if data.get("resultType") != "vector":
            raise QueryError(f"{self.base_url}: expected a vector, got {data.get('resultType')!r}")
        result = data.get("result")
        if not isinstance(result, list):
            raise QueryError(f"{self.base_url}: malformed answer")
        return result

    def error_ratios(
        self, slo: SLO, windows: Sequence[float], at: float
    ) -> dict[float, float | None]:
        out: dict[float, float | None] = {}
        for window in windows:
            result = self.query(window_ratio(slo, window, recorded=False), at)
            if not result:
                out[window] = None
                continue
            if len(result) > 1:
                raise QueryError(
                    f"SLO {slo.id}: the SLI query returned {len(result)} series; "
                    "it must aggregate to one (wrap it in sum(...))"
                )
            try:
                value = float(result[0]["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                raise QueryError(f"SLO {slo.id}: malformed sample {result[0]!r:.200}") from None
            out[window] = None if not math.isfinite(value) else max(0.0, min(1.0, value))
        return out


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        payload = json.loads(exc.read().decode("utf-8"))
        return str(payload.get("error", exc.reason))[:300]
    except (ValueError, UnicodeDecodeError, OSError):
        return str(exc.reason)
