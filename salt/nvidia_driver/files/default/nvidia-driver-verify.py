#!/usr/bin/env python3
# This file is managed by Salt (nvidia_driver formula).
"""Check that every GPU answers on the expected driver (the nvidia_driver formula's verify step).

Asks nvidia-smi, or NVML through nvml_probe.py next to this script (ctypes: only
libnvidia-ml.so.1 needed, no Python package). Exits 0 when the node shows the expected GPUs;
otherwise 1 with what it found on stderr (nothing with --silent). Read-only: it changes nothing
on the GPUs.
"""

import argparse
import json
import os
import subprocess
import sys

TIMEOUT_SECONDS = 60
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nvml_probe.py")


class CheckError(Exception):
    pass


def from_nvidia_smi():
    argv = [
        "nvidia-smi",
        "--query-gpu=index,driver_version,persistence_mode",
        "--format=csv,noheader",
    ]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CheckError(f"nvidia-smi: {exc}") from None
    if proc.returncode != 0:
        raise CheckError(f"nvidia-smi exited {proc.returncode}: {proc.stdout}{proc.stderr}".strip())
    gpus = []
    for line in proc.stdout.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3:
            gpus.append(
                {"index": fields[0], "driver": fields[1], "persistence": fields[2] == "Enabled"}
            )
    return gpus


def from_nvml():
    # NVML answers through nvml_probe.py, installed next to this script: the probe the Ansible
    # role runs too (roles/nvidia_driver/files/nvml_probe.py), so both read NVML one way.
    try:
        proc = subprocess.run(
            [sys.executable, PROBE],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CheckError(f"nvml_probe: {exc}") from None
    if proc.returncode != 0:
        raise CheckError(proc.stderr.strip() or f"nvml_probe exited {proc.returncode}")
    try:
        gpus = json.loads(proc.stdout)["gpus"]
    except (ValueError, KeyError) as exc:
        raise CheckError(f"nvml_probe: unreadable output ({exc})") from None
    return [
        {
            "index": str(gpu["index"]),
            "driver": gpu["driver_version"],
            "persistence": bool(gpu["persistence_mode"]),
        }
        for gpu in gpus
    ]


def problems(gpus, expect, count, persistence):
    found = []
    if not gpus:
        found.append("no GPU answers")
    if count and len(gpus) != count:
        found.append(f"{len(gpus)} GPU(s), expected {count}")
    wrong = [f"GPU {g['index']}: {g['driver']}" for g in gpus if not g["driver"].startswith(expect)]
    if wrong:
        found.append(f"driver other than {expect}*: {', '.join(wrong)}")
    if persistence:
        off = [g["index"] for g in gpus if not g["persistence"]]
        if off:
            found.append(
                f"persistence mode off on GPU(s) {', '.join(off)}"
                " (journalctl -u nvidia-persistenced)"
            )
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["nvidia_smi", "nvml"], default="nvidia_smi")
    parser.add_argument("--expect", required=True, help="driver version prefix (535.261.03, 535.)")
    parser.add_argument(
        "--count", type=int, default=0, help="GPUs the node must show; 0: at least one"
    )
    parser.add_argument("--persistence", action="store_true", help="persistence mode must be on")
    parser.add_argument("--silent", action="store_true")
    args = parser.parse_args(argv)
    try:
        gpus = from_nvml() if args.method == "nvml" else from_nvidia_smi()
        found = problems(gpus, args.expect, args.count, args.persistence)
    except CheckError as exc:
        found = [str(exc)]
    if found:
        if not args.silent:
            sys.stderr.write("nvidia_driver verify: " + "; ".join(found) + "\n")
        return 1
    if not args.silent:
        print(f"nvidia_driver verify: {len(gpus)} GPU(s) on driver {gpus[0]['driver']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
