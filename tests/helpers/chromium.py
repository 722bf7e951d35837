"""A real headless Chromium for tests, driven over the DevTools protocol on a pipe.

``chromium --remote-debugging-pipe`` reads protocol commands from its file descriptor 3 and
writes answers and events to descriptor 4, each message JSON ended by a NUL byte: no port, no
websocket, no client library. One browser per test module; each page is its own target, so the
events of one load (console messages, exceptions, log entries, requests) are kept apart.

What a page records:

- ``console``: ``Runtime.consoleAPICalled`` (every type), ``Runtime.exceptionThrown`` (as
  ``exception``) and ``Log.entryAdded`` (the browser's own messages: a Content-Security-Policy
  violation, a failed load) as ``(level, text)``;
- ``requests``: the URL of every ``Network.requestWillBeSent``, the document's own included.

The browser also runs with a proxy on a closed loopback port and no background networking, so a
request that slipped through would go nowhere; the test sees it in ``requests`` all the same.

Typical use::

    with Chromium(tmp_path) as browser:
        page = browser.page(width=390, height=844, mobile=True)
        page.load(path)
        page.evaluate("document.title")
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.helpers.procs import free_port

COMMAND_TIMEOUT_SECONDS = 30.0


class MissingBinaryError(RuntimeError):
    """Chromium is not installed (scripts/bootstrap.sh installs Debian's ``chromium``)."""


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


def find_chromium() -> str:
    override = os.environ.get("CHROMIUM_BIN")
    path = override or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not os.access(path, os.X_OK):
        raise MissingBinaryError(
            "chromium not found ($CHROMIUM_BIN or PATH): the HTML report tests need a real "
            "browser (Debian: apt-get install --no-install-recommends chromium; "
            "scripts/bootstrap.sh does it with SRE_NEED_CHROMIUM=1)"
        )
    return path


class Chromium:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Chromium:
        binary = find_chromium()
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds() -> None:
            # Duplicate first: one of the pipe ends may already be 3 or 4.
            read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.log_path = self.workdir / "chromium.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--headless",
                    "--no-sandbox",  # tests run as root in CI
                    "--disable-gpu",
                    "--remote-debugging-pipe",
                    f"--user-data-dir={self.workdir / 'profile'}",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    f"--proxy-server=127.0.0.1:{free_port()}",  # nothing listens there
                    "--proxy-bypass-list=<-loopback>",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(3, 4),
                preexec_fn=child_fds,  # noqa: PLW1509  (single-threaded test process)
            )
        os.close(to_browser_r)
        os.close(from_browser_w)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(BrowserError, OSError):
            self.send("Browser.close", timeout=5.0)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.proc = None

    # --- protocol ---------------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from chromium in time (log: {self.log_path})")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError(f"chromium closed the pipe (log: {self.log_path})")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def send(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        session: str | None = None,
        timeout: float = COMMAND_TIMEOUT_SECONDS,
    ) -> dict[str, Any]:
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": dict(params or {})}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == ident:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            if "method" in answer:
                self._events.append(answer)

    def wait_event(self, method: str, session: str, timeout: float) -> dict[str, Any]:
        """The first ``method`` event of ``session`` not yet taken; waits for it if needed."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(i)
            message = self._read_message(deadline)
            if "method" in message:
                self._events.append(message)

    def take_events(self, session: str) -> list[dict[str, Any]]:
        mine = [e for e in self._events if e.get("sessionId") == session]
        self._events = [e for e in self._events if e.get("sessionId") != session]
        return mine

    def page(self, *, width: int, height: int, mobile: bool = False) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, target, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
            session=session,
        )
        # No scrollbar: the page is as wide in a full-page screenshot (which grows the viewport
        # to the page's height) as when its geometry is measured.
        self.send("Emulation.setScrollbarsHidden", {"hidden": True}, session=session)
        return page


class Page:
    def __init__(self, browser: Chromium, target: str, session: str):
        self.browser = browser
        self.target = target
        self.session = session
        self.console: list[tuple[str, str]] = []
        self.requests: list[str] = []

    def _send(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, self.session)

    def load(self, path: Path, *, bypass_csp: bool = False, timeout: float = 20.0) -> None:
        """Open ``path`` and wait for its load event; then collect what happened."""
        self._send("Page.setBypassCSP", {"enabled": bypass_csp})
        self._send("Page.navigate", {"url": path.resolve().as_uri()})
        self.browser.wait_event("Page.loadEventFired", self.session, timeout)
        # A round trip after the load: every event sent before it has arrived.
        self.evaluate("document.readyState")
        self.collect()

    def collect(self) -> None:
        for event in self.browser.take_events(self.session):
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                args = params["args"]
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
                self.console.append((params["type"], text))
            elif method == "Runtime.exceptionThrown":
                self.console.append(("exception", json.dumps(params["exceptionDetails"])))
            elif method == "Log.entryAdded":
                entry = params["entry"]
                self.console.append((entry["level"], f"{entry.get('url', '')} {entry['text']}"))
            elif method == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])

    def errors(self) -> list[tuple[str, str]]:
        return [(lvl, text) for lvl, text in self.console if lvl in ("error", "exception")]

    def evaluate(self, expression: str) -> Any:
        answer = self._send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise BrowserError(f"evaluate failed: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def media(self, media: str) -> None:
        self._send("Emulation.setEmulatedMedia", {"media": media})

    def screenshot(self, clip: Mapping[str, float] | None = None) -> bytes:
        """PNG of the whole page (beyond the viewport), or of ``clip`` (page coordinates)."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        else:
            width, height = self.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        return base64.b64decode(self._send("Page.captureScreenshot", params)["data"])

    def pdf(self) -> bytes:
        answer = self._send("Page.printToPDF", {"printBackground": True, "paperWidth": 8.27})
        return base64.b64decode(answer["data"])

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})


# --- PNG ------------------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels (row by row) of an 8-bit RGB/RGBA, non-interlaced PNG,
    as Chromium writes screenshots. Small clips only: pure Python."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            depth, colour, interlace = body[8], body[9], body[12]
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        pixels.extend(
            (line[x * channels], line[x * channels + 1], line[x * channels + 2])
            for x in range(width)
        )
        prev = line
    return width, height, pixels


def rgb(hex_colour: str) -> tuple[int, int, int]:
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
