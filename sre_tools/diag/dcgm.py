"""``dcgmi diag -r N -j``: parse its JSON and judge each test result per GPU.

The format (tests/fixtures/diag/README.md cites the source): an object with ``"DCGM Diagnostic"``
holding ``test_categories`` (``category``, ``tests``: ``name``, ``results`` per entity with
``status`` Pass / Skip / Warn / Fail / Not Run and ``warnings`` carrying ``error_id``,
``error_category``, ``error_severity``), or a ``runtime_error``; ``entity_groups`` list each
GPU's ``serial_num``; ``metadata`` carries the DCGM and driver versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sre_tools.diag.model import DiagRun, GpuInfo, Inventory, Kind
from sre_tools.diag.outcome import DCGM_TIMEOUT_RC, ISOLATE_RC, check_id, dcgm_code
from sre_tools.exceptions import ValidationError
from sre_tools.health.model import Action, Finding, GpuRef, Severity

ROOT = "DCGM Diagnostic"
ROOT_3X = "DCGM GPU Diagnostic"  # DCGM 3.x: not supported (formats.detect refuses it)
STATUSES = {
    "Pass": Severity.OK,
    "Skip": Severity.SKIPPED,
    "Not Run": Severity.SKIPPED,
    "Warn": Severity.WARN,
    "Fail": Severity.CRIT,
}

# DCGM failure-reason codes (dcgmlib/dcgm_errors.h, dcgmError_t) -> the action they ask for.
ERROR_ACTIONS: dict[int, Action] = {
    3: Action.CHECK_MECHANICALS,  # DCGM_FR_PCI_REPLAY_RATE
    4: Action.DRAIN_AND_RESET,  # DCGM_FR_VOLATILE_DBE_DETECTED
    6: Action.DRAIN_AND_RESET,  # DCGM_FR_PENDING_PAGE_RETIREMENTS
    7: Action.RMA_CANDIDATE,  # DCGM_FR_RETIRED_PAGES_LIMIT
    8: Action.RMA_CANDIDATE,  # DCGM_FR_RETIRED_PAGES_DBE_LIMIT
    9: Action.CONTACT_SUPPORT,  # DCGM_FR_CORRUPT_INFOROM
    14: Action.CHECK_MECHANICALS,  # DCGM_FR_NVLINK_DOWN
    23: Action.REBOOT,  # DCGM_FR_DENYLISTED_DRIVER (nouveau loaded)
    25: Action.RESTART_APP,  # DCGM_FR_GRAPHICS_PROCESSES
    28: Action.RESTART_APP,  # DCGM_FR_BAD_CUDA_ENV
    29: Action.RESTART_APP,  # DCGM_FR_PERSISTENCE_MODE (start nvidia-persistenced)
    30: Action.CHECK_MECHANICALS,  # DCGM_FR_LOW_BANDWIDTH (pcie test)
    45: Action.CHECK_MECHANICALS,  # DCGM_FR_PCIE_GENERATION
    46: Action.CHECK_MECHANICALS,  # DCGM_FR_PCIE_WIDTH
    51: Action.DRAIN_AND_RESET,  # DCGM_FR_CUDA_API (e.g. cuInit failed: "Reset GPU", its NEXT)
    52: Action.RMA_CANDIDATE,  # DCGM_FR_FAULTY_MEMORY
    57: Action.RMA_CANDIDATE,  # DCGM_FR_CUDA_DBE
    58: Action.RMA_CANDIDATE,  # DCGM_FR_MEMORY_MISMATCH
    80: Action.RMA_CANDIDATE,  # DCGM_FR_ROW_REMAP_FAILURE
    81: Action.REBOOT,  # DCGM_FR_UNCONTAINED_ERROR (XID 95)
    83: Action.DRAIN_AND_RESET,  # DCGM_FR_DBE_PENDING_PAGE_RETIREMENTS
    84: Action.RMA_CANDIDATE,  # DCGM_FR_UNCORRECTABLE_ROW_REMAP
    85: Action.DRAIN_AND_RESET,  # DCGM_FR_PENDING_ROW_REMAP
    98: Action.CHECK_MECHANICALS,  # DCGM_FR_PCIE_H_REPLAY_VIOLATION
    99: Action.CHECK_MECHANICALS,  # DCGM_FR_GPU_EXPECTED_NVLINKS_UP
    101: Action.DRAIN_AND_RESET,  # DCGM_FR_XID_ERROR
    104: Action.CHECK_MECHANICALS,  # DCGM_FR_PCIE_REPLAY_VIOLATION
    107: Action.CHECK_MECHANICALS,  # DCGM_FR_PCIE_REPLAY_THRESHOLD_VIOLATION
    108: Action.RESTART_FABRIC_MANAGER,  # DCGM_FR_CUDA_FM_NOT_INITIALIZED
    112: Action.RESTART_FABRIC_MANAGER,  # DCGM_FR_FABRIC_MANAGER_TRAINING_ERROR
    120: Action.POWER_CYCLE,  # DCGM_FR_FALLEN_OFF_BUS
    125: Action.RESET_GPU,  # DCGM_FR_GPU_RECOVERY_RESET
    126: Action.REBOOT,  # DCGM_FR_GPU_RECOVERY_REBOOT
    128: Action.DRAIN_AND_RESET,  # DCGM_FR_GPU_RECOVERY_DRAIN_RESET
    132: Action.RMA_CANDIDATE,  # DCGM_FR_UNCORRECTABLE_ROW_REMAP_LIMIT
}
# Error categories (dcgmErrorCategory_t) for codes not listed above.
CATEGORY_ACTIONS: dict[int, Action] = {
    9: Action.CHECK_MECHANICALS,  # DCGM_FR_EC_HARDWARE_THERMAL (cooling)
    10: Action.RMA_CANDIDATE,  # DCGM_FR_EC_HARDWARE_MEMORY
    11: Action.CHECK_MECHANICALS,  # DCGM_FR_EC_HARDWARE_NVLINK
    12: Action.CONTACT_SUPPORT,  # DCGM_FR_EC_HARDWARE_NVSWITCH
    13: Action.CHECK_MECHANICALS,  # DCGM_FR_EC_HARDWARE_PCIE (reseat)
    14: Action.CHECK_MECHANICALS,  # DCGM_FR_EC_HARDWARE_POWER
}
# A failed test whose errors name nothing above: the action its test stands for.
TEST_ACTIONS: dict[str, Action] = {
    "memory": Action.RMA_CANDIDATE,
    "memtest": Action.RMA_CANDIDATE,
    "pcie": Action.CHECK_MECHANICALS,
}
ERROR_SEVERITY_MONITOR = 1  # DCGM_ERROR_MONITOR: can take work, watch it
ERROR_SEVERITY_RESET = 6  # DCGM_ERROR_RESET: drain and reset the GPU
ERROR_SEVERITY_ISOLATE = 2  # DCGM_ERROR_ISOLATE: the GPU cannot take work

# Which tests each run level adds (dcgmi diag -r 1..4), for imported files that do not say.
LEVEL_TESTS = (
    (4, {"memtest", "pulse_test", "eud", "cpu_eud"}),
    (3, {"diagnostic", "targeted_stress", "targeted_power", "memory_bandwidth", "sm_stress"}),
    (2, {"memory", "pcie"}),
)


# The tests each level must show (cumulative): nvvs/src/NvidiaValidationSuite.cpp (DCGM 4.6,
# ~1133-1190) adds software at every level, memory and pcie from NVVS_SUITE_MEDIUM (-r 2),
# diagnostic, memory_bandwidth, targeted_stress, targeted_power from NVVS_SUITE_LONG (-r 3) and
# memtest, pulse_test from NVVS_SUITE_XLONG (-r 4). The optional ones (eud, cpu_eud, nvbandwidth,
# nccl_tests, rist: installed or root only) are not required.
REQUIRED_TESTS: dict[int, tuple[str, ...]] = {
    1: ("software",),
    2: ("pcie", "memory"),
    3: ("diagnostic", "targeted_stress", "targeted_power", "memory_bandwidth"),
    4: ("memtest", "pulse_test"),
}


@dataclass(frozen=True)
class DcgmError:
    error_id: int
    category: int
    severity: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "error_id": self.error_id,
            "error_category": self.category,
            "error_severity": self.severity,
            "warning": self.message,
        }


@dataclass(frozen=True)
class EntityResult:
    group: str  # "GPU", "CPU", "" (the whole test)
    entity_id: int | None
    status: str
    errors: tuple[DcgmError, ...] = ()
    info: tuple[str, ...] = ()


@dataclass(frozen=True)
class DcgmTest:
    category: str
    name: str
    summary: str  # test_summary.status
    results: tuple[EntityResult, ...]
    summary_errors: tuple[DcgmError, ...] = ()


@dataclass(frozen=True)
class DcgmOutput:
    tests: tuple[DcgmTest, ...] = ()
    runtime_error: str | None = None
    serials: dict[int, str] = field(default_factory=dict)  # GPU entity id -> serial
    version: str = ""
    driver_version: str = ""
    gpu_entities: tuple[int, ...] = ()  # every GPU in entity_groups: the GPUs the run covered

    @property
    def level(self) -> int:
        names = {t.name for t in self.tests}
        for level, tests in LEVEL_TESTS:
            if names & tests:
                return level
        return 1


def _obj(value: Any, source: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError("expected an object", source=source, field=where)
    return value


def _list(value: Any, source: str, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError("expected a list", source=source, field=where)
    return value


def _str(value: Any, source: str, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(
            f"expected a string, got {type(value).__name__}", source=source, field=where
        )
    return value


# DCGM's ids, categories and severities are unsigned 32-bit at most: anything else is not DCGM's
# (and 2**64 would not even fit the store's integer columns).
_MAX_ID = 2**31 - 1


def _int(value: Any, source: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
        shown = f"{value!r:.40}"
        raise ValidationError(
            f"expected an integer from 0 to {_MAX_ID}, got {shown}", source=source, field=where
        )
    return value


def _errors(value: Any, source: str, where: str) -> tuple[DcgmError, ...]:
    out = []
    for i, raw in enumerate(_list(value, source, where)):
        at = f"{where}[{i}]"
        w = _obj(raw, source, at)
        out.append(
            DcgmError(
                _int(w.get("error_id"), source, f"{at}.error_id"),
                _int(w.get("error_category", 0), source, f"{at}.error_category"),
                _int(w.get("error_severity", 0), source, f"{at}.error_severity"),
                _str(w.get("warning", ""), source, f"{at}.warning"),
            )
        )
    return tuple(out)


def _status(value: Any, source: str, where: str) -> str:
    status = _str(value, source, where)
    if status not in STATUSES:
        raise ValidationError(
            f"unknown status {status!r} (expected one of {', '.join(STATUSES)})",
            source=source,
            field=where,
        )
    return status


def parse(data: Any, source: str) -> DcgmOutput:
    """The parsed JSON of ``dcgmi diag -j`` (see :func:`sre_tools.inputs.load_json`)."""
    doc = _obj(data, source, "(top level)")
    if "iterations" in doc:
        raise ValidationError(
            "output of several iterations (dcgmi diag --iterations) is not supported: "
            "import one iteration",
            source=source,
            field="iterations",
        )
    if ROOT not in doc:
        raise ValidationError(f"missing {ROOT!r}", source=source, field=ROOT)
    body = _obj(doc[ROOT], source, ROOT)
    meta = _obj(doc.get("metadata", {}), source, "metadata")
    version = str(meta.get("version") or body.get("version") or "")
    driver = str(meta.get("Driver Version Detected") or "")
    runtime = body.get("runtime_error")
    if runtime is not None:
        return DcgmOutput(
            runtime_error=_str(runtime, source, f"{ROOT}.runtime_error"), version=version
        )
    if "test_categories" not in body:
        raise ValidationError(
            "neither test_categories nor runtime_error", source=source, field=ROOT
        )
    serials: dict[int, str] = {}
    entities: list[int] = []
    for gi, raw_group in enumerate(_list(doc.get("entity_groups"), source, "entity_groups")):
        at = f"entity_groups[{gi}]"
        group = _obj(raw_group, source, at)
        if group.get("entity_group") != "GPU":
            continue
        for ei, raw_ent in enumerate(_list(group.get("entities"), source, f"{at}.entities")):
            ent = _obj(raw_ent, source, f"{at}.entities[{ei}]")
            eid = _int(ent.get("entity_id"), source, f"{at}.entities[{ei}].entity_id")
            entities.append(eid)
            if ent.get("serial_num") is not None:
                serials[eid] = _str(ent["serial_num"], source, f"{at}.entities[{ei}].serial_num")
    tests = []
    cats = _list(body["test_categories"], source, f"{ROOT}.test_categories")
    for ci, raw_cat in enumerate(cats):
        cat_at = f"{ROOT}.test_categories[{ci}]"
        cat = _obj(raw_cat, source, cat_at)
        category = _str(cat.get("category", ""), source, f"{cat_at}.category")
        for ti, raw_test in enumerate(_list(cat.get("tests"), source, f"{cat_at}.tests")):
            at = f"{cat_at}.tests[{ti}]"
            test = _obj(raw_test, source, at)
            name = _str(test.get("name"), source, f"{at}.name")
            summary = _obj(test.get("test_summary", {}), source, f"{at}.test_summary")
            results = []
            for ri, raw_res in enumerate(_list(test.get("results"), source, f"{at}.results")):
                rat = f"{at}.results[{ri}]"
                res = _obj(raw_res, source, rat)
                raw_eid = res.get("entity_id")
                results.append(
                    EntityResult(
                        _str(res.get("entity_group", ""), source, f"{rat}.entity_group"),
                        None if raw_eid is None else _int(raw_eid, source, f"{rat}.entity_id"),
                        _status(res.get("status"), source, f"{rat}.status"),
                        _errors(res.get("warnings"), source, f"{rat}.warnings"),
                        tuple(str(x) for x in _list(res.get("info"), source, f"{rat}.info")),
                    )
                )
            sstatus = summary.get("status")
            tests.append(
                DcgmTest(
                    category,
                    name,
                    ""
                    if sstatus is None
                    else _status(sstatus, source, f"{at}.test_summary.status"),
                    tuple(results),
                    _errors(summary.get("warnings"), source, f"{at}.test_summary.warnings"),
                )
            )
    return DcgmOutput(tuple(tests), None, serials, version, driver, tuple(sorted(set(entities))))


def _name(test: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", test.lower()).strip("_") or "unnamed"


def _action(test: str, errors: tuple[DcgmError, ...]) -> Action:
    best: Action | None = None
    for e in errors:
        act = ERROR_ACTIONS.get(e.error_id) or CATEGORY_ACTIONS.get(e.category)
        if act is None and e.severity in (ERROR_SEVERITY_RESET, ERROR_SEVERITY_ISOLATE):
            act = Action.DRAIN_AND_RESET
        if act is not None and (best is None or act.rank > best.rank):
            best = act
    if best is not None:
        return best
    return TEST_ACTIONS.get(test, Action.CONTACT_SUPPORT)


def _summary(
    where: str, test: DcgmTest, status: str, errors: tuple[DcgmError, ...], severity: Severity
) -> str:
    verb = {"Pass": "passed", "Warn": "warned in", "Fail": "failed", "Skip": "skipped"}.get(
        status, "did not run"
    )
    if status == "Fail" and severity is Severity.WARN:
        verb = "warned in"
    text = f"{where} {verb} {test.name}"
    if errors:
        first = errors[0]
        text += f": {' '.join(first.message.split())} (DCGM error {first.error_id})"
        if len(errors) > 1:
            text += f" and {len(errors) - 1} more"
    return text


# The error ids that make a "Fail" a warning. dcgmi's JSON prints a warning as "Fail"
# (dcgmi/Diag.cpp HelperDisplayDiagResult: DDR_NO_DISPLAY_WARN is the default), so the status
# word cannot tell them apart; neither can error_severity (a real failure such as cuInit failing
# in the memory test, DCGM_FR_CUDA_API 51, nvvs/plugin_src/memory/memory.cpp ~430, carries
# DCGM_ERROR_MONITOR; real warnings carry CONFIG, RESET or ISOLATE). Listed here: ids that nvvs
# itself only ever reports with NVVS_RESULT_WARN and that concern the node's configuration, not
# the GPU (DCGM 4.6, commit 72fa3fe, nvvs/src/Software.cpp):
WARN_ERROR_IDS: dict[int, str] = {
    28: "DCGM_FR_BAD_CUDA_ENV: a CUDA-limiting environment variable (Software.cpp ~977)",
    29: "DCGM_FR_PERSISTENCE_MODE: persistence mode off (Software.cpp ~646)",
}
# Not listed, though Software.cpp reports them as WARN: 18/20 (fewer readable /dev/nvidia* than
# NVML GPUs, ~297: jobs cannot open the GPU), 22 (a library cannot be opened: the same id is a
# Fail for libnvidia-ml, ~365), 25 (graphics processes, ~613: DCGM's own severity is RESET) and
# 118 (SRAM threshold exceeded, ~567: DCGM's own severity is ISOLATE). Those stay CRIT.


def _severity(status: str, errors: tuple[DcgmError, ...]) -> Severity:
    """The status word; a ``Fail`` whose every error is one of :data:`WARN_ERROR_IDS` is WARN.
    Any other ``Fail`` is CRIT, whatever the errors' severities."""
    severity = STATUSES[status]
    if severity is Severity.CRIT and errors and all(e.error_id in WARN_ERROR_IDS for e in errors):
        return Severity.WARN
    return severity


def _ref(eid: int, info: GpuInfo | None) -> GpuRef:
    if info is None:
        return GpuRef(eid)
    return GpuRef(info.index, info.uuid, info.pci_bus_id)


def _serial(
    evidence: dict[str, Any], eid: int, out: DcgmOutput, info: GpuInfo | None
) -> dict[str, Any]:
    serial = out.serials.get(eid) or (info.serial if info else "")
    if serial:
        evidence["serial"] = serial
    return evidence


def _key(e: DcgmError) -> tuple[int, str]:
    return e.error_id, " ".join(e.message.split())


def _identities(
    out: DcgmOutput, inventory: Inventory
) -> tuple[dict[int, GpuInfo | None], list[Finding]]:
    """DCGM GPU entity id -> the NVML GPU it is. Matched by serial (entity_groups' serial_num)
    where both sides have one; by index where DCGM gives no serial or NVML none at all. A DCGM
    serial that no NVML GPU has is an UNKNOWN ``diag.dcgm.identity`` finding with both
    identities, and the entity's findings carry DCGM's identity only (never NVML's guess)."""
    by_serial = {g.serial: g for g in inventory.gpus if g.serial}
    ids = set(out.gpu_entities) | set(out.serials)
    mapping: dict[int, GpuInfo | None] = {}
    problems: list[Finding] = []
    for eid in sorted(ids):
        serial = out.serials.get(eid, "")
        by_index = inventory.gpu(eid)
        if not serial or not by_serial:
            mapping[eid] = by_index
            continue
        match = by_serial.get(serial)
        mapping[eid] = match
        if match is None:
            problems.append(
                Finding(
                    check_id(Kind.DCGM, "identity"),
                    Severity.UNKNOWN,
                    f"DCGM GPU {eid} (serial {serial}) is no GPU NVML lists"
                    + (
                        f" (NVML GPU {eid} has serial {by_index.serial})"
                        if by_index and by_index.serial
                        else ""
                    )
                    + ": its results cannot be tied to a GPU of this node",
                    evidence={
                        "dcgm_entity_id": eid,
                        "dcgm_serial": serial,
                        "nvml": by_index.to_dict() if by_index else None,
                    },
                )
            )
    return mapping, problems


def judge(
    out: DcgmOutput, inventory: Inventory, *, rc: int = 0, level: int | None = None
) -> list[Finding]:
    """Findings for every test result (one per test and GPU, one per test for whole-node
    results), the test summaries (errors tied to no GPU live only there), every expected GPU
    without a result, and dcgmi's exit status. ``rc`` is dcgmi's exit status where it ran (0
    for an imported file)."""
    meaning, _ = dcgm_code(rc)
    if out.runtime_error is not None:
        severity = Severity.CRIT if rc == DCGM_TIMEOUT_RC else Severity.UNKNOWN
        name = "timeout" if rc == DCGM_TIMEOUT_RC else "runtime_error"
        return [
            Finding(
                check_id(Kind.DCGM, name),
                severity,
                f"dcgmi diag did not run its tests: {' '.join(out.runtime_error.split())}",
                Action.DRAIN_AND_RESET if severity is Severity.CRIT else Action.NONE,
                evidence={"runtime_error": out.runtime_error, "exit_code": rc, "meaning": meaning},
            )
        ]
    identity, findings = _identities(out, inventory)
    # The GPUs the run should have covered: DCGM's entity list, NVML's GPUs, any GPU with a result.
    expected = set(identity) | {g.index for g in inventory.gpus}
    ran: dict[int, set[str]] = {}  # GPU -> tests that ran on it (Pass, Warn or Fail)
    covered: list[tuple[DcgmTest, str, dict[str, Any], set[int]]] = []  # per-GPU tests
    for test in out.tests:
        cid = check_id(Kind.DCGM, _name(test.name))
        base = {"test": test.name, "category": test.category}
        test_findings: list[Finding] = []
        with_result: set[int] = set()
        for r in test.results:
            severity = _severity(r.status, r.errors)
            ref = None
            evidence: dict[str, Any] = dict(base, status=r.status)
            if r.entity_id is not None and r.group in ("GPU", ""):
                with_result.add(r.entity_id)
                expected.add(r.entity_id)
                if r.status in ("Pass", "Warn", "Fail"):
                    ran.setdefault(r.entity_id, set()).add(test.name)
                # None where DCGM's serial matches no NVML GPU: DCGM's identity only then.
                info = identity.get(r.entity_id, inventory.gpu(r.entity_id))
                ref = _ref(r.entity_id, info)
                serial = out.serials.get(r.entity_id) or (info.serial if info else "")
                if serial:
                    evidence["serial"] = serial
                if info is not None and info.index != r.entity_id:
                    evidence["dcgm_entity_id"] = r.entity_id
                where = f"GPU {ref.index}"
            elif r.entity_id is not None:
                where = f"{r.group} {r.entity_id}"
                evidence["entity"] = f"{r.group} {r.entity_id}"
            else:
                where = "node"
            if r.errors:
                evidence["errors"] = [e.to_dict() for e in r.errors]
            if r.info:
                evidence["info"] = list(r.info)
            action = Action.NONE
            if severity in (Severity.CRIT, Severity.WARN):
                action = _action(test.name, r.errors)
            test_findings.append(
                Finding(
                    cid,
                    severity,
                    _summary(where, test, r.status, r.errors, severity),
                    action,
                    ref,
                    evidence,
                )
            )
        test_findings += _judge_summary(test, cid, base, test_findings)
        if with_result:
            covered.append((test, cid, base, with_result))
        findings += test_findings
    # dcgmi prints no result for a GPU a test did not run on (Diag.cpp HelperJsonAddResult drops
    # "Not Run"): silence is not a pass. A GPU no test ran on at all gets one finding.
    idle = {gpu for gpu in expected if not ran.get(gpu)} if out.tests else set()
    for test, cid, base, with_result in covered:
        for gpu in sorted(expected - with_result - idle):
            ref = _ref(gpu, identity.get(gpu, inventory.gpu(gpu)))
            findings.append(
                Finding(
                    cid,
                    Severity.UNKNOWN,
                    f"GPU {ref.index} has no result for {test.name}: the test did not run on it",
                    gpu=ref,
                    evidence=_serial(
                        dict(base, status="absent"), gpu, out, identity.get(gpu, inventory.gpu(gpu))
                    ),
                )
            )
    for gpu in sorted(idle):
        info = identity.get(gpu, inventory.gpu(gpu))
        ref = _ref(gpu, info)
        findings.append(
            Finding(
                check_id(Kind.DCGM, "not_run"),
                Severity.UNKNOWN,
                f"GPU {ref.index}: none of the run's tests ran on it (skipped, not run or "
                "absent): no evidence that it is healthy",
                gpu=ref,
                evidence=_serial({"tests": [t.name for t in out.tests]}, gpu, out, info),
            )
        )
    if level is not None and out.tests:
        present = {_name(t.name) for t in out.tests}
        for lvl in range(1, level + 1):
            for name in REQUIRED_TESTS.get(lvl, ()):
                if name not in present:
                    findings.append(
                        Finding(
                            check_id(Kind.DCGM, name),
                            Severity.UNKNOWN,
                            f"test {name} of level {level} is not in dcgmi's output: it did not "
                            "run on any GPU",
                            evidence={"test": name, "level": level, "tests": sorted(present)},
                        )
                    )
    failed = any(f.severity is Severity.CRIT for f in findings)
    if rc == ISOLATE_RC and not failed:
        # DCGM_ST_NVVS_ISOLATE_ERROR: nvvs asks to isolate a GPU, whether or not the JSON shows
        # which. Never a pass; drain, as for an isolate-class error.
        findings.append(
            Finding(
                check_id(Kind.DCGM, "exit_status"),
                Severity.CRIT,
                f"dcgmi exited with status {rc} ({meaning}) but no test result failed: drain "
                "the node and rerun",
                Action.DRAIN_AND_RESET,
                evidence={"exit_code": rc, "meaning": meaning},
            )
        )
    elif rc not in (0,) and not failed:
        # dcgmi said it failed, yet no result failed: never read that as a pass.
        findings.append(
            Finding(
                check_id(Kind.DCGM, "exit_status"),
                Severity.UNKNOWN,
                f"dcgmi exited with status {rc} ({meaning}) but no test result failed",
                evidence={"exit_code": rc, "meaning": meaning},
            )
        )
    if not any(f.severity is not Severity.SKIPPED for f in findings):
        findings.append(
            Finding(
                check_id(Kind.DCGM, "results"),
                Severity.UNKNOWN,
                "dcgmi diag reported no test results"
                if not findings
                else "dcgmi diag ran no test (every result skipped)",
            )
        )
    return findings


def _judge_summary(
    test: DcgmTest, cid: str, base: dict[str, Any], results: list[Finding]
) -> list[Finding]:
    """The test summary, always: it holds every error of the test, including those tied to no
    GPU (an NVSwitch fatal error, entity DCGM_FE_NONE) that appear in no per-GPU result."""
    if not test.summary:
        return []
    severity = _severity(test.summary, test.summary_errors)
    seen = {_key(e) for r in test.results for e in r.errors}
    own = tuple(e for e in test.summary_errors if _key(e) not in seen)
    worst = max((f.severity for f in results), key=lambda s: s.rank, default=Severity.OK)
    if own and severity in (Severity.CRIT, Severity.WARN):
        errors = own  # errors of the node, not of a GPU: their own finding
        severity = _severity(test.summary, own)
    elif severity in (Severity.CRIT, Severity.WARN) and worst.rank < Severity.WARN.rank:
        errors = test.summary_errors  # the summary failed, no result says why: the node did
    elif not results:
        errors = test.summary_errors  # a test reported by its summary only
    else:
        return []
    action = Action.NONE
    if severity in (Severity.CRIT, Severity.WARN):
        action = _action(test.name, errors)
    evidence: dict[str, Any] = dict(base, status=test.summary, scope="test_summary")
    if errors:
        evidence["errors"] = [e.to_dict() for e in errors]
    return [
        Finding(
            cid,
            severity,
            _summary("node", test, test.summary, errors, severity),
            action,
            None,
            evidence,
        )
    ]


def to_run(
    out: DcgmOutput,
    inventory: Inventory,
    *,
    node: str,
    started: float,
    ended: float,
    source: str,
    rc: int | None = None,
    level: int | None = None,
) -> DiagRun:
    level = level if level is not None else out.level
    findings = judge(out, inventory, rc=rc or 0, level=level)
    return DiagRun(
        Kind.DCGM,
        level,
        node,
        started,
        ended,
        tuple(findings),
        source,
        rc,
        out.version,
        _merge_serials(inventory, out),
    )


def _merge_serials(inventory: Inventory, out: DcgmOutput) -> Inventory:
    """The inventory with DCGM's serials where NVML gave none (an imported file has no NVML)."""
    from dataclasses import replace

    gpus = {g.index: g for g in inventory.gpus}
    for eid, serial in out.serials.items():
        g = gpus.get(eid)
        if g is None:
            gpus[eid] = GpuInfo(eid, serial=serial)
        elif not g.serial:
            gpus[eid] = replace(g, serial=serial)
    driver = inventory.driver_version or out.driver_version
    return Inventory(tuple(gpus[i] for i in sorted(gpus)), driver, inventory.note)
