"""``sre diag bundle``: the evidence NVIDIA support asks for in an RMA, without disturbing the node.

Nothing here resets, reconfigures or loads a GPU: it reads NVML (or a recording), the kernel log,
the store, and runs ``nvidia-bug-report.sh`` when it is installed (a read-only collector). Every
item either holds data or says why it could not be collected; ``MANIFEST.json`` lists both.

Secrets never enter the archive: no environment is copied, ``nvidia-bug-report.sh`` runs with
only ``PATH`` set, the site file is included with secret-looking keys replaced, and every text
item is scrubbed of the values of secret-looking environment variables before it is written.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

SECRET_NAME = re.compile(
    r"(token|passw(or)?d|passwd|secret|credential|api[_-]?key|private[_-]?key|auth|cookie)",
    re.IGNORECASE,
)
REDACTED = "<redacted>"
MIN_SECRET_CHARS = 6  # shorter values ("1", "yes") would redact unrelated text
BUG_REPORT_TIMEOUT_SECONDS = 600.0
KERNEL_CONTEXT_LINES = 20  # lines kept before and after each GPU event
_GPU_LINE = re.compile(r"NVRM|Xid|SXid|nvidia|NVLink|pcieport|AER", re.IGNORECASE)
# ECC and row-remap readings copied per GPU (sre_tools.gpu.readings names).
COUNTERS = (
    ("ecc_errors", ("corrected", "volatile")),
    ("ecc_errors", ("corrected", "aggregate")),
    ("ecc_errors", ("uncorrected", "volatile")),
    ("ecc_errors", ("uncorrected", "aggregate")),
    ("remapped_rows", ()),
    ("remapper_histogram", ()),
    ("retired_pages", ("sbe",)),
    ("retired_pages", ("dbe",)),
    ("retired_pages_pending", ()),
    ("ecc_mode", ()),
)


@dataclass(frozen=True)
class Item:
    """One file of the archive; ``data`` None: not collected, ``reason`` says why."""

    name: str
    data: bytes | None
    reason: str = ""
    what: str = ""


def redact_mapping(value: Any) -> Any:
    """A copy of a parsed config with every secret-looking key's value replaced."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if SECRET_NAME.search(str(k)) else redact_mapping(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_mapping(v) for v in value]
    return value


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values of environment variables whose names look secret, longest first."""
    values = {v for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_CHARS}
    return sorted(values, key=len, reverse=True)


def scrub(data: bytes, secrets: list[str]) -> bytes:
    for value in secrets:
        data = data.replace(value.encode("utf-8", "surrogateescape"), REDACTED.encode())
    return data


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


def kernel_context(lines: list[str], around: int = KERNEL_CONTEXT_LINES) -> list[str]:
    """The lines within ``around`` lines of a GPU-related line (NVRM, Xid, AER, ...)."""
    keep: set[int] = set()
    for i, line in enumerate(lines):
        if _GPU_LINE.search(line):
            keep.update(range(max(0, i - around), min(len(lines), i + around + 1)))
    return [lines[i] for i in sorted(keep)]


def _gpus(backend: Any) -> tuple[dict[str, Any], str]:
    """Identities, versions and error counters per GPU; ``("", why)`` when NVML cannot answer."""
    from sre_tools.gpu.errors import NotSupported, NvmlInitError, ReadError

    def read(index: int, name: str, *args: Any) -> Any:
        try:
            return backend.read(index, name, *args)
        except NotSupported:
            return "not supported"
        except ReadError as exc:
            return f"error: {exc}"

    try:
        backend.init()
    except NvmlInitError as exc:
        return {}, f"NVML unavailable: {exc}"
    try:
        system = {}
        for name in ("driver_version", "nvml_version", "cuda_driver_version"):
            try:
                system[name] = backend.system(name)
            except (ReadError, NotSupported) as exc:
                system[name] = f"error: {exc}"
        gpus = []
        for i in range(backend.device_count()):
            gpu: dict[str, Any] = {"index": i}
            for name in (
                "name",
                "uuid",
                "serial",
                "pci",
                "vbios_version",
                "inforom_image_version",
                "inforom_valid",
            ):
                gpu[name] = read(i, name)
            for name, args in COUNTERS:
                key = name if not args else f"{name}({','.join(args)})"
                gpu[key] = read(i, name, *args)
            gpus.append(gpu)
        return {"system": system, "gpus": gpus}, ""
    except (ReadError, NotSupported) as exc:
        return {}, f"NVML: {exc}"
    finally:
        backend.shutdown()


def collect(
    *,
    node: str,
    store_path: Path | None = None,
    replay: Path | None = None,
    kernel_log: Path | None = None,
    site: Path | None = None,
    env: Mapping[str, str] | None = None,
    which: Callable[[str], str | None] = shutil.which,
    clock: Callable[[], float] = time.time,
) -> list[Item]:
    """Everything for one node, each item collected or explained; nothing raises for a part
    that cannot be collected (the manifest says why)."""
    env = dict(os.environ if env is None else env)
    items: list[Item] = []

    # 1. GPUs: serials, driver/VBIOS/InfoROM versions, ECC and row-remap counters.
    try:
        if replay is not None:
            from sre_tools.gpu.backend import RecordedBackend

            backend: Any = RecordedBackend.load(replay)
        else:
            from sre_tools.gpu.backend import RealBackend

            backend = RealBackend()
        gpus, why = _gpus(backend)
    except Exception as exc:  # an unreadable recording, pynvml missing: say so, go on
        gpus, why = {}, f"{type(exc).__name__}: {exc}"
    items.append(
        Item("gpus.json", _json(gpus) if gpus else None, why, "serials, versions, ECC/row remap")
    )

    # 2. Health report (what `sre health --json` prints).
    try:
        from sre_tools.health.policy import load_policy_file
        from sre_tools.health.runner import counter_state, run_replay_or_live

        policy = load_policy_file(site, None)
        lines = None
        if kernel_log is not None:
            from sre_tools.inputs import MAX_KERNEL_LOG_BYTES, read_capped

            lines = (
                read_capped(str(kernel_log), MAX_KERNEL_LOG_BYTES)[0]
                .decode("utf-8", "replace")
                .splitlines()
            )
        report = run_replay_or_live(
            policy,
            replay=replay,
            state=counter_state(replay, None),
            kernel_log_lines=lines,
        )
        items.append(Item("health.json", _json(report.to_dict()), "", "sre health --json"))
    except Exception as exc:
        items.append(Item("health.json", None, f"{type(exc).__name__}: {exc}", "sre health"))

    # 3. The last diagnostics from the store.
    try:
        from sre_tools.diag import history
        from sre_tools.store import Store, default_store_path

        with Store(store_path or default_store_path(), create=False) as store:
            stored = history.runs(store, node=node, limit=50)
            results = history.history(store, node=node, limit=2000)
        items.append(
            Item(
                "diagnostics.json",
                _json({"runs": [r.to_dict() for r in stored], "results": results}),
                "" if stored else "no diagnostic stored for this node",
                "last diagnostics",
            )
        )
    except Exception as exc:
        items.append(Item("diagnostics.json", None, f"{exc}", "last diagnostics"))

    # 4. Kernel log around GPU events, and the XID history with the catalog's decision.
    text_lines: list[str] | None = None
    why = ""
    try:
        if kernel_log is not None:
            from sre_tools.inputs import MAX_KERNEL_LOG_BYTES, read_capped

            text_lines = (
                read_capped(str(kernel_log), MAX_KERNEL_LOG_BYTES)[0]
                .decode("utf-8", "replace")
                .splitlines()
            )
        else:
            from sre_tools.health.xid.kernel_log import read_kernel_log

            text_lines = read_kernel_log(0).lines
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
    if text_lines is None:
        items.append(Item("kernel.log", None, why, "kernel log around GPU events"))
        items.append(Item("xid.json", None, why, "XID history"))
    else:
        context = kernel_context(text_lines)
        items.append(
            Item(
                "kernel.log",
                ("\n".join(context) + "\n").encode() if context else b"",
                "" if context else "no GPU-related kernel-log line",
                "kernel log around GPU events",
            )
        )
        from sre_tools.health.xid.classify import analyze
        from sre_tools.health.xid.events import dedupe
        from sre_tools.health.xid.parser import parse_lines

        analysis = analyze(dedupe(parse_lines(text_lines)))
        items.append(Item("xid.json", _json(analysis.to_dict()), "", "XID history, catalog"))

    # 5. The site file, secrets replaced.
    if site is not None:
        try:
            from sre_tools.inputs import MAX_SPEC_BYTES, load_yaml, read_text_capped

            text, source = read_text_capped(str(site), MAX_SPEC_BYTES, what="site file")
            items.append(
                Item("site.json", _json(redact_mapping(load_yaml(text, source))), "", "site file")
            )
        except Exception as exc:
            items.append(Item("site.json", None, f"{exc}", "site file"))

    # 6. nvidia-bug-report.sh, when installed.
    items.append(_bug_report(which, env))

    secrets = secret_values(env)
    scrubbed = [
        # A compressed member is not scrubbed (a replacement would corrupt it): the one such
        # member, the bug report, ran without our environment.
        Item(
            i.name,
            i.data if i.data is None or i.name.endswith(".gz") else scrub(i.data, secrets),
            i.reason,
            i.what,
        )
        for i in items
    ]
    manifest = {
        "node": node,
        "created": clock(),
        "collected": [
            {"file": i.name, "what": i.what, "bytes": len(i.data), "note": i.reason}
            for i in scrubbed
            if i.data is not None
        ],
        "not_collected": [
            {"file": i.name, "what": i.what, "reason": scrub(i.reason.encode(), secrets).decode()}
            for i in scrubbed
            if i.data is None
        ],
        "secrets": "no environment copied; secret-looking config keys and environment values "
        "replaced by " + REDACTED,
    }
    return [*scrubbed, Item("MANIFEST.json", _json(manifest), "", "what is here, what is not")]


def _bug_report(which: Callable[[str], str | None], env: Mapping[str, str]) -> Item:
    what = "nvidia-bug-report.sh output"
    tool = which("nvidia-bug-report.sh")
    if tool is None:
        return Item("nvidia-bug-report.log.gz", None, "nvidia-bug-report.sh is not on PATH", what)
    from sre_tools.transport.base import TransportError
    from sre_tools.transport.local import LocalTransport

    with tempfile.TemporaryDirectory(prefix="sre-bundle-") as tmp:
        out = Path(tmp) / "nvidia-bug-report.log"
        # Only PATH: the report must not pick up tokens from our environment.
        transport = LocalTransport(env={"PATH": env.get("PATH", "/usr/bin:/bin")})
        try:
            result = transport.run([tool, "--output-file", str(out)], BUG_REPORT_TIMEOUT_SECONDS)
        except TransportError as exc:
            return Item("nvidia-bug-report.log.gz", None, f"{exc}", what)
        produced = out.with_suffix(".log.gz")
        if produced.is_file():
            return Item("nvidia-bug-report.log.gz", produced.read_bytes(), "", what)
        tail = " ".join(result.stderr.decode("utf-8", "replace").split())[-200:]
        return Item(
            "nvidia-bug-report.log.gz",
            None,
            f"nvidia-bug-report.sh exited {result.rc} without a report"
            + (f": {tail}" if tail else ""),
            what,
        )


def write(
    path: Path,
    items: list[Item],
    *,
    field: str | None = None,
    protect: Iterable[Path | str | None] = (),
) -> None:
    """A ``.tar.gz`` with one member per collected item under ``sre-diag-bundle/``, written by
    :func:`sre_tools.outputs.write_bytes` (a regular file through a temporary file and a
    rename, so a failed write never leaves half an archive; never over a store or ``protect``)."""
    from sre_tools.outputs import write_bytes

    def archive(fh: BinaryIO) -> None:
        # A stream ("w|gz"), not "w:gz": the target may be a pipe, which cannot seek.
        with tarfile.open(fileobj=fh, mode="w|gz") as tar:
            for item in items:
                if item.data is None:
                    continue
                info = tarfile.TarInfo(f"sre-diag-bundle/{item.name}")
                info.size = len(item.data)
                info.mtime = int(time.time())
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(item.data))

    write_bytes(path, archive, field=field, protect=protect)
