"""salt/_modules/gpu.py, loaded without Salt: each function's contract over sre_tools."""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from sre_tools.remediation.engine import Remediator
from tests.helpers.salt import FIXTURES, GPU_MODULE, load_salt_file

HEALTHY = FIXTURES / "h100-capture.json"
DBE = FIXTURES / "faults" / "dbe-volatile.json"
LOST = FIXTURES / "faults" / "gpu-lost.json"
XID79 = "NVRM: Xid (PCI:0000:18:00): 79, pid=1234, name=python, GPU has fallen off the bus."
MIG_CONFIG = """\
version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  all-1g.10gb:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
"""


# --- loading -----------------------------------------------------------------------------------


def test_virtual_name_when_sre_tools_imports(gpu_module: ModuleType) -> None:
    assert gpu_module.__virtual__() == "gpu"


def test_virtual_refuses_with_reason_without_sre_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = load_salt_file(GPU_MODULE)
    monkeypatch.setitem(sys.modules, "sre_tools", None)  # makes `import sre_tools` fail
    ok, reason = mod.__virtual__()
    assert ok is False
    assert "sre_tools" in reason and "salt-pip install sre-tools" in reason


def test_loading_imports_nothing_from_sre_tools() -> None:
    text = GPU_MODULE.read_text(encoding="utf-8")
    top_level = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in top_level if "sre_tools" in line], top_level


# --- gpu.health --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recording", "status", "action"),
    [
        pytest.param(HEALTHY, "ok", "none", id="healthy"),
        pytest.param(DBE, "crit", "reset_gpu", id="dbe-volatile"),
        pytest.param(LOST, "crit", "power_cycle", id="gpu-lost"),
    ],
)
def test_health_replay_returns_the_versioned_report(
    gpu_module: ModuleType, recording: Path, status: str, action: str
) -> None:
    report = gpu_module.health(replay=str(recording))
    assert report["schema_version"] == 1
    assert (report["status"], report["action"]) == (status, action)
    assert report["source"] == f"replay:{recording}"
    json.dumps(report)  # plain JSON all the way down: Salt serializes it with msgpack


def test_health_replay_writes_no_state(gpu_module: ModuleType, tmp_path: Path) -> None:
    gpu_module.health(replay=str(DBE))
    assert not (tmp_path / "cache").exists()


def test_health_counter_state_lives_in_salts_cachedir(gpu_module: ModuleType) -> None:
    path = gpu_module._counters(None, None).path
    assert str(path).endswith("cache/sre_tools/health-state.json")
    assert gpu_module._counters(None, "/x/state.json").path == Path("/x/state.json")
    assert gpu_module._counters(str(DBE), None).path is None


def test_health_profile_from_minion_config(gpu_module: ModuleType) -> None:
    # h100-sxm-8 expects 8 GPUs; the recording has one: the profile must have been applied.
    gpu_module.__opts__["sre_tools"] = {"profile": "h100-sxm-8"}
    report = gpu_module.health(replay=str(HEALTHY))
    assert report["status"] != "ok"
    assert any(f["check"] == "gpu.count" and f["severity"] == "crit" for f in report["findings"])


def test_health_settings_through_config_get(gpu_module: ModuleType, tmp_path: Path) -> None:
    policy = tmp_path / "health.yaml"
    policy.write_text("---\nexpected_gpus: 2\n", encoding="utf-8")
    asked: list[str] = []

    def config_get(key: str) -> Any:
        asked.append(key)
        return {"sre_tools:config": str(policy)}.get(key, "")

    gpu_module.__salt__ = {"config.get": config_get}
    report = gpu_module.health(replay=str(HEALTHY))
    assert "sre_tools:config" in asked and "sre_tools:profile" in asked
    assert any(f["check"] == "gpu.count" and f["severity"] == "crit" for f in report["findings"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"profile": "h200-nvl-4"}, "unknown profile", id="unknown-profile"),
        pytest.param({"replay": "/nonexistent/recording.json"}, "recording.json", id="no-file"),
    ],
)
def test_health_errors_are_command_errors(
    gpu_module: ModuleType, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(gpu_module.CommandExecutionError, match=message):
        gpu_module.health(**{"replay": str(HEALTHY), **kwargs})


def test_health_bad_policy_names_the_key(gpu_module: ModuleType, tmp_path: Path) -> None:
    policy = tmp_path / "health.yaml"
    policy.write_text("---\nthermal:\n  margin_wran_c: 3\n", encoding="utf-8")
    with pytest.raises(gpu_module.CommandExecutionError, match=r"thermal\.margin_wran_c"):
        gpu_module.health(replay=str(HEALTHY), config=str(policy))


@pytest.mark.parametrize("timeout", ["soon", 0, -1, 601])
def test_health_timeout_is_checked(gpu_module: ModuleType, timeout: object) -> None:
    with pytest.raises(gpu_module.SaltInvocationError, match="timeout"):
        gpu_module.health(replay=str(HEALTHY), timeout=timeout)


# --- gpu.xid_explain ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(XID79, id="string"),
        pytest.param(["kernel: usb 1-1: new device", XID79], id="list"),
        pytest.param(f"noise\n{XID79}\nmore noise", id="multi-line-string"),
    ],
)
def test_xid_explain(gpu_module: ModuleType, lines: Any) -> None:
    out = gpu_module.xid_explain(lines)
    assert [e["xid"] for e in out["events"]] == [79]
    assert out["gpus"][0]["action"] == "reboot" and out["gpus"][0]["severity"] == "crit"
    json.dumps(out)


def test_xid_explain_without_xids(gpu_module: ModuleType) -> None:
    assert gpu_module.xid_explain("nothing to see") == {"lines": 1, "events": [], "gpus": []}


@pytest.mark.parametrize("lines", [None, 79, [XID79, 3], {"line": XID79}])
def test_xid_explain_refuses_other_types(gpu_module: ModuleType, lines: Any) -> None:
    with pytest.raises(gpu_module.SaltInvocationError, match="lines"):
        gpu_module.xid_explain(lines)


def test_xid_explain_caps_the_input(
    gpu_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu_module, "MAX_XID_LINES", 3)
    with pytest.raises(gpu_module.SaltInvocationError, match="more than 3 lines"):
        gpu_module.xid_explain("a\nb\nc\nd")


# --- gpu.mig_assert ----------------------------------------------------------------------------


@pytest.fixture
def mig_config(tmp_path: Path) -> Path:
    path = tmp_path / "mig-config.yaml"
    path.write_text(MIG_CONFIG, encoding="utf-8")
    return path


def test_mig_assert_in_sync(gpu_module: ModuleType, mig_config: Path) -> None:
    out = gpu_module.mig_assert(str(mig_config), "all-disabled", replay=str(HEALTHY))
    assert out["in_sync"] is True and out["drift"] == []
    layout = [f for f in out["findings"] if f["check"] == "mig.layout"]
    assert layout and layout[0]["severity"] == "ok"
    assert {f["check"] for f in out["findings"]} <= {"mig.layout", "mig.pending"}


def test_mig_assert_reports_drift(gpu_module: ModuleType, mig_config: Path) -> None:
    out = gpu_module.mig_assert(str(mig_config), "all-1g.10gb", replay=str(HEALTHY))
    assert out["in_sync"] is False
    (drift,) = out["drift"]
    assert drift["check"] == "mig.layout" and drift["severity"] == "warn"
    assert drift["evidence"]["want"] == {"1g.10gb": 7}
    assert drift["gpu"]["index"] == 0


def test_mig_assert_is_read_only(gpu_module: ModuleType, mig_config: Path) -> None:
    before = mig_config.read_bytes()
    gpu_module.mig_assert(str(mig_config), "all-1g.10gb", replay=str(HEALTHY))
    assert mig_config.read_bytes() == before


@pytest.mark.parametrize(
    ("name", "make_file", "message"),
    [
        pytest.param(
            "all-2g",
            True,
            r"no config named 'all-2g' \(known: all-1g.10gb, all-disabled\)",
            id="unknown-config",
        ),
        pytest.param("all-disabled", False, "cannot read", id="missing-file"),
    ],
)
def test_mig_assert_errors(
    gpu_module: ModuleType,
    tmp_path: Path,
    mig_config: Path,
    name: str,
    make_file: bool,
    message: str,
) -> None:
    path = mig_config if make_file else tmp_path / "absent.yaml"
    with pytest.raises(gpu_module.CommandExecutionError, match=message):
        gpu_module.mig_assert(str(path), name, replay=str(HEALTHY))


def test_mig_assert_invalid_config_names_the_field(gpu_module: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: v2\nmig-configs: {}\n", encoding="utf-8")
    with pytest.raises(gpu_module.CommandExecutionError, match="version"):
        gpu_module.mig_assert(str(path), "x", replay=str(HEALTHY))


# --- gpu.drain / gpu.resume: thin delegation to sre_tools.remediation ----------------------------


class FakeDecision:
    def __init__(self, **fields: Any):
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        return dict(self.fields)


class FakeRemediator:
    """Built by the real ``from_paths`` (configuration, default paths, Slurm client)."""

    instances: ClassVar[list[FakeRemediator]] = []
    from_paths = classmethod(Remediator.from_paths.__func__)  # type: ignore[attr-defined]

    def __init__(
        self,
        config: Any,
        slurm: Any,
        state_path: Any,
        audit_path: Any,
        *,
        dry_run: bool = True,
        diag_lookup: Any = None,
    ):
        self.config, self.slurm = config, slurm
        self.state_path, self.audit_path, self.dry_run = state_path, audit_path, dry_run
        self.calls: list[tuple[Any, ...]] = []
        FakeRemediator.instances.append(self)

    def drain(
        self, node: str, reason: str, *, event_id: str | None = None, source: str = "manual"
    ) -> FakeDecision:
        self.calls.append(("drain", node, reason, source))
        return FakeDecision(
            outcome="dry_run" if self.dry_run else "acted", code="drained", node=node
        )

    # The DCGM level the fake engine asks a resume for (Remediator.resume_diag_level).
    diag_level = 0

    def resume_diag_level(self, node: str) -> int:
        return self.diag_level

    def try_resume(self, node: str, fresh_report: Any, diags: Any = ()) -> FakeDecision:
        self.calls.append(("try_resume", node, fresh_report, *([diags] if diags else [])))
        return FakeDecision(outcome="refused", code="not_ours", node=node)


@pytest.fixture
def fake_remediator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[FakeRemediator]:
    from sre_tools import remediation

    FakeRemediator.instances = []
    monkeypatch.setattr(remediation, "Remediator", FakeRemediator)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return FakeRemediator


def test_remediator_api_is_what_the_module_calls() -> None:
    """The real API keeps the shape the fake stands in for (catches drift in sre_tools)."""
    built = inspect.signature(Remediator.from_paths).parameters
    assert list(built)[:3] == ["config_path", "state_path", "audit_path"]
    assert {"controller", "dry_run"} <= set(built)
    init = inspect.signature(Remediator.__init__).parameters
    assert list(init)[1:5] == ["config", "slurm", "state_path", "audit_path"]
    assert "dry_run" in init
    drain = inspect.signature(Remediator.drain).parameters
    assert list(drain)[1:3] == ["node", "reason"] and "source" in drain
    assert list(inspect.signature(Remediator.try_resume).parameters)[1:4] == [
        "node",
        "fresh_report",
        "diags",
    ]
    assert list(inspect.signature(Remediator.resume_diag_level).parameters)[1:] == ["node"]


@pytest.mark.parametrize(("execute", "dry_run"), [(False, True), (True, False)])
def test_drain_delegates_dry_run_by_default(
    gpu_module: ModuleType, fake_remediator: type[FakeRemediator], execute: bool, dry_run: bool
) -> None:
    out = gpu_module.drain("sre: DBE on GPU 0", execute=execute)
    (engine,) = fake_remediator.instances
    assert engine.calls == [("drain", "gpu-node-01", "sre: DBE on GPU 0", "salt")]
    assert engine.dry_run is dry_run and out["dry_run"] is dry_run
    assert out["code"] == "drained"
    assert str(engine.state_path).endswith("xdg/sre-tools/remediation.db")


def test_drain_node_and_paths_from_settings(
    gpu_module: ModuleType, fake_remediator: type[FakeRemediator], tmp_path: Path
) -> None:
    gpu_module.__opts__["sre_tools"] = {
        "node": "gpu17",
        "remediation_state": str(tmp_path / "r.db"),
        "remediation_audit": str(tmp_path / "audit.jsonl"),
    }
    gpu_module.drain("sre: test")
    (engine,) = fake_remediator.instances
    assert engine.calls[0][1] == "gpu17"
    assert (str(engine.state_path), str(engine.audit_path)) == (
        str(tmp_path / "r.db"),
        str(tmp_path / "audit.jsonl"),
    )


@pytest.mark.parametrize("reason", ["", "   ", None, 3])
def test_drain_needs_a_reason(
    gpu_module: ModuleType, fake_remediator: type[FakeRemediator], reason: Any
) -> None:
    with pytest.raises(gpu_module.SaltInvocationError, match="reason"):
        gpu_module.drain(reason)
    assert fake_remediator.instances == []


def test_resume_runs_a_fresh_report_and_delegates(
    gpu_module: ModuleType, fake_remediator: type[FakeRemediator]
) -> None:
    from sre_tools.health.model import HealthReport

    out = gpu_module.resume(replay=str(HEALTHY), node="gpu05")
    (engine,) = fake_remediator.instances
    ((name, node, report),) = engine.calls
    assert (name, node) == ("try_resume", "gpu05")
    assert isinstance(report, HealthReport) and report.severity.value == "ok"
    assert out["health"] == {"status": "ok", "action": "none"}
    assert out["dry_run"] is True and out["code"] == "not_ours"


def test_resume_runs_the_diagnostic_the_engine_needs_first(
    gpu_module: ModuleType,
    fake_remediator: type[FakeRemediator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a GPU reset the engine asks for level 2: gpu.diag runs here (the real `sre diag
    run`, a stand-in dcgmi printing a recorded result) and its runs go with the report."""
    dcgm = Path(__file__).resolve().parents[1] / "fixtures" / "diag" / "dcgm"
    dcgmi = tmp_path / "dcgmi"
    dcgmi.write_text(f"#!/bin/sh\ncat {dcgm}/level2-pass.json\n", encoding="utf-8")
    dcgmi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(FakeRemediator, "diag_level", 2)
    gpu_module.resume(replay=str(HEALTHY), node="gpu05", diag_timeout=120)
    (engine,) = fake_remediator.instances
    ((name, node, _report, diags),) = engine.calls
    assert (name, node) == ("try_resume", "gpu05")
    assert [(d.node, d.kind, d.level, d.ran, d.problem) for d in diags] == [
        ("gpu05", "dcgm", 2, True, None)
    ]


def test_remediation_errors_are_command_errors(
    gpu_module: ModuleType, fake_remediator: type[FakeRemediator], tmp_path: Path
) -> None:
    bad = tmp_path / "remediation.yaml"
    bad.write_text("---\nmax_drained_nodez: 3\n", encoding="utf-8")
    with pytest.raises(gpu_module.CommandExecutionError, match="max_drained_nodez"):
        gpu_module.drain("sre: test", remediation_config=str(bad))
