"""SLI source over the Prometheus HTTP API (also Thanos Query and Mimir, which speak the same API).

Each window is one instant query of the SLO's error-ratio expression at the report time. The
expressions are the ones the generated rules record, so a report and the alerts agree.
"""

from __future__ import annotations

import json
import math
import os
import urllib.parse
from collections.abc import Sequence
from typing import Any

from sre_tools.exceptions import QueryError, ValidationError
from sre_tools.inputs import load_json
from sre_tools.slo.model import SLO
from sre_tools.slo.promql import window_ratio
from sre_tools.webclient import Endpoint, HttpStatusError

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
        # Credentials in the URL become a basic-auth header; a message never shows them.
        token = bearer_token or os.environ.get("SRE_PROMETHEUS_TOKEN") or None
        self._endpoint = Endpoint(
            base_url,
            field="--prometheus",
            what="Prometheus",
            timeout=timeout,
            bearer_token=token,
            opener=opener,
        )
        self.base_url = self._endpoint.url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        """Run an instant query; return the vector result (list of samples)."""
        body = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"}).encode()
        try:
            raw = self._endpoint.read(
                f"{self.base_url}/api/v1/query",
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        except HttpStatusError as exc:
            raise QueryError(f"{exc}: {_error_detail(exc)}") from None
        try:
            payload = load_json(raw.decode("utf-8"), self.base_url)
        except (ValidationError, UnicodeDecodeError):
            raise QueryError(f"{self.base_url}: answer is not JSON") from None
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


def _error_detail(exc: HttpStatusError) -> str:
    try:
        payload = json.loads(exc.body.decode("utf-8"))
        return str(payload.get("error", exc.reason))[:300]
    except (ValueError, UnicodeDecodeError, AttributeError):
        return exc.reason
