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


def judge(
    out: NvbandwidthOutput, inventory: Inventory, limits: dict[str, Any], profile: str
) -> list[Finding]:
    """``limits``: the profile's ``diag.nvbandwidth`` mapping (floors of 0 are not judged)."""
    findings: list[Finding] = []
    band = float(limits.get("warn_band_percent", 5))
    seen = set()
    for tc in out.testcases:
        spec = JUDGED.get(tc.name)
        if spec is None:
            continue
        seen.add(tc.name)
        name, key, action, what = spec
        cid = check_id(Kind.NVBANDWIDTH, name)
        base = {"testcase": tc.name, "status": tc.status}
        if tc.status == "Waived":
            findings.append(
                Finding(
                    cid,
                    Severity.SKIPPED,
                    f"{tc.name} waived by nvbandwidth (not supported here)",
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
                    f"{tc.name} did not pass: {' '.join(reason.split())}",
                    evidence=base,
                )
            )
            continue
        floor = float(limits.get(key, 0) or 0)
        per_gpu = _per_gpu(tc, name)
        if not per_gpu:
            findings.append(
                Finding(cid, Severity.UNKNOWN, f"{tc.name} has no bandwidth values", evidence=base)
            )
            continue
        for gpu, (value, peer) in sorted(per_gpu.items()):
            evidence = dict(base, gbps=value, floor_gbps=floor or None, profile=profile)
            if peer is not None:
                evidence["worst_peer"] = peer
            info = inventory.gpu(gpu)
            if info and info.serial:
                evidence["serial"] = info.serial
            peer_text = f" (worst peer: GPU {peer})" if peer is not None else ""
            if not floor:
                findings.append(
                    Finding(
                        cid,
                        Severity.SKIPPED,
                        f"GPU {gpu} {what} {value:.1f} GB/s{peer_text}: "
                        f"no floor in profile {profile}",
                        gpu=_ref(gpu, inventory),
                        evidence=evidence,
                    )
                )
                continue
            severity = _grade(value, floor, band)
            verb = {
                Severity.CRIT: "below the floor of",
                Severity.WARN: f"within {band:g} % of the floor of",
                Severity.OK: "at or above",
            }[severity]
            findings.append(
                Finding(
                    cid,
                    severity,
                    f"GPU {gpu} {what} {value:.1f} GB/s{peer_text}, {verb} {floor:g} GB/s",
                    action if severity is Severity.CRIT else Action.NONE,
                    _ref(gpu, inventory),
                    evidence,
                )
            )
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


def _per_gpu(tc: Testcase, name: str) -> dict[int, tuple[float, int | None]]:
    """GPU index -> (its bandwidth, the peer of its worst value for peer tests)."""
    out: dict[int, tuple[float, int | None]] = {}
    if name in ("h2d", "d2h"):
        # One row (the CPU), one column per GPU.
        for row in tc.matrix[:1]:
            for gpu, value in enumerate(row):
                if value is not None:
                    out[gpu] = (value, None)
        return out
    for gpu, row in enumerate(tc.matrix):
        vals = [(v, peer) for peer, v in enumerate(row) if v is not None and peer != gpu]
        if vals:
            value, peer = min(vals)
            out[gpu] = (value, peer)
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
) -> DiagRun:
    driver = inventory.driver_version or out.driver_version
    inv = Inventory(inventory.gpus, driver, inventory.note)
    findings = judge(out, inventory, limits, profile)
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
