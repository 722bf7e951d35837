"""SLI source over the Prometheus HTTP API (also Thanos Query and Mimir, which speak the same API).

Each window is one instant query of the SLO's error-ratio expression at the report time. The
expressions are the ones the generated rules record, so a report and the alerts agree.
"""

from __future__ import annotations

import base64
import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from sre_tools.exceptions import QueryError, ValidationError
from sre_tools.slo.model import SLO
from sre_tools.slo.promql import window_ratio

DEFAULT_TIMEOUT_SECONDS = 30.0


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
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise ValidationError(
                f"invalid Prometheus URL {base_url!r} (expected http(s)://host:port)",
                field="--prometheus",
            )
        self._auth: str | None = None
        if parsed.username is not None:
            # Credentials in the URL become a basic-auth header; they are never printed.
            user = urllib.parse.unquote(parsed.username)
            creds = f"{user}:{urllib.parse.unquote(parsed.password or '')}"
            self._auth = "Basic " + base64.b64encode(creds.encode()).decode()
            netloc = parsed.hostname or ""
            if parsed.port:
                netloc += f":{parsed.port}"
            parsed = parsed._replace(netloc=netloc)
        token = bearer_token or os.environ.get("SRE_PROMETHEUS_TOKEN")
        if token:
            self._auth = f"Bearer {token}"
        self.base_url = urllib.parse.urlunsplit(parsed).rstrip("/")
        self.timeout = timeout
        self._open = opener or urllib.request.urlopen

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
            request.add_header("Authorization", self._auth)
        try:
            with self._open(request, timeout=self.timeout) as resp:
                payload = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            raise QueryError(f"{self.base_url}: HTTP {exc.code}: {detail}") from None
        except TimeoutError:
            raise QueryError(f"{self.base_url}: query timed out after {self.timeout:g}s") from None
        except urllib.error.URLError as exc:
            raise QueryError(f"{self.base_url}: cannot reach Prometheus: {exc.reason}") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise QueryError(f"{self.base_url}: answer is not JSON") from None
        if not isinstance(payload, dict) or payload.get("status") != "success":
            raise QueryError(
                f"{self.base_url}: query failed: {payload.get('error', payload)!r:.200}"
            )
        data = payload.get("data") or {}
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
