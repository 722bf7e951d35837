"""``sre gpu``: record a machine's NVML readings for replay (tests, demos, bug reports)."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

import click

from sre_tools.cli.output import emit, json_option


@click.group()
def gpu() -> None:
    """NVML recordings (read-only: nothing on the GPU changes)."""


@gpu.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Write the recording (JSON) here.",
)
@json_option
def capture(output: Path, as_json: bool) -> None:
    """Record every reading the health checks use from this machine's GPUs."""
    from sre_tools.cli.progress import progress, wanted
    from sre_tools.exceptions import SreError
    from sre_tools.gpu.backend import RealBackend
    from sre_tools.gpu.backend import capture as do_capture
    from sre_tools.timeutil import iso, now

    with progress("reading NVML", enabled=wanted(as_json)) as report:
        data = do_capture(
            RealBackend(),
            host=socket.gethostname(),
            captured_at=iso(now().timestamp()) or "",
            progress=report,
        )
    folder = output.parent if str(output.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, output)
    except OSError as exc:
        raise SreError(f"{output}: cannot write: {exc.strerror or exc}") from None
    summary = {
        "output": str(output),
        "gpus": len(data["devices"]),
        "readings": sum(len(d["readings"]) for d in data["devices"]),
    }
    emit(
        summary,
        as_json,
        lambda s: click.echo(
            f"recorded {s['readings']} readings from {s['gpus']} GPU(s) to {s['output']}"
        ),
    )
