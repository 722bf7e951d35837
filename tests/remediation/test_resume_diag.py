"""The resume gate after a GPU reset: a passing DCGM diagnostic of the configured level, finished
after the reset (``resume_diag_level_after_reset``, 2 by default); every diagnostic offered must
pass. Engine over the fake Slurm, the CLI over it, and the configuration's validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.health.model import Action, Severity
from sre_tools.remediation.config import RemediationConfig, load_config_text
from sre_tools.remediation.model import (
    DiagEvidence,
    Outcome,
    RemediationRequest,
    diag_from_dict,
    parse_diag_json,
)
from tests.helpers.reports import diag_run, node_report
from tests.remediation.conftest import RigFactory

NODE = "gpu05"


def reset_request(node: str = NODE, action: Action = Action.RESET_GPU) -> RemediationRequest:
    return RemediationRequest(
        node=node,
        action=action,
        event_id=f"ev-{node}-{action.value}",
        reason="ECC uncorrectable",
        source="test",
        checks=("ecc.uncorrected_volatile",),
        gpus=(3,),
    )


def evidence(*runs: dict[str, Any]) -> tuple[DiagEvidence, ...]:
    return tuple(diag_from_dict(r) for r in runs)


def reset_and_settle(rig: Any) -> float:
    d = rig.engine.handle(reset_request())
    assert d.code == "drained_and_acted", d
    reset_at = rig.clock()
    rig.clock.advance(120)
    return float(reset_at)


def test_resume_after_a_reset_is_refused_without_a_diagnostic(make_rig: RigFactory) -> None:
    rig = make_rig()
    reset_at = reset_and_settle(rig)
    d = rig.engine.try_resume(NODE, node_report(NODE, rig.clock()))
    assert (d.outcome, d.code) == (Outcome.REFUSED, "diag_required")
    assert "reset_gpu ran on gpu05" in d.message
    assert "passing level 2 DCGM diagnostic (sre diag run --level 2)" in d.message
    assert "none was given" in d.message
    assert rig.slurm.nodes[NODE].drain
    # The audit log says why.
    last = rig.audit()[-1]
    assert (last["outcome"], last["code"], last["source"]) == ("refused", "diag_required", "resume")
    assert "resume_diag_level_after_reset" in last["message"]
    assert reset_at < rig.clock()


@pytest.mark.parametrize(
    ("runs", "code", "words"),
    [
        pytest.param(
            [("gpu05", -60, 2, "ok")], "diag_required", "finished before it", id="before-reset"
        ),
        pytest.param([("gpu05", 10, 1, "ok")], "diag_required", "is level 1", id="level-1"),
        pytest.param(
            [("gpu05", 10, 2, "skipped")], "diag_required", "tested nothing", id="all-skipped"
        ),
        pytest.param(
            [("gpu05", 10, 3, "crit")], "diag_failed", "dcgm.memory is crit", id="failing"
        ),
        pytest.param([("gpu06", 10, 2, "ok")], "diag_mismatch", "'gpu06'", id="other-node"),
        # Finished an hour after now: "after the reset" must not be met by a date from the future.
        pytest.param(
            [("gpu05", 120 + 3600, 2, "ok")], "future_report", "in the future", id="from-the-future"
        ),
        pytest.param(
            [("gpu05", 10, 2, "ok"), ("gpu05", 12, 3, "warn")],
            "diag_failed",
            "level 3 diagnostic of gpu05 did not pass",
            id="one-of-two-fails",
        ),
    ],
)
def test_resume_after_a_reset_refuses_weak_evidence(
    make_rig: RigFactory, runs: list[tuple[str, float, int, str]], code: str, words: str
) -> None:
    rig = make_rig()
    reset_at = reset_and_settle(rig)
    diags = evidence(*(diag_run(n, reset_at + dt, lvl, severity=s) for n, dt, lvl, s in runs))
    d = rig.engine.try_resume(NODE, node_report(NODE, rig.clock()), diags)
    assert (d.outcome, d.code) == (Outcome.REFUSED, code), d
    assert words in d.message, d.message
    assert rig.slurm.nodes[NODE].drain


@pytest.mark.parametrize("level", [2, 3, 4])
def test_resume_after_a_reset_with_a_passing_diagnostic(make_rig: RigFactory, level: int) -> None:
    rig = make_rig()
    reset_at = reset_and_settle(rig)
    diags = evidence(diag_run(NODE, reset_at + 60, level))
    d = rig.engine.try_resume(NODE, node_report(NODE, rig.clock()), diags)
    assert (d.outcome, d.code) == (Outcome.ACTED, "resumed"), d
    assert not rig.slurm.nodes[NODE].drain


def test_the_requirement_follows_the_setting(make_rig: RigFactory) -> None:
    rig = make_rig(resume_diag_level_after_reset=3)
    reset_at = reset_and_settle(rig)
    level2 = evidence(diag_run(NODE, reset_at + 60, 2))
    d = rig.engine.try_resume(NODE, node_report(NODE, rig.clock()), level2)
    assert d.code == "diag_required" and "passing level 3" in d.message
    level3 = evidence(diag_run(NODE, reset_at + 60, 3))
    assert rig.engine.try_resume(NODE, node_report(NODE, rig.clock()), level3).code == "resumed"


def test_off_the_health_report_alone_resumes_after_a_reset(make_rig: RigFactory) -> None:
    rig = make_rig(resume_diag_level_after_reset=0)
    reset_and_settle(rig)
    assert rig.engine.try_resume(NODE, node_report(NODE, rig.clock())).code == "resumed"


def test_no_reset_no_diagnostic_needed_but_a_given_one_must_pass(make_rig: RigFactory) -> None:
    """A hands-on drain (no reset ran) resumes on the health report; a failing diagnostic offered
    with it still blocks (acceptance passes its level 3 this way)."""
    rig = make_rig()
    d = rig.engine.handle(reset_request("gpu07", Action.CHECK_MECHANICALS))
    assert d.code == "drained_notify"
    rig.clock.advance(60)
    now = rig.clock()
    failing = evidence(diag_run("gpu07", now, 3, severity="crit"))
    assert rig.engine.try_resume("gpu07", node_report("gpu07", now), failing).code == (
        "diag_failed"
    )
    assert rig.engine.try_resume("gpu07", node_report("gpu07", now)).code == "resumed"


def test_a_reset_not_yet_run_asks_for_nothing_more(make_rig: RigFactory) -> None:
    """Drained for a reset while jobs still ran: the reset never ran, so no diagnostic is due."""
    rig = make_rig()
    rig.slurm.nodes[NODE].state = "MIXED"  # jobs running
    d = rig.engine.handle(reset_request())
    assert d.code == "action_pending", d
    rig.slurm.nodes[NODE].state = "IDLE"
    rig.clock.advance(10)
    assert rig.engine.try_resume(NODE, node_report(NODE, rig.clock())).code == "resumed"


# --- the configuration ----------------------------------------------------------------------------


def test_setting_defaults_to_level_2() -> None:
    assert RemediationConfig().resume_diag_level_after_reset == 2


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("resume_diag_level_after_reset: 5", "must be a DCGM run level 1-4, or 0"),
        ("resume_diag_level_after_reset: -1", "must be a DCGM run level 1-4, or 0"),
        ("resume_diag_level_after_reset: true", "must be a number"),
        ("resume_diag_level_after_reset: '2'", "must be an integer"),
    ],
)
def test_setting_is_validated(text: str, words: str) -> None:
    with pytest.raises(ValidationError) as err:
        load_config_text(text, "remediation.yaml")
    message = str(err.value)
    assert message.startswith("remediation.yaml: resume_diag_level_after_reset: "), message
    assert words in message
    assert "\n" not in message


# --- the diagnostic's JSON ------------------------------------------------------------------------


def test_diag_json_shapes(tmp_path: Path) -> None:
    one = diag_run(NODE, 1_800_000_000.0, 2)
    nvb = diag_run(NODE, 1_800_000_100.0, kind="nvbandwidth")
    (single,) = parse_diag_json(json.dumps(one))
    assert (single.node, single.kind, single.level, single.ran) == (NODE, "dcgm", 2, True)
    listed = parse_diag_json(json.dumps([one, nvb]))
    assert [d.kind for d in listed] == ["dcgm", "nvbandwidth"]
    wrapped = parse_diag_json(json.dumps({"runs": [one, nvb]}))
    assert [d.level for d in wrapped] == [2, 0]


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ("[]", "non-empty list of runs"),
        ('{"kind": "dcgm"}', "schema_version: missing"),
        ('{"runs": [{"level": 2}]}', "runs[0].kind: missing or invalid"),
        ("not json", "diag.json"),
    ],
)
def test_diag_json_errors_name_the_field(doc: str, words: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_diag_json(doc, source="diag.json")
    assert str(err.value).startswith("diag.json"), str(err.value)
    assert words in str(err.value), str(err.value)


def test_diag_level_out_of_range_is_refused() -> None:
    bad = {**diag_run(NODE, 1.0), "level": 7}
    with pytest.raises(ValidationError, match=r"level: must be an integer 0\.\.4"):
        diag_from_dict(bad)


def test_severity_is_the_models() -> None:
    """The evidence judges with the health model's severities, not a copy of them."""
    (d,) = evidence(diag_run(NODE, 1.0, severity="warn"))
    problem = d.problem
    assert problem is not None and problem.severity is Severity.WARN


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_resume_reads_diag_files_and_names_a_bad_one(sre: Any, tmp_path: Path) -> None:
    """``sre remediation resume --diag FILE``: a bad file is an input error (exit 2, one line
    naming the file and the field), before Slurm is asked anything."""
    rep = tmp_path / "report.json"
    rep.write_text(json.dumps(node_report(NODE, 1_800_000_000.0).to_dict()), encoding="utf-8")
    bad = tmp_path / "diag.json"
    bad.write_text(json.dumps({**diag_run(NODE, 1.0), "level": "two"}), encoding="utf-8")
    code, out, err = sre(
        "remediation", "resume", "--node", NODE, "--report", str(rep), "--diag", str(bad)
    )
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"{bad}: level: must be an integer 0..4" in lines[0], err
    code, _, err = sre("remediation", "resume", "--node", NODE, "--report", "-", "--diag", "-")
    assert code == 2 and "--diag: stdin (-) can feed only one of --report and --diag" in err


# --- from the store ---------------------------------------------------------------------------


def stored(store: Any, node: str, ended: float, level: int = 2, severity: str = "ok") -> None:
    """Record one DCGM run as `sre diag run` records it (sre_tools.diag.history.record)."""
    from sre_tools.diag import history
    from sre_tools.diag.model import DiagRun, Kind
    from sre_tools.health.model import Finding as F
    from sre_tools.health.model import GpuRef

    findings = [F("diag.dcgm.memory", Severity.OK, "GPU 3 passed memory", Action.NONE, GpuRef(3))]
    if severity != "ok":
        findings.append(
            F(
                "diag.dcgm.memory",
                Severity(severity),
                "GPU 3 failed memory: Found 12 faulty memory elements on GPU 3",
                Action.RMA_CANDIDATE,
                GpuRef(3),
            )
        )
    run = DiagRun(
        Kind.DCGM, level, node, ended - 100, ended, tuple(findings), f"dcgmi diag -r {level}"
    )
    history.record(store, [run])


@pytest.mark.parametrize(
    ("runs", "code", "words"),
    [
        pytest.param([(60, 2, "ok")], "resumed", "", id="passing-since-reset"),
        pytest.param([(60, 3, "ok")], "resumed", "", id="higher-level"),
        pytest.param([(60, 2, "ok"), (90, 2, "crit")], "diag_failed", "", id="newest-fails"),
        pytest.param(
            [(-60, 2, "ok")],
            "diag_required",
            "nor found in the diagnostic store",
            id="before-reset",
        ),
        pytest.param(
            [(60, 1, "ok")], "diag_required", "nor found in the diagnostic store", id="level-1-only"
        ),
    ],
)
def test_resume_looks_the_diagnostic_up_in_the_store(
    make_rig: RigFactory,
    tmp_path: Path,
    runs: list[tuple[float, int, str]],
    code: str,
    words: str,
) -> None:
    from sre_tools.remediation.evidence import store_lookup
    from sre_tools.store import Store

    rig = make_rig()
    reset_at = reset_and_settle(rig)
    with Store(tmp_path / "diag.db") as store:
        for dt, level, severity in runs:
            stored(store, NODE, reset_at + dt, level, severity)
        rig.engine.diag_lookup = store_lookup(store)
        d = rig.engine.try_resume(NODE, node_report(NODE, rig.clock()))
    assert d.code == code, d
    if code == "diag_failed":
        assert "level 2 diagnostic of gpu05 did not pass: diag.dcgm.memory is crit" in d.message
    elif code == "diag_required":
        assert words in d.message, d.message


def test_a_passing_diagnostic_given_needs_no_lookup(make_rig: RigFactory) -> None:
    rig = make_rig()
    reset_at = reset_and_settle(rig)
    asked: list[tuple[str, int, float | None]] = []

    def lookup(node: str, level: int, since: float | None) -> None:
        asked.append((node, level, since))

    rig.engine.diag_lookup = lookup
    given = evidence(diag_run(NODE, reset_at + 30, 2))
    assert rig.engine.try_resume(NODE, node_report(NODE, rig.clock()), given).code == "resumed"
    assert asked == []


# --- a node a diagnostic drained (the Slurm hooks) ---------------------------------------------


@pytest.mark.parametrize(
    ("reason", "level"),
    [
        ("sre: diag ev=prolog:gpu07:12: level 1 CRIT: GPU 0: persistence mode off", 1),
        ("sre: diag ev=epilog:gpu07:13: level 2 CRIT: GPU 3: memory", 2),
        ("sre: diag ev=prolog:gpu07:12: acceptance failed: WARN diag.dcgm.thermal", 1),
        ("sre: drain ev=manual:gpu07:ab: acceptance: DCGM level 3", 0),
        ("sre: reset_gpu ev=x: level 2 CRIT", 0),
        ("diag by hand: level 2 CRIT", 0),
        (None, 0),
    ],
)
def test_diag_level_in_reason(reason: str | None, level: int) -> None:
    from sre_tools.remediation.guardrails import diag_level_in_reason

    assert diag_level_in_reason(reason, "sre:") == level


@pytest.mark.parametrize(
    ("reason", "given", "code"),
    [
        pytest.param("level 1 CRIT: GPU 0: persistence mode off", None, "diag_required", id="none"),
        pytest.param("level 1 CRIT: GPU 0: persistence mode off", 1, "resumed", id="level-1"),
        pytest.param("level 2 CRIT: GPU 3: memory", 1, "diag_required", id="epilog-needs-2"),
        pytest.param("level 2 CRIT: GPU 3: memory", 3, "resumed", id="acceptance-level-3"),
    ],
)
def test_a_node_a_diagnostic_drained_resumes_only_on_a_passing_one(
    make_rig: RigFactory, reason: str, given: int | None, code: str
) -> None:
    rig = make_rig()
    node = rig.slurm.nodes["gpu07"]
    node.drain, node.reason = True, f"sre: diag ev=prolog:gpu07:12: {reason}"
    diags = () if given is None else evidence(diag_run("gpu07", rig.clock(), given))
    d = rig.engine.try_resume("gpu07", node_report("gpu07", rig.clock()), diags)
    assert d.code == code, d
    if code == "diag_required":
        assert "gpu07 was drained by a failed diagnostic" in d.message, d.message
    assert rig.engine.resume_diag_level("gpu07") == (0 if code == "resumed" else int(reason[6]))
