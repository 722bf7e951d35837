"""One rule for the counter state of a run, decided in sre_tools.health.runner.counter_state:
the given file; else none for a replay; else the front end's live default or sre_tools' own."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from sre_tools.cli.main import main
from sre_tools.health.runner import counter_state

REPO = Path(__file__).resolve().parents[2]
HEALTHY = REPO / "tests" / "fixtures" / "gpu" / "h100-capture.json"


@pytest.fixture
def env_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sre_tools' default state file, pointed into tmp_path."""
    path = tmp_path / "default" / "health-state.json"
    monkeypatch.setenv("SRE_HEALTH_STATE", str(path))
    return path


@pytest.mark.parametrize(
    ("replay", "given", "live_default", "kept"),
    [
        pytest.param("r.json", "given.json", None, "given.json", id="replay-given-file"),
        pytest.param("r.json", None, "live.json", None, id="replay-keeps-none"),
        pytest.param(None, "given.json", "live.json", "given.json", id="live-given-file"),
        pytest.param(None, None, "live.json", "live.json", id="live-front-end-default"),
        pytest.param(None, None, None, "default", id="live-sre-tools-default"),
    ],
)
def test_counter_state_rule(
    tmp_path: Path,
    env_state: Path,
    replay: str | None,
    given: str | None,
    live_default: str | None,
    kept: str | None,
) -> None:
    state = counter_state(
        None if replay is None else tmp_path / replay,
        None if given is None else tmp_path / given,
        live_default=None if live_default is None else tmp_path / live_default,
    )
    expected = {None: None, "default": env_state}.get(kept, tmp_path / str(kept))
    assert state.path == expected


def _ansible_module() -> ModuleType:
    path = REPO / "playbooks" / "library" / "gpu_health.py"
    spec = importlib.util.spec_from_file_location("_sre_ansible_gpu_health", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ansible_run(state_file: Path | None) -> None:
    params = {
        "replay": str(HEALTHY),
        "state_file": None if state_file is None else str(state_file),
        "timeout": None,
        "policy_file": None,
        "profile": None,
    }
    assert _ansible_module().run_python(params, None)["status"] == "ok"


def _cli_run(state_file: Path | None) -> None:
    args = ["health", "--json", "--replay", str(HEALTHY)]
    assert main(args + ([] if state_file is None else ["--state", str(state_file)])) == 0


@pytest.mark.parametrize("run", [_cli_run, _ansible_run], ids=["cli", "ansible"])
def test_front_ends_keep_no_state_for_a_replay_unless_given_a_file(
    run: Callable[[Path | None], None],
    tmp_path: Path,
    env_state: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(None)
    assert not env_state.exists()
    given = tmp_path / "given" / "state.json"
    run(given)
    assert given.exists() and not env_state.exists()
