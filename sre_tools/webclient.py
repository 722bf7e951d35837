"""HTTP(S) reads of our monitoring endpoints (Prometheus' API, an exporter's ``/metrics``).

One place decides how a URL typed by a user is handled, so every reader behaves alike:

- only ``http`` and ``https`` URLs with a host are accepted (no ``file:``, no control characters);
- credentials in the URL (``http://user:pass@host``) become a basic-auth header and are never
  printed: every message shows the URL with its userinfo replaced by ``***``;
- on a redirect the credentials are sent again only to the same scheme, host and port;
- every request has a timeout, and an answer is read up to a size cap;
- every failure is a :class:`QueryError` (or :class:`ValidationError` for the URL itself) of one
  line that names the endpoint.
"""

from __future__ import annotations

import base64
import http.client
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from sre_tools.exceptions import QueryError, ValidationError

DEFAULT_MAX_BYTES = 64 << 20

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


class Endpoint:
    """``base_url`` checked, with its credentials taken out into an ``Authorization`` header.

    ``field`` names the option or field the URL came from (for :class:`ValidationError`);
    ``what`` names the service in messages ("Prometheus", "the exporter"). A bearer token, when
    given, replaces the URL's credentials.
    """

    def __init__(
        self,
        base_url: str,
        *,
        field: str,
        what: str,
        timeout: float,
        bearer_token: str | None = None,
        opener: Any = None,
    ):
        self.what = what
        self.timeout = timeout
        shown = redact_url(base_url)
        if _UNSAFE_URL_CHARS.search(base_url):
            raise ValidationError(
                f"invalid {what} URL {shown!r} (expected http(s)://host:port)", field=field
            )
        try:
            parsed = urllib.parse.urlsplit(base_url)
            host = parsed.hostname
        except ValueError:
            raise ValidationError(f"invalid {what} URL {shown!r}", field=field) from None
        if parsed.scheme not in {"http", "https"} or not base_url[len(parsed.scheme) :].startswith(
            "://"
        ):
            raise ValidationError(
                f"invalid {what} URL {shown!r} (expected http(s)://host:port)", field=field
            )
        if "@" in base_url and "@" not in parsed.netloc:
            # A password holding "/", "?" or "#" ends the host part early: the rest of it would
            # be read as the host, port or path, and printed. Never parse further.
            raise ValidationError(
                f"invalid {what} URL {shown!r}: '/', '?', '#' and '@' in a user name or password "
                "must be percent-encoded (%2F, %3F, %23, %40)",
                field=field,
            )
        if parsed.query or parsed.fragment:
            # A base URL takes no query (a token there would be printed in every message, and
            # paths are appended to the base): credentials go in user:password@ or a token option.
            bare = redact_url(urllib.parse.urlunsplit(parsed._replace(query="", fragment="")))
            raise ValidationError(
                f"invalid {what} URL '{bare}?***': a base URL takes no query or fragment "
                "(credentials: http(s)://user:password@host:port)",
                field=field,
            )
        try:
            port = parsed.port  # ValueError when not a number or out of range
        except ValueError:
            raise ValidationError(
                f"invalid {what} URL {shown!r}: the port is not a number from 0 to 65535",
                field=field,
            ) from None
        if not host:
            raise ValidationError(
                f"invalid {what} URL {shown!r} (expected http(s)://host:port)", field=field
            )
        self.auth: str | None = None
        if parsed.username is not None:
            user = urllib.parse.unquote(parsed.username)
            creds = f"{user}:{urllib.parse.unquote(parsed.password or '')}"
            self.auth = "Basic " + base64.b64encode(creds.encode()).decode()
            netloc = f"[{host}]" if ":" in host else host
            if port:
                netloc += f":{port}"
            parsed = parsed._replace(netloc=netloc)
        if bearer_token:
            self.auth = f"Bearer {bearer_token}"
        #: The URL without credentials: what every message shows.
        self.url = urllib.parse.urlunsplit(parsed)
        self._open = opener or urllib.request.build_opener(_SameOriginAuthRedirect(self.auth)).open

    def read(
        self,
        url: str | None = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> bytes:
        """The body of a GET (or a POST with ``data``) of ``url`` (default: the endpoint's own
        URL), read up to ``max_bytes``. An HTTP error status raises :class:`HttpStatusError`.
        Messages name the endpoint's URL (without credentials), not the path asked for."""
        target = url or self.url
        shown = self.url.rstrip("/")
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            target, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
        )
        if self.auth:
            request.add_unredirected_header("Authorization", self.auth)
        try:
            with self._open(request, timeout=self.timeout) as resp:
                body: bytes = resp.read(max_bytes + 1)
        except urllib.error.HTTPError as exc:
            raise HttpStatusError(exc, shown) from None
        except TimeoutError:
            raise QueryError(f"{shown}: no answer within {self.timeout:g}s") from None
        except urllib.error.URLError as exc:
            raise QueryError(f"{shown}: cannot reach {self.what}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:  # a connection cut mid-answer
            raise QueryError(f"{shown}: reading the answer failed: {exc!r:.200}") from None
        if len(body) > max_bytes:
            raise QueryError(f"{shown}: the answer is larger than {max_bytes} bytes")
        return body


class HttpStatusError(QueryError):
    """An HTTP error status; ``body`` holds the start of the answer for the caller's message."""

    def __init__(self, exc: urllib.error.HTTPError, url: str):
        self.code = exc.code
        self.reason = str(exc.reason)
        try:
            self.body = exc.read(64 << 10)
        except OSError:
            self.body = b""
        super().__init__(f"{url}: HTTP {exc.code}")
