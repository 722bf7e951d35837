"""``nvbandwidth -j``: parse its JSON and judge host<->device and peer bandwidth per GPU.

The format (tests/fixtures/diag/README.md cites the source): ``{"nvbandwidth": {"version",
"Driver Version", "CUDA Runtime Version", "GPU Device list", "testcases": [{"name", "status"
(Passed / Waived / Error / Running / ERROR), "bandwidth_description", "bandwidth_matrix": rows of
strings in GB/s or "N/A", "sum"}], "error", "warning"}}``.

Judged test cases: ``host_to_device_memcpy_ce`` (one row: the CPU to each GPU column),
``device_to_host_memcpy_ce`` (one row) and ``device_to_device_memcpy_read_ce`` (a GPU x GPU
matrix, the diagonal N/A). Other test cases are kept in the evidence, not judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sre_tools.diag.model import DiagRun, Inventory, Kind
from sre_tools.diag.outcome import check_id
from sre_tools.exceptions import ValidationError
from sre_tools.health.model import Action, Finding, GpuRef, Severity

ROOT = "nvbandwidth"
# test case -> (check name, policy key, action when below the floor, what it measures)
JUDGED: dict[str, tuple[str, str, Action, str]] = {
    "host_to_device_memcpy_ce": ("h2d", "h2d_min_gbps", Action.CHECK_MECHANICALS, "host to device"),
    "device_to_host_memcpy_ce": ("d2h", "d2h_min_gbps", Action.CHECK_MECHANICALS, "device to host"),
    "device_to_device_memcpy_read_ce": (
        "p2p_read",
        "p2p_read_min_gbps",
        Action.CONTACT_SUPPORT,
        "peer read (NVLink)",
    ),
}
STATUSES = ("Passed", "Waived", "Error", "ERROR", "Running", "Not Found")


@dataclass(frozen=True)
class Testcase:
    name: str
    status: str
    matrix: tuple[tuple[float | None, ...], ...] = ()
    description: str = ""
    error: str = ""


@dataclass(frozen=True)
class NvbandwidthOutput:
    testcases: tuple[Testcase, ...]
    version: str = ""
    driver_version: str = ""
    error: str = ""
    warning: str = ""


def _value(raw: Any, source: str, where: str) -> float | None:
    if raw == "N/A":
        return None
    if isinstance(raw, bool):
        raise ValidationError(f"expected a bandwidth, got {raw!r}", source=source, field=where)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValidationError(
            f"expected a bandwidth, got {raw!r}", source=source, field=where
        ) from None
    if not math.isfinite(value) or value < 0:
        raise ValidationError(f"expected a bandwidth, got {raw!r}", source=source, field=where)
    return value


def parse(data: Any, source: str) -> NvbandwidthOutput:
    if not isinstance(data, dict) or not isinstance(data.get(ROOT), dict):
        raise ValidationError(f"expected an object {ROOT!r}", source=source, field=ROOT)
    body = data[ROOT]
    raw = body.get("testcases", [])
    if not isinstance(raw, list):
        raise ValidationError("expected a list", source=source, field=f"{ROOT}.testcases")
    cases = []
    for i, tc in enumerate(raw):
        at = f"{ROOT}.testcases[{i}]"
        if not isinstance(tc, dict):
            raise ValidationError("expected an object", source=source, field=at)
        name = tc.get("name")
        if not isinstance(name, str) or not name:
            raise ValidationError("expected a test case name", source=source, field=f"{at}.name")
        status = tc.get("status")
        if status not in STATUSES:
            raise ValidationError(f"unknown status {status!r}", source=source, field=f"{at}.status")
        rows = tc.get("bandwidth_matrix", [])
        if not isinstance(rows, list):
            raise ValidationError(
                "expected a list of rows", source=source, field=f"{at}.bandwidth_matrix"
            )
        matrix = []
        for r, row in enumerate(rows):
            if not isinstance(row, list):
                raise ValidationError(
                    "expected a row (a list)", source=source, field=f"{at}.bandwidth_matrix[{r}]"
                )
            matrix.append(
                tuple(
                    _value(v, source, f"{at}.bandwidth_matrix[{r}][{c}]") for c, v in enumerate(row)
                )
            )
        cases.append(
            Testcase(
                name,
                str(status),
                tuple(matrix),
                str(tc.get("bandwidth_description", "")),
                str(tc.get("error", "")),
            )
        )
    return NvbandwidthOutput(
        tuple(cases),
        str(body.get("version", "")),
        str(body.get("Driver Version", "")),
        str(body.get("error", "")),
        str(body.get("warning", "")),
    )


def _ref(index: int, inventory: Inventory) -> GpuRef:
    info = inventory.gpu(index)
    return GpuRef(index, info.uuid if info else "", info.pci_bus_id if info else "")


def _grade(value: float, floor: float, band: float) -> Severity:
    if value < floor:
        return Severity.CRIT
    if value < floor * (1 + band / 100.0):
        return Severity.WARN
    return Severity.OK


def _fmt(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.1f} GB/s"


def _floor(limits: dict[str, Any], key: str) -> float | None:
    raw = limits.get(key)
    return None if raw is None else float(raw)


def culprit(cells: list[tuple[int, int]]) -> int | None:
    """The one GPU common to every bad ``(reader, peer)`` cell, where exactly one explains them
    all (its row, its column, or both); ``None`` when none or several do (one bad pair names two
    GPUs equally: the pair is reported, not a GPU)."""
    if not cells:
        return None
    common = set(cells[0])
    for cell in cells[1:]:
        common &= set(cell)
    return next(iter(common)) if len(common) == 1 else None


def judge(
    out: NvbandwidthOutput,
    inventory: Inventory,
    limits: dict[str, Any],
    profile: str,
    *,
    fabric: bool = False,
    expected_gpus: int | None = None,
) -> list[Finding]:
    """``limits``: the profile's ``diag.nvbandwidth`` mapping. A floor of ``None`` is "not known"
    (UNKNOWN: nothing can be concluded), 0 "deliberately not judged" (SKIPPED). ``fabric``: the
    profile expects an NVSwitch fabric, so peer access between every GPU pair is required even
    where no peer-read floor is set. The GPUs expected are NVML's (``inventory``), else the
    profile's ``expected_gpus``; each must have a value in every judged test case."""
    findings: list[Finding] = []
    band = float(limits.get("warn_band_percent", 5))
    expected = sorted(g.index for g in inventory.gpus)
    if not expected and expected_gpus:
        expected = list(range(int(expected_gpus)))
    present = {tc.name: tc for tc in reversed(out.testcases)}  # the first of each name
    judged_any = any(name in present for name in JUDGED)
    for tc_name, (name, key, action, what) in JUDGED.items():
        cid = check_id(Kind.NVBANDWIDTH, name)
        floor = _floor(limits, key)
        peer = name == "p2p_read"
        required = bool(floor) or (peer and fabric)
        tc = present.get(tc_name)
        base: dict[str, Any] = {"testcase": tc_name, "profile": profile, "floor_gbps": floor}
        if tc is None:
            if required and (judged_any or not out.error):
                findings.append(
                    Finding(
                        cid,
                        Severity.UNKNOWN,
                        f"{tc_name} is not in the output: {what} not measured (profile "
                        f"{profile} requires it)",
                        evidence=base,
                    )
                )
            continue
        base["status"] = tc.status
        if tc.status == "Waived":
            if required:
                # nvbandwidth waives a test case it cannot run here: for the peer tests, no GPU
                # pair has peer access (testcase.cpp filters on cudaDeviceCanAccessPeer). On a
                # board with an NVSwitch fabric that is a broken fabric, not "not applicable".
                findings.append(
                    Finding(
                        cid,
                        Severity.CRIT,
                        f"{tc_name} waived by nvbandwidth: no {what} possible, and profile "
                        f"{profile} requires it"
                        + (" (no GPU pair has peer access)" if peer else ""),
                        Action.RESTART_FABRIC_MANAGER if peer else action,
                        evidence=base,
                    )
                )
            else:
                findings.append(
                    Finding(
                        cid,
                        Severity.SKIPPED,
                        f"{tc_name} waived by nvbandwidth (not supported here)",
                        evidence=base,
                    )
                )
            continue
        if tc.status != "Passed":
            reason = tc.error or ("did not finish" if tc.status == "Running" else tc.status)
            findings.append(
                Finding(
                    cid,
                    Severity.UNKNOWN,
                    f"{tc_name} did not pass: {' '.join(reason.split())}",
                    evidence=base,
                )
            )
            continue
        if peer:
            findings += _judge_peer(
                tc, inventory, cid, base, floor, band, action, expected, required
            )
        else:
            findings += _judge_host(tc, inventory, cid, base, floor, band, action, what, expected)
    if out.error:
        findings.append(
            Finding(
                check_id(Kind.NVBANDWIDTH, "error"),
                Severity.UNKNOWN,
                f"nvbandwidth reported an error: {' '.join(out.error.split())}",
                evidence={"error": out.error},
            )
        )
    if not findings:
        findings.append(
            Finding(
                check_id(Kind.NVBANDWIDTH, "results"),
                Severity.UNKNOWN,
                "no judged test case (host_to_device_memcpy_ce, device_to_host_memcpy_ce, "
                "device_to_device_memcpy_read_ce) in the output",
            )
        )
    return findings


def _gpu_evidence(
    base: dict[str, Any], gpu: int, inventory: Inventory, **more: Any
) -> dict[str, Any]:
    evidence = dict(base, **more)
    info = inventory.gpu(gpu)
    if info and info.serial:
        evidence["serial"] = info.serial
    return evidence


def _missing(
    cid: str, tc: Testcase, have: set[int], expected: list[int], base: dict[str, Any]
) -> list[Finding]:
    lost = [g for g in expected if g not in have]
    if not lost:
        return []
    return [
        Finding(
            cid,
            Severity.UNKNOWN,
            f"{tc.name} has no value for GPU {', '.join(map(str, lost))} "
            f"({len(have)} of {len(expected)} expected GPUs measured)",
            evidence=dict(base, missing_gpus=lost, measured_gpus=sorted(have)),
        )
    ]


def _no_floor(cid: str, tc: Testcase, key: str, base: dict[str, Any], values: Any) -> Finding:
    profile = base["profile"]
    return Finding(
        cid,
        Severity.UNKNOWN,
        f"{tc.name} measured, but profile {profile} has no floor ({key}): not judged; name the "
        f"node's profile (--profile) or set diag.nvbandwidth.{key} in the site file",
        evidence=dict(base, values=values),
    )


def _judge_host(
    tc: Testcase,
    inventory: Inventory,
    cid: str,
    base: dict[str, Any],
    floor: float | None,
    band: float,
    action: Action,
    what: str,
    expected: list[int],
) -> list[Finding]:
    """One row (the CPU), one column per GPU."""
    row = tc.matrix[0] if tc.matrix else ()
    values = dict(enumerate(row))
    key = JUDGED[tc.name][1]
    if not values:
        return [Finding(cid, Severity.UNKNOWN, f"{tc.name} has no bandwidth values", evidence=base)]
    out = _missing(cid, tc, set(values), expected, base)
    if floor is None:
        return [*out, _no_floor(cid, tc, key, base, {str(g): v for g, v in values.items()})]
    for gpu, value in sorted(values.items()):
        evidence = _gpu_evidence(base, gpu, inventory, gbps=value)
        if not floor:
            out.append(
                Finding(
                    cid,
                    Severity.SKIPPED,
                    f"GPU {gpu} {what} {_fmt(value)}: floor 0 in profile {base['profile']} "
                    "(not judged)",
                    gpu=_ref(gpu, inventory),
                    evidence=evidence,
                )
            )
            continue
        severity = Severity.CRIT if value is None else _grade(value, floor, band)
        verb = {
            Severity.CRIT: "below the floor of" if value is not None else "no transfer; floor",
            Severity.WARN: f"within {band:g} % of the floor of",
            Severity.OK: "at or above",
        }[severity]
        out.append(
            Finding(
                cid,
                severity,
                f"GPU {gpu} {what} {_fmt(value)}, {verb} {floor:g} GB/s",
                action if severity is Severity.CRIT else Action.NONE,
                _ref(gpu, inventory),
                evidence,
            )
        )
    return out


def _judge_peer(
    tc: Testcase,
    inventory: Inventory,
    cid: str,
    base: dict[str, Any],
    floor: float | None,
    band: float,
    action: Action,
    expected: list[int],
    required: bool,
) -> list[Finding]:
    """A GPU x GPU matrix (reader row, peer column), the diagonal N/A. An off-diagonal N/A is a
    pair without peer access. A problem is blamed on the one GPU common to every bad cell (its
    row and/or column); otherwise the pairs are named and no GPU is blamed."""
    n = len(tc.matrix)
    cells: dict[tuple[int, int], float | None] = {}
    for i, row in enumerate(tc.matrix):
        for j in range(n):
            if i != j:
                cells[(i, j)] = row[j] if j < len(row) else None
    key = JUDGED[tc.name][1]
    if not cells:
        return [Finding(cid, Severity.UNKNOWN, f"{tc.name} has no bandwidth values", evidence=base)]
    out = _missing(cid, tc, set(range(n)), expected, base)
    judge_floor = floor or 0.0
    if not required:
        if floor is None:
            worst = {
                str(g): min((v for c, v in cells.items() if g in c and v is not None), default=None)
                for g in range(n)
            }
            return [*out, _no_floor(cid, tc, key, base, worst)]
        return out + _peer_skipped(tc, inventory, cid, base, cells, n)

    def worst_of(
        gpu: int, skip: frozenset[tuple[int, int]] = frozenset()
    ) -> tuple[float | None, tuple[int, int]]:
        mine = [(c, v) for c, v in cells.items() if gpu in c and c not in skip]
        none = [c for c, v in mine if v is None]
        if none:
            return None, none[0]
        c, v = min(mine, key=lambda cv: cv[1] if cv[1] is not None else -1.0)
        return v, c

    crit = [c for c, v in cells.items() if v is None or v < judge_floor]
    warn = [
        c
        for c, v in cells.items()
        if c not in crit and judge_floor and v is not None and v < judge_floor * (1 + band / 100)
    ]
    floor_text = f"the floor of {judge_floor:g} GB/s" if judge_floor else "peer access"
    blamed: set[int] = set()
    for severity, bad in ((Severity.CRIT, crit), (Severity.WARN, warn)):
        if not bad:
            continue
        pairs = [{"reader": i, "peer": j, "gbps": cells[(i, j)]} for i, j in sorted(bad)]
        act = action if severity is Severity.CRIT else Action.NONE
        gpu = culprit(bad)
        cause = "below" if severity is Severity.CRIT else f"within {band:g} % of"
        if any(cells[c] is None for c in bad):
            cause = "without peer access (N/A) or below" if judge_floor else "without"
        if gpu is not None:
            blamed.add(gpu)
            value, (i, j) = worst_of(gpu)
            other = j if i == gpu else i
            total = 2 * (n - 1)
            out.append(
                Finding(
                    cid,
                    severity,
                    f"GPU {gpu} peer read (NVLink): {len(bad)} of {total} transfers with its "
                    f"peers {cause} {floor_text} (worst {_fmt(value)}, with GPU {other})",
                    act,
                    _ref(gpu, inventory),
                    _gpu_evidence(base, gpu, inventory, gbps=value, worst_peer=other, pairs=pairs),
                )
            )
        else:
            shown = ", ".join(f"{i}->{j} {_fmt(cells[(i, j)])}" for i, j in sorted(bad)[:6])
            more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
            blamed |= {g for c in bad for g in c}
            out.append(
                Finding(
                    cid,
                    severity,
                    f"peer read (NVLink) {cause} {floor_text} on {len(bad)} GPU pair(s) that no "
                    f"one GPU explains: {shown}{more}",
                    act,
                    evidence=dict(base, pairs=pairs),
                )
            )
    attributed = frozenset(crit) | frozenset(warn)  # reported above, against their culprit
    for gpu in range(n):
        if gpu in blamed:
            continue
        value, (i, j) = worst_of(gpu, attributed)
        other = j if i == gpu else i
        out.append(
            Finding(
                cid,
                Severity.OK,
                f"GPU {gpu} peer read (NVLink) {_fmt(value)} (worst peer: GPU {other}), at or "
                f"above {floor_text}"
                if judge_floor
                else f"GPU {gpu} peer read (NVLink) {_fmt(value)} (worst peer: GPU {other}): "
                f"peer access to every GPU (bandwidth not judged: floor 0 in profile "
                f"{base['profile']})",
                gpu=_ref(gpu, inventory),
                evidence=_gpu_evidence(base, gpu, inventory, gbps=value, worst_peer=other),
            )
        )
    return out


def _peer_skipped(
    tc: Testcase,
    inventory: Inventory,
    cid: str,
    base: dict[str, Any],
    cells: dict[tuple[int, int], float | None],
    n: int,
) -> list[Finding]:
    """Floor 0 and no fabric expected: each GPU's worst peer value recorded, not judged."""
    out = []
    for gpu in range(n):
        mine = [(v, c) for c, v in cells.items() if gpu in c and v is not None]
        if not mine:
            continue
        value, (i, j) = min(mine)
        other = j if i == gpu else i
        out.append(
            Finding(
                cid,
                Severity.SKIPPED,
                f"GPU {gpu} peer read (NVLink) {_fmt(value)} (worst peer: GPU {other}): floor 0 "
                f"in profile {base['profile']} (not judged)",
                gpu=_ref(gpu, inventory),
                evidence=_gpu_evidence(base, gpu, inventory, gbps=value, worst_peer=other),
            )
        )
    return out


def to_run(
    out: NvbandwidthOutput,
    inventory: Inventory,
    limits: dict[str, Any],
    profile: str,
    *,
    node: str,
    started: float,
    ended: float,
    source: str,
    rc: int | None = None,
    fabric: bool = False,
    expected_gpus: int | None = None,
) -> DiagRun:
    driver = inventory.driver_version or out.driver_version
    inv = Inventory(inventory.gpus, driver, inventory.note)
    findings = judge(out, inventory, limits, profile, fabric=fabric, expected_gpus=expected_gpus)
    if rc not in (None, 0) and not any(f.severity is Severity.CRIT for f in findings):
        findings.append(
            Finding(
                check_id(Kind.NVBANDWIDTH, "exit_status"),
                Severity.UNKNOWN,
                f"nvbandwidth exited with status {rc}",
                evidence={"exit_code": rc},
            )
        )
    return DiagRun(
        Kind.NVBANDWIDTH, 0, node, started, ended, tuple(findings), source, rc, out.version, inv
    )
