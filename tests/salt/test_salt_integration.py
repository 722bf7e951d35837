"""A real salt-master and salt-minion on loopback: sync the custom code, the beacon fires on the
master's event bus, ``gpu.health`` runs through the master.

The master serves this repository's ``salt/`` tree; the minion's beacon plays the
``dbe-volatile`` recording every second. Ports are free non-default ones, every path is under
``tmp_path``, the master accepts exactly the test minion's pre-seeded key (``open_mode: False``),
and teardown ends both daemons' process groups. Salt missing fails the test.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.salt import FIXTURES, PAIR_COMMANDS, SaltError, SaltPair
from tests.salt.conftest import fail_unless_salt

pytestmark = pytest.mark.integration

MINION_ID = "sre-it-gpu-01"
DBE = FIXTURES / "faults" / "dbe-volatile.json"
HEALTHY = FIXTURES / "h100-capture.json"
EVENT_TIMEOUT_SECONDS = 30.0


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaltPair]:
    fail_unless_salt(*PAIR_COMMANDS)
    workdir = tmp_path_factory.mktemp("salt-pair")
    salt_pair = SaltPair(
        workdir,
        minion_id=MINION_ID,
        beacons={
            "gpu_health": [
                {"interval": 1},
                {"replay": str(DBE)},
                {"cooldown": 300},
                {"node": "gpu-node-01"},
            ]
        },
        stop_timeout=5,
    )
    with salt_pair:
        try:
            salt_pair.start_master()
        except SaltError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield salt_pair
    for proc in salt_pair.procs.values():
        assert proc.poll() is not None, f"pid {proc.pid} still running after teardown"
    assert salt_pair.leftovers() == {}, "Salt processes outlived the teardown"


def test_only_the_test_minions_key_is_accepted(pair: SaltPair) -> None:
    assert pair.accepted_keys() == [MINION_ID]
    master_conf = (pair.master_conf / "master").read_text(encoding="utf-8")
    assert "open_mode: false" in master_conf and "auto_accept: false" in master_conf
    assert pair.publish_port not in (4505, 4506) and pair.ret_port not in (4505, 4506)


def test_beacon_event_reaches_the_master(pair: SaltPair) -> None:
    with pair.master_events() as bus:
        try:
            pair.start_minion(bus)
            synced = pair.salt("saltutil.sync_all", timeout=60)
        except SaltError as exc:
            pytest.fail(str(exc), pytrace=False)
        assert "modules.gpu" in synced["modules"] and "beacons.gpu_health" in synced["beacons"]
        prefix = f"salt/beacon/{MINION_ID}/gpu_health/sre/gpu/health/"
        try:
            event = pair.wait_event(bus, prefix, EVENT_TIMEOUT_SECONDS)
        except SaltError as exc:
            pytest.fail(str(exc), pytrace=False)
    assert event["tag"] == prefix + "crit"
    data = event["data"]
    assert data["id"] == MINION_ID and data["minion"] == MINION_ID
    assert (data["severity"], data["action"]) == ("crit", "reset_gpu")
    assert data["schema_version"] == 1 and data["node"] == "gpu-node-01"
    assert "ecc.uncorrected_volatile" in {f["check"] for f in data["findings"]}
    assert data["remediation"]["action"] == "reset_gpu"

    # The reactor's validation (next step) accepts what the beacon sent.
    from sre_tools.remediation.model import request_from_event

    assert request_from_event(data["remediation"]).gpus == (0,)


def test_gpu_health_through_the_master(pair: SaltPair) -> None:
    if "minion" not in pair.procs:
        pytest.fail("the minion did not start (see test_beacon_event_reaches_the_master)")
    report = pair.salt("gpu.health", f"replay={DBE}")
    assert isinstance(report, dict), report
    assert (report["status"], report["action"]) == ("crit", "reset_gpu")
    assert report["schema_version"] == 1 and report["source"] == f"replay:{DBE}"
    healthy = pair.salt("gpu.health", f"replay={HEALTHY}")
    assert healthy["status"] == "ok"


def test_gpu_xid_explain_through_the_master(pair: SaltPair) -> None:
    if "minion" not in pair.procs:
        pytest.fail("the minion did not start (see test_beacon_event_reaches_the_master)")
    line = "NVRM: Xid (PCI:0000:18:00): 79, pid=1234, name=python, GPU has fallen off the bus."
    out = pair.salt("gpu.xid_explain", line)
    assert [g["action"] for g in out["gpus"]] == ["reboot"]


def test_stop_ends_every_process(tmp_path: Path) -> None:
    """stop() ends a daemon that ignores SIGTERM, and the children of its process group."""
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    stubborn = SaltPair(tmp_path, stop_timeout=1)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    stubborn.procs["master"] = proc  # type: ignore[assignment]
    assert proc.stdout is not None
    child = int(proc.stdout.readline())  # the handler is installed once the child is up
    stubborn.stop()
    assert proc.returncode == -signal.SIGKILL
    assert stubborn.leftovers() == {}, f"child {child} of the stopped group is still running"
