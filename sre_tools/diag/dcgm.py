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
from sre_tools.diag.outcome import DCGM_TIMEOUT_RC, check_id, dcgm_code
from sre_tools.exceptions import ValidationError
from sre_tools.health.model import Action, Finding, GpuRef, Severity

ROOT = "DCGM Diagnostic"
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


def _int(value: Any, source: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"expected an integer, got {value!r}", source=source, field=where)
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
    for gi, raw_group in enumerate(_list(doc.get("entity_groups"), source, "entity_groups")):
        at = f"entity_groups[{gi}]"
        group = _obj(raw_group, source, at)
        if group.get("entity_group") != "GPU":
            continue
        for ei, raw_ent in enumerate(_list(group.get("entities"), source, f"{at}.entities")):
            ent = _obj(raw_ent, source, f"{at}.entities[{ei}]")
            eid = _int(ent.get("entity_id"), source, f"{at}.entities[{ei}].entity_id")
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
    return DcgmOutput(tuple(tests), None, serials, version, driver)


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


def _severity(status: str, errors: tuple[DcgmError, ...]) -> Severity:
    """The status word, except that a ``Fail`` whose every error is DCGM_ERROR_MONITOR ("can
    perform workload, but needs to be monitored") is a WARN: dcgmi's JSON prints a warning as
    ``Fail`` (``HelperDisplayDiagResult`` hides ``Warn`` by default), so the error severity is
    what tells them apart."""
    severity = STATUSES[status]
    if (
        severity is Severity.CRIT
        and errors
        and all(e.severity == ERROR_SEVERITY_MONITOR for e in errors)
    ):
        return Severity.WARN
    return severity


def judge(out: DcgmOutput, inventory: Inventory, *, rc: int = 0) -> list[Finding]:
    """Findings for every test result (one per test and GPU, one per test for whole-node
    results). ``rc`` is dcgmi's exit status where it ran (0 for an imported file)."""
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
    findings: list[Finding] = []
    for test in out.tests:
        cid = check_id(Kind.DCGM, _name(test.name))
        base = {"test": test.name, "category": test.category}
        for r in test.results:
            severity = _severity(r.status, r.errors)
            ref = None
            evidence: dict[str, Any] = dict(base, status=r.status)
            if r.entity_id is not None and r.group in ("GPU", ""):
                info = inventory.gpu(r.entity_id)
                ref = GpuRef(
                    r.entity_id, info.uuid if info else "", info.pci_bus_id if info else ""
                )
                serial = out.serials.get(r.entity_id) or (info.serial if info else "")
                if serial:
                    evidence["serial"] = serial
                where = f"GPU {r.entity_id}"
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
            findings.append(
                Finding(
                    cid,
                    severity,
                    _summary(where, test, r.status, r.errors, severity),
                    action,
                    ref,
                    evidence,
                )
            )
        if not test.results and test.summary:
            severity = _severity(test.summary, test.summary_errors)
            action = Action.NONE
            if severity in (Severity.CRIT, Severity.WARN):
                action = _action(test.name, test.summary_errors)
            summary_evidence: dict[str, Any] = dict(base, status=test.summary)
            if test.summary_errors:
                summary_evidence["errors"] = [e.to_dict() for e in test.summary_errors]
            findings.append(
                Finding(
                    cid,
                    severity,
                    _summary("node", test, test.summary, test.summary_errors, severity),
                    action,
                    None,
                    summary_evidence,
                )
            )
    failed = any(f.severity is Severity.CRIT for f in findings)
    if rc not in (0,) and not failed:
        # dcgmi said it failed, yet no result failed: never read that as a pass.
        findings.append(
            Finding(
                check_id(Kind.DCGM, "exit_status"),
                Severity.UNKNOWN,
                f"dcgmi exited with status {rc} ({meaning}) but no test result failed",
                evidence={"exit_code": rc, "meaning": meaning},
            )
        )
    if not findings:
        findings.append(
            Finding(
                check_id(Kind.DCGM, "results"),
                Severity.UNKNOWN,
                "dcgmi diag reported no test results",
            )
        )
    return findings


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
    findings = judge(out, inventory, rc=rc or 0)
    return DiagRun(
        Kind.DCGM,
        level if level is not None else out.level,
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
