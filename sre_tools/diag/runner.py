"""Run the tools: found on PATH or configured, argv lists only, a timeout on every run.

What the outside world provides is injected: the transport that runs commands (the local one by
default: its own process group, killed whole on timeout), the clock, the NVML backend that names
the GPUs, and the ``which`` that finds a tool.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sre_tools.diag import outcome
from sre_tools.diag.formats import MAX_OUTPUT_BYTES, judge_text
from sre_tools.diag.model import TOOLS, DiagRun, GpuInfo, Inventory, Kind
from sre_tools.exceptions import ValidationError
from sre_tools.health.model import Action, Finding, Severity
from sre_tools.health.policy import Policy

# nvbandwidth's test cases that are judged (sre_tools.diag.nvbandwidth.JUDGED).
NVBANDWIDTH_CASES = (
    "host_to_device_memcpy_ce",
    "device_to_host_memcpy_ce",
    "device_to_device_memcpy_read_ce",
)


DCGM_STOP_ENV = "DCGMI_STOP_DIAG_HOSTNAME"
DCGM_ABORT_TIMEOUT_SECONDS = 30.0


def dcgm_timeout(timeout: float) -> int:
    """dcgmi's ``--timeout``: ours less a margin (a fifth, at most 30 s) to report in."""
    return max(1, int(timeout - min(30.0, timeout / 5)))


def inventory_from_backend(backend: Any, sysfs: Path | None = None) -> Inventory:
    """The GPUs' identities from NVML (or a recording); what cannot be read stays empty. The
    model and the NVSwitch fabric are found the way ``sre health`` finds them (NVML's fabric
    state, else an NVSwitch on the PCI bus under ``sysfs``), for :meth:`Policy.for_node`."""
    from sre_tools.gpu.errors import NotSupported, NvmlInitError, ReadError
    from sre_tools.health.runner import node_model_and_fabric

    def read(index: int, name: str) -> str:
        try:
            return str(backend.read(index, name))
        except (ReadError, NotSupported):
            return ""

    try:
        backend.init()
    except NvmlInitError as exc:
        return Inventory(note=f"NVML unavailable: {exc}")
    try:
        try:
            driver = str(backend.system("driver_version"))
        except (ReadError, NotSupported):
            driver = ""
        try:
            count = backend.device_count()
        except (ReadError, NotSupported) as exc:
            return Inventory(driver_version=driver, note=f"NVML cannot count GPUs: {exc}")
        gpus = []
        for i in range(count):
            pci = ""
            try:
                value = backend.read(i, "pci")
                pci = str(value.get("bus_id", "")) if isinstance(value, dict) else ""
            except (ReadError, NotSupported):
                pci = backend.pci_bus_id(i) or ""
            gpus.append(
                GpuInfo(
                    i,
                    read(i, "uuid"),
                    read(i, "serial"),
                    pci,
                    read(i, "vbios_version"),
                    read(i, "inforom_image_version"),
                )
            )
        model, nvswitch = node_model_and_fabric(backend, [g.index for g in gpus], sysfs)
        return Inventory(tuple(gpus), driver, "", model, nvswitch)
    finally:
        backend.shutdown()


# Variables that narrow or renumber the GPUs a CUDA program sees. Inside a Slurm step or a
# container CUDA device 0 may be physical GPU 4: the tools must see the whole node, numbered as
# NVML numbers it, or a finding names the wrong GPU (and the wrong serial in history).
DEVICE_SELECTION_ENV = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")


def tool_env(env: dict[str, str], kind: Kind) -> dict[str, str]:
    """The environment a tool runs with: the caller's, without :data:`DEVICE_SELECTION_ENV`,
    and (for the CUDA programs) ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that CUDA's device numbers
    are NVML's indices."""
    out = {k: v for k, v in env.items() if k not in DEVICE_SELECTION_ENV}
    if kind is not Kind.DCGM:
        out["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return out


def gpu_count(policy: Policy, inventory: Inventory) -> Finding | None:
    """``diag.gpu_count``: fewer GPUs in NVML than the profile expects, judged as ``sre health``
    judges ``gpu.count`` (CRIT, power cycle). The tools only test the GPUs they can see, so a
    lost GPU would otherwise pass every diagnostic. ``None`` where nothing can be said (no NVML
    answer, no expected count)."""
    expected = policy.get("expected_gpus")
    have = len(inventory.gpus)
    if expected is None or not have:
        return None
    evidence = {"nvml": have, "expected": expected, "profile": policy.name}
    if have < expected:
        return Finding(
            "diag.gpu_count",
            Severity.CRIT,
            f"{have} of {expected} expected GPUs visible to NVML (profile {policy.name}): the "
            "diagnostics cannot test the missing ones",
            Action.POWER_CYCLE,
            evidence=evidence,
        )
    if have > expected:
        return Finding(
            "diag.gpu_count",
            Severity.WARN,
            f"{have} GPUs present, profile {policy.name} expects {expected}",
            evidence=evidence,
        )
    return Finding("diag.gpu_count", Severity.OK, f"{have} GPU(s) present", evidence=evidence)


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


@dataclass
class Runner:
    policy: Policy
    inventory: Inventory
    node: str
    transport: Any = None  # sre_tools.transport.local.LocalTransport by default
    clock: Callable[[], float] = time.time
    which: Callable[[str], str | None] = shutil.which
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def _timeout(self, kind: Kind, level: int) -> float:
        key = (
            f"diag.dcgm.timeout_level_{level}_seconds"
            if kind is Kind.DCGM
            else f"diag.{kind.value}.timeout_seconds"
        )
        value = self.policy.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ValidationError(
                "must be a number of seconds above 0", source=self.policy.source, field=key
            )
        return float(value)

    def resolve(self, kind: Kind) -> tuple[str | None, str]:
        """``(path, why not)``: the configured path, else the tool on PATH."""
        tool = TOOLS[kind]
        configured = self.policy.get(f"diag.{kind.value}.path")
        if configured:
            if _executable(str(configured)):
                return str(configured), ""
            return (
                None,
                f"configured path {configured} (diag.{kind.value}.path) is not an executable file",
            )
        found = self.which(tool)
        if found is None:
            return None, f"{tool} is not on PATH"
        return found, ""

    def argv(self, kind: Kind, path: str, level: int, timeout: float = 0.0) -> list[str]:
        if kind is Kind.DCGM:
            # dcgmi's own --timeout ends the diagnostic inside DCGM (nvvs included) a little
            # before ours kills dcgmi, so that a slow level reports DCGM_ST_TIMEOUT cleanly.
            argv = [path, "diag", "-r", str(level), "-j"]
            if timeout:
                argv += ["--timeout", str(dcgm_timeout(timeout))]
            return argv
        if kind is Kind.NVBANDWIDTH:
            return [path, "-j", "-t", *NVBANDWIDTH_CASES]
        limits = self.policy.get("diag.nccl")
        argv = [
            path,
            "-b",
            str(int(limits["min_bytes"])),
            "-e",
            str(int(limits["max_bytes"])),
            "-f",
            "2",
        ]
        if self.inventory.gpus:
            argv += ["-g", str(len(self.inventory.gpus))]
        return argv

    def _abort_dcgm(self, path: str, env: dict[str, str]) -> str:
        """``DCGMI_STOP_DIAG_HOSTNAME=localhost dcgmi diag``: dcgmi's way to stop a running
        diagnostic (dcgmi/CommandLineParser.cpp, ``STOP_DIAG_ENV_VARIABLE_NAME``)."""
        from sre_tools.transport.base import TransportError
        from sre_tools.transport.local import LocalTransport

        transport = self.transport or LocalTransport(
            env={**env, DCGM_STOP_ENV: "localhost"}, max_output=64 * 1024
        )
        try:
            result = transport.run([path, "diag"], DCGM_ABORT_TIMEOUT_SECONDS)
        except TransportError as exc:
            return f"abort failed: {exc}"
        return "aborted" if result.rc == 0 else f"abort exited {result.rc}"

    def run(self, kind: Kind, level: int = 0) -> DiagRun:
        """One tool, judged. Never raises for what the tool does: a missing tool, a timeout, a
        kill or unreadable output are findings."""
        start = self.clock()
        label = f"{TOOLS[kind]}" + (f" diag -r {level}" if kind is Kind.DCGM else "")

        def done(*findings: Finding, rc: int | None = None) -> DiagRun:
            return DiagRun(
                kind,
                level,
                self.node,
                start,
                self.clock(),
                tuple(findings),
                label,
                rc,
                "",
                self.inventory,
            )

        if not self.policy.get(f"diag.{kind.value}.enabled"):
            return done(outcome.disabled(kind))
        timeout = self._timeout(kind, level)
        path, why = self.resolve(kind)
        if path is None:
            return done(outcome.missing(kind, TOOLS[kind], why))
        from sre_tools.transport.base import TransportError, TransportTimeout
        from sre_tools.transport.local import LocalTransport

        env = tool_env(self.env, kind)
        transport = self.transport or LocalTransport(env=env, max_output=MAX_OUTPUT_BYTES)
        argv = self.argv(kind, path, level, timeout)
        try:
            result = transport.run(argv, timeout)
        except TransportTimeout:
            finding = outcome.timed_out(kind, TOOLS[kind], timeout)
            if kind is Kind.DCGM:
                # Killing dcgmi does not stop nvvs (nv-hostengine runs it): ask DCGM to abort,
                # or the next run meets DCGM_ST_DIAG_ALREADY_RUNNING.
                evidence = {**finding.evidence, "abort": self._abort_dcgm(path, env)}
                finding = finding.replace(evidence=evidence)
            return done(finding)
        except TransportError as exc:
            return done(
                Finding(
                    outcome.check_id(kind, "tool"),
                    Severity.UNKNOWN,
                    f"cannot run {TOOLS[kind]}: {exc}",
                    evidence={"argv": argv},
                )
            )
        rc = int(result.rc)
        stdout = result.stdout.decode("utf-8", "replace")
        stderr = " ".join(result.stderr.decode("utf-8", "replace").split())[-300:]
        if result.stdout_truncated:
            return done(
                Finding(
                    outcome.check_id(kind, "output"),
                    Severity.UNKNOWN,
                    f"{TOOLS[kind]} printed more than {MAX_OUTPUT_BYTES} bytes: not judged",
                ),
                rc=rc,
            )
        sig = outcome.signal_of(rc, kind)
        if sig is not None:
            return done(outcome.killed(kind, TOOLS[kind], sig), rc=rc)
        if not stdout.strip():
            meaning = outcome.dcgm_code(rc)[0] if kind is Kind.DCGM else f"exit status {rc}"
            return done(
                Finding(
                    outcome.check_id(kind, "output"),
                    Severity.UNKNOWN,
                    f"{TOOLS[kind]} printed nothing ({meaning})"
                    + (f": {stderr}" if stderr else ""),
                    evidence={"exit_code": rc, "stderr": stderr},
                ),
                rc=rc,
            )
        try:
            return judge_text(
                stdout,
                f"{TOOLS[kind]} output",
                policy=self.policy,
                inventory=self.inventory,
                node=self.node,
                started=start,
                ended=self.clock(),
                label=label,
                rc=rc,
                level=level if kind is Kind.DCGM else None,
                expect=kind,
            )
        except ValidationError as exc:
            return done(
                Finding(
                    outcome.check_id(kind, "output"),
                    Severity.UNKNOWN,
                    f"{TOOLS[kind]} output not understood: {exc}",
                    evidence={"exit_code": rc, "stderr": stderr},
                ),
                rc=rc,
            )
