"""Outputs that were once judged healthy when the node was not (docs/diagnostics.md, "What is
never OK"): each case is a committed fixture or a small inline document, with the exit code,
severity, action and GPU the judgement must name."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sre_tools.diag import dcgm
from sre_tools.diag.model import GpuInfo, Inventory, Kind
from sre_tools.health.model import Action, Finding, Severity
from tests.conftest import CliResult
from tests.diag.conftest import FIXTURES, HGX

Sre = Callable[..., CliResult]
SERIALS = [str(1752624007973 + 17 * i) for i in range(8)]


def _dcgm(name: str, inventory: Inventory | None = None, rc: int = 0) -> list[Finding]:
    out = dcgm.parse(json.loads((FIXTURES / name).read_text()), name)
    return dcgm.judge(out, inventory or Inventory(), rc=rc)


def _problems(findings: list[Finding]) -> list[tuple[str, int | None, Severity, Action]]:
    return [
        (f.check, None if f.gpu is None else f.gpu.index, f.severity, f.action)
        for f in findings
        if f.severity in (Severity.WARN, Severity.CRIT, Severity.UNKNOWN)
    ]


# (fixture, dcgmi exit status, problems)
DCGM_EXIT_CASES = [
    # DCGM_ST_NVVS_ISOLATE_ERROR with every result passing: drain, never UNKNOWN-and-no-action.
    ("dcgm/level2-pass.json", 205,
     [("diag.dcgm.exit_status", None, Severity.CRIT, Action.DRAIN_AND_RESET)]),
    # The NVSwitch error (summary only) explains the isolate status: one node-level CRIT.
    ("dcgm/level2-nvswitch-fatal-node.json", 205,
     [("diag.dcgm.pcie", None, Severity.CRIT, Action.CONTACT_SUPPORT)]),
    # DCGM_ST_NVVS_ERROR with nothing failed stays UNKNOWN (no result to act on).
    ("dcgm/level2-pass.json", 226,
     [("diag.dcgm.exit_status", None, Severity.UNKNOWN, Action.NONE)]),
]  # fmt: skip


@pytest.mark.parametrize(("fixture", "rc", "problems"), DCGM_EXIT_CASES)
def test_dcgm_exit_status(
    fixture: str, rc: int, problems: list[tuple[str, int | None, Severity, Action]]
) -> None:
    assert _problems(_dcgm(fixture, rc=rc)) == problems


def test_summary_error_of_the_node_is_judged_beside_a_failing_gpu() -> None:
    # A GPU failed the test and the summary also holds an NVSwitch error of its own: both.
    doc = json.loads((FIXTURES / "dcgm/level2-pcie-fail-gpu5.json").read_text())
    for cat in doc["DCGM Diagnostic"]["test_categories"]:
        for test in cat["tests"]:
            if test["name"] == "pcie":
                test["test_summary"]["warnings"].append(
                    {
                        "error_id": 15,
                        "error_category": 12,
                        "error_severity": 2,
                        "warning": "Detected fatal errors on NvSwitch 0 link 4",
                    }
                )
    findings = dcgm.judge(dcgm.parse(doc, "x"), Inventory())
    assert _problems(findings) == [
        ("diag.dcgm.pcie", 5, Severity.CRIT, Action.CHECK_MECHANICALS),
        ("diag.dcgm.pcie", None, Severity.CRIT, Action.CONTACT_SUPPORT),
    ]
    (node,) = [f for f in findings if f.gpu is None and f.severity is Severity.CRIT]
    assert "NvSwitch 0 link 4" in node.summary
    assert [e["error_id"] for e in node.evidence["errors"]] == [15]  # not GPU 5's error too


def test_a_gpu_nvml_lists_but_dcgm_omits_is_unknown() -> None:
    # No entity_groups (an older or trimmed output): NVML's GPUs are what the run should cover.
    doc = json.loads((FIXTURES / "dcgm/level2-gpu3-absent.json").read_text())
    del doc["entity_groups"]
    out = dcgm.parse(doc, "x")
    inventory = Inventory(tuple(GpuInfo(i, f"GPU-{i}", SERIALS[i]) for i in range(8)))
    problems = _problems(dcgm.judge(out, inventory))
    assert problems == [("diag.dcgm.not_run", 3, Severity.UNKNOWN, Action.NONE)]


def test_a_gpu_missing_from_one_test_only_names_that_test() -> None:
    doc = json.loads((FIXTURES / "dcgm/level2-pass.json").read_text())
    for cat in doc["DCGM Diagnostic"]["test_categories"]:
        for test in cat["tests"]:
            if test["name"] == "memory":
                test["results"] = [r for r in test["results"] if r["entity_id"] != 6]
    findings = dcgm.judge(dcgm.parse(doc, "x"), Inventory())
    assert _problems(findings) == [("diag.dcgm.memory", 6, Severity.UNKNOWN, Action.NONE)]
    (f,) = [f for f in findings if f.severity is Severity.UNKNOWN]
    assert "no result for memory" in f.summary and f.evidence["serial"] == SERIALS[6]


def test_dcgm_entity_is_matched_to_nvml_by_serial() -> None:
    # NVML's index 3 is DCGM's entity 5 here (and the other way round): the memory failure on
    # DCGM entity 3 is NVML's GPU 5, named with NVML's UUID and the one serial both agree on.
    gpus = [GpuInfo(i, f"GPU-nvml-{i}", SERIALS[i]) for i in range(8)]
    gpus[3], gpus[5] = GpuInfo(3, "GPU-nvml-3", SERIALS[5]), GpuInfo(5, "GPU-nvml-5", SERIALS[3])
    findings = _dcgm("dcgm/level2-memory-fail-gpu3.json", Inventory(tuple(gpus)))
    (bad,) = [f for f in findings if f.severity is Severity.CRIT]
    assert (bad.gpu.index, bad.gpu.uuid) == (5, "GPU-nvml-5")
    assert bad.evidence["serial"] == SERIALS[3]
    assert bad.evidence["dcgm_entity_id"] == 3
    assert not [f for f in findings if f.check == "diag.dcgm.identity"]


def test_dcgm_serial_no_nvml_gpu_has_is_unknown_with_both_identities() -> None:
    gpus = tuple(GpuInfo(i, f"GPU-nvml-{i}", f"NVML-SERIAL-{i}") for i in range(8))
    findings = _dcgm("dcgm/level2-memory-fail-gpu3.json", Inventory(gpus))
    identity = [f for f in findings if f.check == "diag.dcgm.identity"]
    assert len(identity) == 8 and all(f.severity is Severity.UNKNOWN for f in identity)
    assert identity[3].evidence["dcgm_serial"] == SERIALS[3]
    assert identity[3].evidence["nvml"]["serial"] == "NVML-SERIAL-3"
    (bad,) = [f for f in findings if f.severity is Severity.CRIT]
    # DCGM's identity only: NVML's UUID is not attached to a GPU it may not be.
    assert (bad.gpu.index, bad.gpu.uuid, bad.evidence["serial"]) == (3, "", SERIALS[3])


# --- sre diag import / run (the command line) ---


def test_import_of_bandwidth_without_a_profile_is_unknown(sre: Sre) -> None:
    # The generic profile has no floors: a low GPU 2 imported without --profile was OK (exit 0).
    rc, out, err = sre(
        "diag", "import", str(FIXTURES / "nvbandwidth/h100-8-p2p-low-gpu2.json"), "--no-store",
        "--format", "nhc",
    )  # fmt: skip
    assert (rc, err) == (3, "")
    assert "profile generic has no floor" in out
    rc, out, _ = sre(
        "diag", "import", str(FIXTURES / "nvbandwidth/h100-8-p2p-low-gpu2.json"), "--no-store",
        "--profile", "h100-sxm-8", "--json",
    )  # fmt: skip
    assert rc == 2
    (bad,) = [f for f in json.loads(out)["findings"] if f["severity"] == "crit"]
    assert (bad["check"], bad["gpu"]["index"], bad["action"]) == (
        "diag.nvbandwidth.p2p_read",
        2,
        "contact_support",
    )


def _without_gpu(tmp_path: Path, index: int) -> Path:
    data = json.loads(HGX.read_text())
    data["devices"] = [d for d in data["devices"] if d["index"] != index]
    path = tmp_path / "hgx-7.json"
    path.write_text(json.dumps(data))
    return path


def test_run_on_an_hgx_board_that_lost_a_gpu_is_crit(
    sre: Sre, tool_bin: Path, tmp_path: Path
) -> None:
    # NVML shows 7 GPUs: the profile is still h100-sxm-8, and the missing GPU is CRIT.
    rc, out, err = sre(
        "diag", "run", "--replay", str(_without_gpu(tmp_path, 7)), "--no-store", "--node",
        "hgx-h100-8", "--json",
    )  # fmt: skip
    assert rc == 2, err
    data = json.loads(out)
    assert data["action"] == "power_cycle"
    (count,) = [f for f in data["findings"] if f["check"] == "diag.gpu_count"]
    assert count["severity"] == "crit"
    assert count["summary"].startswith("7 of 8 expected GPUs")
    assert count["evidence"]["profile"] == "h100-sxm-8"


_ENV_TOOL = """#!{python}
import json, os, sys
with open({env_file!r}, "w") as fh:
    json.dump({{k: v for k, v in os.environ.items() if "DEVICE" in k}}, fh)
with open({fixture!r}, "rb") as fh:
    sys.stdout.buffer.write(fh.read())
"""


def test_tools_see_the_whole_node_whatever_the_callers_device_selection(
    sre: Sre, tool_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inside a Slurm step CUDA_VISIBLE_DEVICES=4,5 makes CUDA device 0 physical GPU 4: the
    # findings would name the wrong GPU. The tools run without it.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "4,5")
    env_file = tmp_path / "env.json"
    script = tool_bin / "nvbandwidth"
    script.write_text(
        _ENV_TOOL.format(
            python=sys.executable,
            env_file=str(env_file),
            fixture=str(FIXTURES / "nvbandwidth/h100-8-pass.json"),
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    rc, _, err = sre(
        "diag", "run", "--replay", str(HGX), "--no-store", "--node", "hgx-h100-8", "--no-dcgm",
        "--nvbandwidth", "--json",
    )  # fmt: skip
    assert rc == 0, err
    assert json.loads(env_file.read_text()) == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def test_tool_env_drops_device_selection_for_every_kind() -> None:
    from sre_tools.diag.runner import tool_env

    env = {"CUDA_VISIBLE_DEVICES": "1", "NVIDIA_VISIBLE_DEVICES": "all", "PATH": "/bin"}
    assert tool_env(env, Kind.DCGM) == {"PATH": "/bin"}
    assert tool_env(env, Kind.NCCL) == {"PATH": "/bin", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


@pytest.mark.parametrize(
    ("fixture", "severity", "gpu"),
    [
        ("nvbandwidth/h100-8-p2p-low-gpu2.json", Severity.OK, None),  # no floor: not judged
        ("nvbandwidth/h100-8-p2p-na-gpu2.json", Severity.CRIT, 2),  # no peer access: judged
    ],
    ids=["low-not-judged", "no-access-crit"],
)
def test_a100_board_requires_peer_access_without_a_bandwidth_floor(
    fixture: str, severity: Severity, gpu: int | None
) -> None:
    from sre_tools.diag.formats import judge_text
    from sre_tools.health.policy import load_policy

    run = judge_text(
        (FIXTURES / fixture).read_text(),
        fixture,
        policy=load_policy("a100-sxm-8"),
        inventory=Inventory(),
        node="n",
        started=0.0,
        ended=0.0,
        label="x",
    )
    peer = [f for f in run.findings if f.check == "diag.nvbandwidth.p2p_read"]
    worst = max(peer, key=lambda f: f.severity.rank)
    assert worst.severity is severity
    assert (worst.gpu.index if worst.gpu and severity is Severity.CRIT else None) == gpu


def test_dcgm_3x_json_is_refused_not_judged(sre: Sre, tmp_path: Path) -> None:
    # DCGM 3.3's layout (results keyed by gpu_id), a failing GPU 1 in it: exit 3, never judged.
    doc = {"DCGM GPU Diagnostic": {"version": "3.3.3", "test_categories": [
        {"category": "Hardware", "tests": [{"name": "GPU Memory", "results": [
            {"gpu_id": "0", "status": "Pass"}, {"gpu_id": "1", "status": "Fail"}]}]}],
        "GPU Device Serials": {"0": "1654922006536", "1": "1654922006537"}}}  # fmt: skip
    path = tmp_path / "dcgm33.json"
    path.write_text(json.dumps(doc))
    rc, out, err = sre("diag", "import", str(path), "--no-store")
    assert (rc, out) == (3, "")
    assert "DCGM 3.x JSON ('DCGM GPU Diagnostic') is not supported" in err


def test_history_never_stores_nvmls_identity_for_a_gpu_dcgm_names_otherwise(
    tmp_path: Path,
) -> None:
    from sre_tools.diag import history
    from sre_tools.store import Store

    gpus = tuple(
        GpuInfo(i, f"GPU-nvml-{i}", f"NVML-SERIAL-{i}", vbios_version="NVML-VBIOS")
        for i in range(8)
    )
    inventory = Inventory(gpus)
    out = dcgm.parse(json.loads((FIXTURES / "dcgm/level2-memory-fail-gpu3.json").read_text()), "x")
    run = dcgm.to_run(out, inventory, node="n", started=1.0, ended=2.0, source="x")
    with Store(tmp_path / "s.db") as store:
        history.record(store, [run])
        rows = history.history(store, serial=SERIALS[3])
    (crit,) = [r for r in rows if r["severity"] == "crit"]
    assert (crit["gpu_index"], crit["gpu_serial"], crit["gpu_uuid"]) == (3, SERIALS[3], "")
    assert crit["vbios_version"] == ""


def test_peers_of_the_blamed_gpu_are_ok_on_their_own_links() -> None:
    # GPU 2 has no peer access: GPU 0's OK finding reports its worst *other* link, not GPU 2's N/A.
    from sre_tools.diag.formats import judge_text
    from sre_tools.health.policy import load_policy

    name = "nvbandwidth/h100-8-p2p-na-gpu2.json"
    run = judge_text(
        (FIXTURES / name).read_text(),
        name,
        policy=load_policy("h100-sxm-8"),
        inventory=Inventory(),
        node="n",
        started=0.0,
        ended=0.0,
        label="x",
    )
    peer = {
        f.gpu.index: f for f in run.findings if f.check == "diag.nvbandwidth.p2p_read" and f.gpu
    }
    assert peer[2].severity is Severity.CRIT
    assert len(peer[2].evidence["pairs"]) == 14
    others = [peer[g] for g in range(8) if g != 2]
    assert all(f.severity is Severity.OK for f in others)
    assert all(f.evidence["worst_peer"] != 2 and f.evidence["gbps"] >= 335 for f in others)


def test_an_imported_level_3_run_missing_a_level_3_test_is_unknown() -> None:
    doc = json.loads((FIXTURES / "dcgm/level3-pass.json").read_text())
    for cat in doc["DCGM Diagnostic"]["test_categories"]:
        cat["tests"] = [t for t in cat["tests"] if t["name"] != "targeted_power"]
    run = dcgm.to_run(dcgm.parse(doc, "x"), Inventory(), node="n", started=0, ended=0, source="x")
    assert run.level == 3
    assert _problems(list(run.findings)) == [
        ("diag.dcgm.targeted_power", None, Severity.UNKNOWN, Action.NONE)
    ]


def test_multinode_all_reduce_with_a_node_short_of_gpus_is_unknown() -> None:
    from sre_tools.diag import nccl

    text = (FIXTURES / "nccl/2x-h100-8-ndr.txt").read_text()
    lines = [line for line in text.splitlines() if "Rank 15 " not in line]  # hgx-h100-9: 7 ranks
    out = nccl.parse("\n".join(lines) + "\n", "x")
    (f,) = nccl.judge(out, {"large_message_bytes": 2**34, "multinode_busbw_per_nic_min_gbps": 46,
                            "nics_per_node": 8}, "h100-sxm-8", 8)  # fmt: skip
    assert f.severity is Severity.UNKNOWN
    assert "hgx-h100-9 ran on 7 of 8 GPUs" in f.summary


def test_a_gpu_seen_only_in_a_later_test_is_missing_from_the_earlier_ones() -> None:
    # GPU 8 is in no entity list and only in the last test: software and pcie did not run on it.
    doc = json.loads((FIXTURES / "dcgm/level2-pass.json").read_text())
    for cat in doc["DCGM Diagnostic"]["test_categories"]:
        for test in cat["tests"]:
            if test["name"] == "memory":
                test["results"].append(dict(test["results"][0], entity_id=8))
    problems = _problems(dcgm.judge(dcgm.parse(doc, "x"), Inventory()))
    assert problems == [
        ("diag.dcgm.software", 8, Severity.UNKNOWN, Action.NONE),
        ("diag.dcgm.pcie", 8, Severity.UNKNOWN, Action.NONE),
    ]
