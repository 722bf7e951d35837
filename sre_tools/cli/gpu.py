"""``sre gpu``: record a machine's NVML readings for replay (tests, demos, bug reports)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TextIO

import click

from sre_tools.cli.output import emit, json_option, wrote


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
    from sre_tools.gpu.backend import RealBackend
    from sre_tools.gpu.backend import capture as do_capture
    from sre_tools.outputs import check_output, write_text
    from sre_tools.timeutil import iso, now

    check_output(output, field="--output")  # before NVML is read

    with progress("reading NVML", enabled=wanted(as_json)) as report:
        data = do_capture(
            RealBackend(),
            host=socket.gethostname(),
            captured_at=iso(now().timestamp()) or "",
            progress=report,
        )

    def dump(fh: TextIO) -> None:
        json.dump(data, fh, indent=1, sort_keys=False)
        fh.write("\n")

    write_text(output, dump, field="--output")
    summary = {
        "output": str(output),
        "gpus": len(data["devices"]),
        "readings": sum(len(d["readings"]) for d in data["devices"]),
    }
    emit(
        summary,
        as_json,
        lambda s: wrote(
            f"recorded {s['readings']} readings from {s['gpus']} GPU(s) to {s['output']}", output
        ),
    )
