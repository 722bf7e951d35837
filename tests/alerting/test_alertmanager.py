"""The example Alertmanager configuration with the real ``prometheus-alertmanager`` and amtool.

amtool checks the file and walks its routing tree for each severity; then a real Prometheus with
the generated SLO rules and the packaged GPU rules (1 s evaluation) sends a burn-rate page, a
burn-rate ticket and an uncorrected-ECC alert to a real Alertmanager on loopback, which must
deliver each to the right receiver once: webhooks and chat messages (the slack integration,
pointed at a test server) alike, every message naming the alert's runbook.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sre_tools.slo.rules import DEFAULT_RUNBOOK
from tests.helpers.monitoring import (
    FAULTY_NODE,
    RUNBOOK_BASE,
    Inbox,
    Stack,
    alertmanager,
    amtool,
    check_config,
    http_server,
    monitoring_stack,
)
from tests.helpers.procs import LOOPBACK, run

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "sre_tools" / "data" / "alertmanager"
CONFIG = EXAMPLE / "alertmanager.yml"
# What arrives after the first notifications: nothing, for this long (group_interval is 1 s).
SETTLE_SECONDS = 4.0


def test_amtool_accepts_the_example() -> None:
    proc = check_config(CONFIG)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    assert "2 inhibit rules" in proc.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=page", "alertname=ApiFastBurn", "sre_id=api-fast"], "pager"),
        (["severity=ticket", "alertname=ApiSlowBurn", "sre_id=api-slow"], "ticket"),
        (["severity=critical", "alertname=GpuUncorrectedEccErrors", "instance=n1:9835"], "pager"),
        (["severity=warning", "alertname=GpuRowRemapPending", "instance=n1:9835"], "ticket"),
        (["severity=info", "alertname=GpuXidEvent", "instance=n1:9835"], "null"),
        (["alertname=SomethingWithoutSeverity"], "ticket"),
    ],
    ids=["page", "ticket", "critical", "warning", "info", "no-severity"],
)
def test_routes(labels: list[str], receiver: str) -> None:
    proc = run(
        [
            amtool(),
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            "--verify.receivers",
            receiver,
            *labels,
        ],
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receiver


def test_every_template_line_names_the_runbook() -> None:
    text = (EXAMPLE / "sre-tools.tmpl").read_text()
    assert ".Annotations.runbook_url" in text
    config = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        for chat in receiver.get("slack_configs", []):
            assert chat["text"] == '{{ template "sre.text" . }}'


def _test_config(workdir: Path, inbox_url: str) -> Path:
    """The example with its URLs on the test's inbox and short group timings (the routing tree,
    matchers, inhibitions and templates stay as they are)."""
    config = yaml.safe_load(CONFIG.read_text())
    config["route"]["group_wait"] = "1s"
    config["route"]["group_interval"] = "1s"
    for receiver in config["receivers"]:
        name = receiver["name"]
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{inbox_url}/{name}"
        for chat in receiver.get("slack_configs", []):
            chat["api_url"] = f"{inbox_url}/chat-{name}"
    shutil.copy(EXAMPLE / "sre-tools.tmpl", workdir / "sre-tools.tmpl")
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Inbox, Stack, str]]:
    workdir = tmp_path_factory.mktemp("alerting")
    inbox = Inbox()
    with http_server(inbox.handler()) as server:
        url = f"http://{LOOPBACK}:{server.server_address[1]}"
        config = _test_config(workdir, url)
        assert check_config(config).returncode == 0
        with alertmanager(config, workdir) as am, monitoring_stack(workdir, am) as stack:
            wanted = {
                "pager": {("ApiFastBurn", "api-fast"), ("GpuUncorrectedEccErrors", FAULTY_NODE)},
                "ticket": {("ApiSlowBurn", "api-slow")},
            }

            def arrived() -> bool:
                return all(wanted[r] <= _keys(inbox.on(f"/{r}")) for r in wanted)

            am_log = workdir / "alertmanager.log"
            assert inbox.wait_for(arrived), (
                f"not delivered in time: {inbox.received}\n{am_log.read_text()[-3000:]}"
            )
            time.sleep(SETTLE_SECONDS)
            yield inbox, stack, f"http://{am}"


def _firing(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for body in bodies for a in body["alerts"] if a["status"] == "firing"]


def _key(alert: dict[str, Any]) -> tuple[str, str]:
    labels = alert["labels"]
    return labels["alertname"], labels.get("sre_id") or labels.get("node", "")


def _keys(bodies: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {_key(a) for a in _firing(bodies)}


def test_the_page_and_the_ecc_alert_reach_the_pager_once(
    delivered: tuple[Inbox, Stack, str],
) -> None:
    inbox, _, _ = delivered
    pager = _firing(inbox.on("/pager"))
    for key in (("ApiFastBurn", "api-fast"), ("GpuUncorrectedEccErrors", FAULTY_NODE)):
        assert [_key(a) for a in pager].count(key) == 1, pager
    assert {a["labels"]["severity"] for a in pager} <= {"page", "critical"}


def test_the_slow_burn_reaches_the_ticket_receiver_once(
    delivered: tuple[Inbox, Stack, str],
) -> None:
    inbox, _, _ = delivered
    tickets = _firing(inbox.on("/ticket"))
    assert [_key(a) for a in tickets].count(("ApiSlowBurn", "api-slow")) == 1, tickets
    assert {a["labels"]["severity"] for a in tickets} <= {"ticket", "warning"}


def test_the_ticket_of_a_paging_slo_is_inhibited(delivered: tuple[Inbox, Stack, str]) -> None:
    inbox, stack, _ = delivered
    # Prometheus does fire the fast SLO's ticket...
    fired = stack.query('ALERTS{alertname="ApiFastBurn", severity="ticket", alertstate="firing"}')[
        "data"
    ]["result"]
    assert fired, "the fast burn should raise its ticket alert too"
    # ...and Alertmanager holds it back: its page is firing for the same SLO.
    assert ("ApiFastBurn", "api-fast") not in _keys(inbox.on("/ticket"))


def test_info_alerts_are_not_delivered(delivered: tuple[Inbox, Stack, str]) -> None:
    inbox, stack, _ = delivered
    assert stack.query('ALERTS{severity="info", alertstate="firing"}')["data"]["result"]
    delivered_names = {
        a["labels"]["alertname"] for _, body in inbox.received for a in body.get("alerts", [])
    }
    assert "GpuXidEvent" not in delivered_names


def test_every_notification_carries_the_runbook(delivered: tuple[Inbox, Stack, str]) -> None:
    inbox, _, _ = delivered
    for receiver in ("pager", "ticket"):
        for alert in _firing(inbox.on(f"/{receiver}")):
            url = alert["annotations"]["runbook_url"]
            assert url.startswith((RUNBOOK_BASE, DEFAULT_RUNBOOK)), alert
        chats = inbox.on(f"/chat-{receiver}")
        assert chats, f"no chat message for {receiver}"
        webhook_runbooks = {
            a["annotations"]["runbook_url"] for a in _firing(inbox.on(f"/{receiver}"))
        }
        chat_text = "\n".join(att["text"] for body in chats for att in body["attachments"])
        for url in webhook_runbooks:
            assert f"Runbook: {url}" in chat_text
        assert "none given" not in chat_text


def test_a_node_page_inhibits_only_that_nodes_tickets(
    delivered: tuple[Inbox, Stack, str],
) -> None:
    """Alerts added with amtool: a critical on node-a silences node-a's warning, not node-b's."""
    inbox, _, am_url = delivered

    def add(*labels: str) -> None:
        run(
            [
                amtool(),
                "alert",
                "add",
                f"--alertmanager.url={am_url}",
                *labels,
                f"--annotation=runbook_url={RUNBOOK_BASE}/gpu-node-health.md#test",
                "--annotation=summary=added by the test",
            ],
            timeout=60,
        )

    add("alertname=AddedCritical", "severity=critical", "instance=node-a:9835")
    time.sleep(1.5)  # the critical is active before the warnings arrive
    add("alertname=AddedWarning", "severity=warning", "instance=node-a:9835")
    add("alertname=AddedWarning", "severity=warning", "instance=node-b:9835")
    # The node's own data is stale: that warning reaches whoever handles the page's node.
    add("alertname=GpuExporterCollectionStale", "severity=warning", "instance=node-a:9835")

    def warned(instance: str) -> bool:
        return any(
            a["labels"]["alertname"] == "AddedWarning" and a["labels"]["instance"] == instance
            for a in _firing(inbox.on("/ticket"))
        )

    assert inbox.wait_for(lambda: warned("node-b:9835")), inbox.received
    assert inbox.wait_for(
        lambda: any(
            a["labels"]["alertname"] == "GpuExporterCollectionStale"
            and a["labels"]["instance"] == "node-a:9835"
            for a in _firing(inbox.on("/ticket"))
        )
    ), inbox.received
    assert inbox.wait_for(
        lambda: any(
            a["labels"]["alertname"] == "AddedCritical" for a in _firing(inbox.on("/pager"))
        )
    )
    time.sleep(SETTLE_SECONDS)
    assert not warned("node-a:9835")
