"""SlurmClient: argv lists, parsing of scontrol/sinfo output (22.05), timeouts as errors."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.remediation.errors import CommandError, CommandTimeout, SlurmError, UnknownNodeError
from sre_tools.remediation.runner import CommandResult, LocalRunner, SshRunner
from sre_tools.remediation.slurm import (
    SlurmClient,
    parse_fields,
    parse_show_node,
    parse_sinfo,
    parse_state,
)
from tests.remediation.fakes import FakeSlurm, RecordingRunner

# Recorded from Slurm 22.05.8 (Debian 12), `scontrol show node -o gpu02`.
RECORDED = (
    "NodeName=gpu02 Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 CPUEfctv=1 CPUTot=1 CPULoad=1.19 "
    "AvailableFeatures=(null) ActiveFeatures=(null) Gres=(null) NodeAddr=127.0.0.1 "
    "NodeHostName=localhost Port=16902 Version=22.05.8 OS=Linux 6.18.44-fc-v445 #1 SMP "
    "PREEMPT_DYNAMIC @0  RealMemory=100 AllocMem=0 FreeMem=23240 Sockets=1 Boards=1 "
    "State=IDLE+DRAIN ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A "
    "Partitions=gpu  BootTime=2026-11-23T18:00:23 SlurmdStartTime=2026-11-23T18:59:16 "
    "LastBusyTime=2026-11-23T18:59:16 CfgTRES=cpu=1,mem=100M,billing=1 AllocTRES= "
    "CapWatts=n/a CurrentWatts=0 AveWatts=0 ExtSensorsJoules=n/s ExtSensorsWatts=0 "
    "ExtSensorsTemp=n/s Reason=sre: reset_gpu ev=abc x=y Foo=bar [root@2026-11-23T18:59:29]"
)


def test_parse_fields_of_a_recorded_line() -> None:
    fields = parse_fields(RECORDED)
    assert fields["NodeName"] == "gpu02"
    assert fields["State"] == "IDLE+DRAIN"
    assert fields["OS"] == "Linux 6.18.44-fc-v445 #1 SMP PREEMPT_DYNAMIC @0"
    assert fields["CfgTRES"] == "cpu=1,mem=100M,billing=1"
    assert fields["AllocTRES"] == ""
    # The reason keeps its own '=' and loses the [user@time] suffix.
    assert fields["Reason"] == "sre: reset_gpu ev=abc x=y Foo=bar"
    assert "Foo" not in fields


def test_parse_show_node() -> None:
    info = parse_show_node(RECORDED + "\n", "gpu02")
    assert (info.state, info.flags, info.partitions) == ("IDLE", frozenset({"DRAIN"}), ("gpu",))
    assert info.drained and info.idle and not info.down
    assert info.reason == "sre: reset_gpu ev=abc x=y Foo=bar"
    with pytest.raises(SlurmError):
        parse_show_node(RECORDED, "gpu03")


@pytest.mark.parametrize(
    ("text", "drained", "idle", "down"),
    [
        ("IDLE", False, True, False),
        ("IDLE+DRAIN", True, True, False),
        ("MIXED+DRAIN", True, False, False),
        ("ALLOCATED+DRAIN", True, False, False),
        ("IDLE+COMPLETING+DRAIN", True, False, False),
        ("DOWN+DRAIN+NOT_RESPONDING", True, True, True),
        ("DOWN*", False, True, True),
        ("IDLE+DRAIN+NOT_RESPONDING", True, True, False),
    ],
)
def test_states(text: str, drained: bool, idle: bool, down: bool) -> None:
    base, flags = parse_state(text)
    line = RECORDED.replace("State=IDLE+DRAIN", f"State={text}")
    info = parse_show_node(line, "gpu02")
    assert (info.state, info.flags) == (base, flags)
    assert (info.drained, info.idle, info.down) == (drained, idle, down)


def test_no_reason() -> None:
    line = RECORDED.split(" Reason=", maxsplit=1)[0]
    assert parse_show_node(line, "gpu02").reason is None


def test_parse_sinfo() -> None:
    rows = parse_sinfo(
        "gpu01|gpu|idle|none\ngpu02|gpu|drained|sre: x | y\ngpu02|debug|drained*|sre: x | y\n"
    )
    assert [r.node for r in rows] == ["gpu01", "gpu02", "gpu02"]
    assert rows[1].reason == "sre: x | y"
    assert rows[2].drained and not rows[0].drained
    with pytest.raises(SlurmError):
        parse_sinfo("garbage\n")


def test_argv_lists() -> None:
    fake = FakeSlurm.cluster({"gpu": ["gpu01"]})
    client = SlurmClient(fake, timeout=3)
    client.drain("gpu01", 'sre: reboot ev=1: has "quotes" and $(dollars); rm -rf')
    client.resume("gpu01")
    assert fake.calls == [
        (
            "scontrol",
            "update",
            "nodename=gpu01",
            "state=drain",
            'reason=sre: reboot ev=1: has "quotes" and $(dollars); rm -rf',
        ),
        ("scontrol", "update", "nodename=gpu01", "state=resume"),
    ]


def test_bad_node_names_never_reach_scontrol() -> None:
    fake = FakeSlurm.cluster({"gpu": ["gpu01"]})
    client = SlurmClient(fake)
    for bad in ("gpu01 gpu02", "-h", "gpu01;reboot", ""):
        with pytest.raises(ValidationError):
            client.show_node(bad)
    with pytest.raises(ValidationError):
        client.drain("gpu01", "line\nbreak")
    assert fake.calls == []


def test_unknown_node() -> None:
    client = SlurmClient(FakeSlurm.cluster({"gpu": ["gpu01"]}))
    with pytest.raises(UnknownNodeError):
        client.show_node("gpu99")
    with pytest.raises(UnknownNodeError):
        client.drain("gpu99", "sre: x")


@pytest.mark.parametrize(
    ("stderr", "unknown"),
    [
        pytest.param("Node gpu01 not found", True, id="show-unknown-node"),
        pytest.param("slurm_update error: Invalid node name specified", True, id="update-unknown"),
        pytest.param("bash: line 1: scontrol: command not found", False, id="no-scontrol"),
        pytest.param("slurm_update error: Invalid node state specified", False, id="bad-state"),
        pytest.param("Unable to contact slurm controller (connect failure)", False, id="no-ctld"),
    ],
)
def test_show_and_update_map_the_same_slurm_error_the_same_way(stderr: str, unknown: bool) -> None:
    """One mapping: ``scontrol show node`` and ``scontrol update`` give the same answer."""

    def failing(
        argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        return CommandResult(tuple(argv), 1, "", stderr)

    client = SlurmClient(failing)
    raised: list[SlurmError] = []
    for call in (
        lambda: client.show_node("gpu01"),
        lambda: client.drain("gpu01", "sre: x"),
        lambda: client.resume("gpu01"),
    ):
        with pytest.raises(SlurmError) as info:
            call()
        raised.append(info.value)
    assert [isinstance(e, UnknownNodeError) for e in raised] == [unknown] * 3
    assert [e.returncode for e in raised] == [1, 1, 1]
    if unknown:
        assert {str(e) for e in raised} == {"Slurm does not know node gpu01"}
    else:
        assert [str(e) for e in raised] == [
            f"scontrol {what} gpu01 failed: {stderr}" for what in ("show node", "drain", "resume")
        ]


@pytest.mark.parametrize("what", ["show", "drain", "sinfo"])
def test_failures_and_timeouts_are_slurm_errors(what: str) -> None:
    for how in ("timeout", "slurm_load_node error: Unable to contact slurm controller"):
        fake = FakeSlurm.cluster({"gpu": ["gpu01"]})
        fake.fail[what] = how
        client = SlurmClient(fake)
        with pytest.raises(SlurmError) as info:
            if what == "show":
                client.show_node("gpu01")
            elif what == "drain":
                client.drain("gpu01", "sre: x")
            else:
                client.partitions()
        assert not isinstance(info.value, UnknownNodeError)


def test_partitions_and_drained_count() -> None:
    fake = FakeSlurm.cluster({"gpu": ["gpu01", "gpu02", "gpu03"], "debug": ["gpu01"]})
    fake.nodes["gpu01"].drain = True
    fake.nodes["gpu01"].reason = "ops"
    client = SlurmClient(fake)
    assert client.partitions() == {"gpu": ("gpu01", "gpu02", "gpu03"), "debug": ("gpu01",)}
    assert client.drained_count() == {"gpu": 1, "debug": 1}
    assert client.drained() == {"gpu01": "ops"}
    assert fake.calls[0] == ("sinfo", "--noheader", "--Node", "--format", "%N|%R|%T|%E")


def test_slurm_conf_and_controller() -> None:
    seen: list[tuple[tuple[str, ...], Mapping[str, str] | None]] = []

    def runner(
        argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        seen.append((tuple(argv), env))
        return CommandResult(tuple(argv), 0, "", "")

    SlurmClient(runner, slurm_conf="/etc/slurm/x.conf").resume("gpu01")
    assert seen[-1][1] == {"SLURM_CONF": "/etc/slurm/x.conf"}
    SlurmClient(runner, controller="localhost").resume("gpu01")
    assert seen[-1][0][0] == "scontrol"  # local: no ssh
    SlurmClient(runner, controller="slurmctl-1").resume("gpu01")
    argv = seen[-1][0]
    assert argv[:2] == ("ssh", "-o") and argv[-2:] == (
        "slurmctl-1",
        "scontrol update nodename=gpu01 state=resume",
    )
    with pytest.raises(ValidationError):
        SlurmClient(runner, controller="-oProxyCommand=x")


# --- runners -------------------------------------------------------------------------------------


def test_local_runner_runs_argv_without_a_shell() -> None:
    result = LocalRunner()(
        [sys.executable, "-c", "import sys; print(sys.argv[1])", "$(id) ;"], timeout=20
    )
    assert result.ok and result.stdout.strip() == "$(id) ;"


def test_local_runner_timeout_is_a_domain_error() -> None:
    with pytest.raises(CommandTimeout, match=r"timed out after 0\.3s"):
        LocalRunner()([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.3)


def test_local_runner_missing_binary() -> None:
    with pytest.raises(CommandError, match="cannot run"):
        LocalRunner()(["/nonexistent/scontrol"], timeout=5)


def test_local_runner_refuses_a_command_line() -> None:
    with pytest.raises(TypeError):
        LocalRunner()("scontrol show node", timeout=5)


def test_ssh_runner_quotes_every_token() -> None:
    base = RecordingRunner()
    ssh = SshRunner("gpu07", base=base)
    ssh(["nvidia-smi", "--gpu-reset", "-i", "3"], timeout=5)
    ssh(["echo", "a b", "$(x)", "'q'"], timeout=5, env={"SLURM_CONF": "/tmp/s c"})
    assert base.calls[0][-2:] == ("gpu07", "nvidia-smi --gpu-reset -i 3")
    assert base.calls[1][-1] == "env 'SLURM_CONF=/tmp/s c' echo 'a b' '$(x)' ''\"'\"'q'\"'\"''"
    assert "BatchMode=yes" in base.calls[0]


def test_ssh_failure_is_an_error() -> None:
    base = RecordingRunner(fail={"ssh": 255})
    with pytest.raises(CommandError, match="ssh to gpu07 failed"):
        SshRunner("gpu07", base=base)(["true"], timeout=5)


def test_local_runner_never_uses_a_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    seen: dict[str, object] = {}

    def fake_run(args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen["args"], seen["kwargs"] = args, kwargs
        return subprocess.CompletedProcess(args, 0, "", "")  # type: ignore[arg-type]

    monkeypatch.setattr(subprocess, "run", fake_run)
    LocalRunner()(["scontrol", "update", "nodename=gpu01", "reason=a; reboot"], timeout=4)
    assert seen["args"] == ["scontrol", "update", "nodename=gpu01", "reason=a; reboot"]
    kwargs = seen["kwargs"]
    assert isinstance(kwargs, dict)
    assert not kwargs.get("shell") and kwargs["timeout"] == 4
