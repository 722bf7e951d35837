"""Node-side commands (argv only: never run here) and notifications."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.health.model import Action
from sre_tools.remediation.actions import (
    LogNotifier,
    NodeActions,
    WebhookNotifier,
    action_argvs,
    gpu_reset_argv,
)
from sre_tools.remediation.errors import ActionError, NotifyError
from tests.remediation.fakes import RecordingRunner


@pytest.mark.parametrize(
    ("action", "gpus", "argvs"),
    [
        (
            Action.RESET_GPU,
            [3, 1, 3],
            [["nvidia-smi", "--gpu-reset", "-i", "1"], ["nvidia-smi", "--gpu-reset", "-i", "3"]],
        ),
        (Action.DRAIN_AND_RESET, [0], [["nvidia-smi", "--gpu-reset", "-i", "0"]]),
        (Action.RESET_GPU, [], []),
        (Action.REBOOT, [2], [["systemctl", "reboot"]]),
        (
            Action.RESTART_FABRIC_MANAGER,
            [],
            [["systemctl", "restart", "nvidia-fabricmanager"]],
        ),
        (Action.POWER_CYCLE, [0], []),
        (Action.RMA_CANDIDATE, [0], []),
        (Action.NONE, [], []),
    ],
    ids=lambda v: v.value if isinstance(v, Action) else None,
)
def test_action_argvs(action: Action, gpus: list[int], argvs: list[list[str]]) -> None:
    assert action_argvs(action, gpus) == argvs


@pytest.mark.parametrize("bad", [-1, 1024, True, "0"])
def test_gpu_reset_argv_refuses_bad_indices(bad: Any) -> None:
    with pytest.raises(ValueError):
        gpu_reset_argv(bad)


def test_node_actions_run_through_the_runner() -> None:
    runner = RecordingRunner()
    done = NodeActions(runner, timeout=7).run("gpu01", Action.RESET_GPU, [0, 5])
    assert done == [
        ["nvidia-smi", "--gpu-reset", "-i", "0"],
        ["nvidia-smi", "--gpu-reset", "-i", "5"],
    ]
    assert runner.calls == [tuple(a) for a in done]


def test_node_action_failure_stops_and_raises() -> None:
    runner = RecordingRunner(fail={"nvidia-smi": 3})
    with pytest.raises(ActionError, match="exited 3"):
        NodeActions(runner).run("gpu01", Action.RESET_GPU, [0, 1])
    assert len(runner.calls) == 1


def test_ssh_failure_is_an_action_failure() -> None:
    from sre_tools.remediation.runner import SshRunner

    base = RecordingRunner(fail={"ssh": 255})
    with pytest.raises(ActionError, match="ssh to gpu01 failed"):
        NodeActions(SshRunner("gpu01", base=base)).run("gpu01", Action.REBOOT, [])


# --- notifications -------------------------------------------------------------------------------


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status: ClassVar[int] = 204
    delay: ClassVar[float] = 0.0

    def do_POST(self) -> None:
        time.sleep(type(self).delay)
        length = int(self.headers.get("Content-Length", 0))
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "status": 204, "delay": 0.0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_webhook_posts_json(hook: tuple[str, type[_Hook]], monkeypatch: pytest.MonkeyPatch) -> None:
    _no_proxy(monkeypatch)
    url, handler = hook
    WebhookNotifier(url, timeout=5)({"node": "gpu01", "action": "rma_candidate"})
    assert handler.received == [{"node": "gpu01", "action": "rma_candidate"}]


def test_webhook_errors(hook: tuple[str, type[_Hook]], monkeypatch: pytest.MonkeyPatch) -> None:
    _no_proxy(monkeypatch)
    url, handler = hook
    handler.status = 500
    with pytest.raises(NotifyError, match="HTTP 500"):
        WebhookNotifier(url, timeout=5)({"x": 1})
    handler.status, handler.delay = 204, 1.0
    start = time.monotonic()
    with pytest.raises(NotifyError):
        WebhookNotifier(url, timeout=0.3)({"x": 1})
    assert time.monotonic() - start < 0.9


def test_webhook_url_validation() -> None:
    for bad in ("file:///etc/passwd", "ftp://x", "http://", "http://a b", "gopher://x"):
        with pytest.raises(ValidationError):
            WebhookNotifier(bad)


def test_log_notifier(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="sre_tools.remediation"):
        LogNotifier()({"node": "gpu01"})
    assert "needs a person" in caplog.text and "gpu01" in caplog.text
