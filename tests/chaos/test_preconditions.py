"""``sre drill run`` refuses while the fleet is not fit for a drill: SLOs paging or short of
budget, page alerts firing, no remediation drain budget left. A refused run writes nothing."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sre_tools.chaos.model import parse_experiment
from sre_tools.chaos.preconditions import drains
from sre_tools.remediation.state import RemediationState
from tests.chaos.conftest import DrillEnv, catalog_doc, experiment
from tests.helpers.procs import free_port
from tests.helpers.slo_gate import SLO, write_gate_data

Sre = Any


def run_args(env: DrillEnv, *extra: str) -> tuple[str, ...]:
    path = env.write(experiment(env.kernel_log))
    return ("drill", "run", str(path), "--inventory", str(env.inventory), "--targets", "n1",
            "--execute", *extra)  # fmt: skip


def assert_refused_and_nothing_written(env: DrillEnv, code: int, err: str) -> None:
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not env.kernel_log.exists()
    assert not env.journals.exists() or not list(env.journals.glob("*.jsonl"))


# --- error budget -------------------------------------------------------------------------------


def test_paging_slo_refuses_the_drill(drill_env: DrillEnv, sre: Sre) -> None:
    spec, store = write_gate_data(drill_env.root, at=time.time())
    code, _, err = sre(*run_args(drill_env, "--slo-spec", spec, "--store", store))
    assert_refused_and_nothing_written(drill_env, code, err)
    assert err.startswith("sre: error: precondition failed: error budget: blocked: jobs-paging: ")
    assert "paging: page-quick burn rate 50 over 1h" in err
    assert "jobs-spent: budget remaining" in err and "< 25%" in err


def test_healthy_slos_let_the_drill_run(drill_env: DrillEnv, sre: Sre) -> None:
    _, store = write_gate_data(drill_env.root, at=time.time())
    spec = drill_env.root / "healthy.yaml"
    healthy = SLO.format(name="healthy", title="Healthy")
    spec.write_text(f"version: prometheus/v1\nservice: jobs\nslos:\n{healthy}")
    code, out, err = sre(*run_args(drill_env, "--slo-spec", str(spec), "--store", store))
    assert code == 0, err
    assert "run drill-" in out and ": passed;" in out


def test_min_budget_is_a_percentage(drill_env: DrillEnv, sre: Sre) -> None:
    spec, _ = write_gate_data(drill_env.root, at=time.time())
    code, _, err = sre(*run_args(drill_env, "--slo-spec", spec, "--min-budget", "150"))
    assert code == 2 and "--min-budget: must be a percentage in [0, 100]" in err


def test_bad_slo_spec_is_invalid_input(drill_env: DrillEnv, sre: Sre) -> None:
    spec = drill_env.root / "bad.yaml"
    spec.write_text("version: prometheus/v1\nslos: 3\n")
    code, _, err = sre(*run_args(drill_env, "--slo-spec", str(spec)))
    assert code == 2 and str(spec) in err and err.count("\n") == 1
    assert not drill_env.kernel_log.exists()


# --- page alerts --------------------------------------------------------------------------------


class FakePrometheus:
    """Answers every instant query with ``result``; keeps the queries it was asked."""

    def __init__(self, result: list[dict[str, Any]]):
        self.result = result
        self.queries: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                owner.queries.append(urllib.parse.parse_qs(body)["query"][0])
                payload = {"status": "success", "data": {"resultType": "vector",
                                                         "result": owner.result}}  # fmt: skip
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus([])
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def alert(name: str, severity: str) -> dict[str, Any]:
    labels = {"__name__": "ALERTS", "alertname": name, "alertstate": "firing", "severity": severity}
    return {"metric": labels, "value": [time.time(), "1"]}


def test_firing_page_alert_refuses_the_drill(
    drill_env: DrillEnv, sre: Sre, prometheus: FakePrometheus
) -> None:
    prometheus.result = [alert("GpuXid", "critical"), alert("JobsErrorBudgetBurn", "page")]
    code, _, err = sre(*run_args(drill_env, "--prometheus", prometheus.url))
    assert_refused_and_nothing_written(drill_env, code, err)
    assert "2 paging alert(s) firing: GpuXid, JobsErrorBudgetBurn" in err
    assert prometheus.queries == ['ALERTS{alertstate="firing",severity=~"page|critical"}']


def test_no_page_alert_lets_the_drill_run(
    drill_env: DrillEnv, sre: Sre, prometheus: FakePrometheus
) -> None:
    code, _, err = sre(*run_args(drill_env, "--prometheus", prometheus.url))
    assert code == 0, err
    assert drill_env.journals.exists() and len(list(drill_env.journals.glob("*.jsonl"))) == 1


def test_unreachable_prometheus_fails_closed(drill_env: DrillEnv, sre: Sre) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, _, err = sre(*run_args(drill_env, "--prometheus", url, "--timeout", "5"))
    assert_refused_and_nothing_written(drill_env, code, err)
    assert err.startswith(f"sre: error: precondition could not be evaluated (fails closed): {url}")


# --- remediation drain budget -------------------------------------------------------------------


def hold_drains(path: Path, nodes: list[str]) -> None:
    state = RemediationState(path)
    with state.transaction() as cur:
        for node in nodes:
            cur.execute(
                "INSERT INTO drains (node, action, event_id, reason, status, reserved_at) "
                "VALUES (?, 'reset_gpu', ?, 'sre: reset_gpu', 'drained', 0)",
                (node, f"ev-{node}"),
            )


def test_which_drills_drain() -> None:
    assert drains(parse_experiment(catalog_doc("node-drain")))
    doc = experiment(Path("/tmp/k"))
    assert not drains(parse_experiment(doc))
    doc["x-sre"]["expect"][0]["measures"] = "drain"
    assert drains(parse_experiment(doc))


@pytest.mark.parametrize(
    ("held", "config", "refused"),
    [
        pytest.param(["gpu07", "gpu08"], None, True, id="default-max-2-all-held"),
        pytest.param(["gpu07"], None, False, id="one-free"),
        pytest.param(["gpu07", "gpu08"], "max_drained_nodes: 3\n", False, id="config-max-3"),
        pytest.param([], "max_drained_nodes: 0\n", True, id="config-max-0"),
    ],
)
def test_drain_budget(
    drill_env: DrillEnv, sre: Sre, held: list[str], config: str | None, refused: bool
) -> None:
    state = drill_env.root / "remediation.db"
    hold_drains(state, held)
    extra = ["--remediation-state", str(state)]
    if config is not None:
        (drill_env.root / "remediation.yaml").write_text(config)
        extra += ["--remediation-config", str(drill_env.root / "remediation.yaml")]
    # A dry run: the preconditions are judged all the same.
    args = ("drill", "run", "node-drain", "--inventory", str(drill_env.inventory),
            "--targets", "n1", *extra)  # fmt: skip
    code, out, err = sre(*args)
    if refused:
        assert code == 1 and err.count("\n") == 1
        assert "precondition failed: remediation drain budget: 0 free drain(s)" in err
        assert f"{len(held)} held in {state}), the drill drains 1" in err
        assert not drill_env.journals.exists()
    else:
        assert code == 0, err
        assert "dry-run" in out


def test_drain_budget_without_a_state_file_holds_none(drill_env: DrillEnv, sre: Sre) -> None:
    state = drill_env.root / "absent.db"
    code, _, err = sre("drill", "run", "node-drain", "--inventory", str(drill_env.inventory),
                       "--remediation-state", str(state))  # fmt: skip
    assert code == 0, err
    assert not state.exists()  # read, never created
