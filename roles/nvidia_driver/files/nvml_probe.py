#!/usr/bin/env python3
"""Print the driver version and the GPUs NVML reports, as JSON (nvidia_driver's verify step).

Needs only Python 3 and libnvidia-ml.so.1 on the node: no nvidia-ml-py. Exits 1 with the NVML
error on stderr when NVML cannot answer (no driver loaded, no GPU, library missing).
Read-only: it changes nothing on the GPUs.
"""

import ctypes
import json
import sys

NVML_SUCCESS = 0
NVML_FEATURE_ENABLED = 1
BUFFER_SIZE = 96


def fail(message):
    sys.stderr.write("nvml_probe: " + message + "\n")
    sys.exit(1)


def main():
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError as exc:
        fail(f"cannot load libnvidia-ml.so.1: {exc}")
    nvml.nvmlErrorString.restype = ctypes.c_char_p

    def check(rc, call):
        if rc != NVML_SUCCESS:
            fail(f"{call}: {nvml.nvmlErrorString(rc).decode(errors='replace')}")

    def text(function, *args):
        buffer = ctypes.create_string_buffer(BUFFER_SIZE)
        check(function(*args, buffer, ctypes.c_uint(BUFFER_SIZE)), function.__name__)
        return buffer.value.decode(errors="replace")

    check(nvml.nvmlInit_v2(), "nvmlInit_v2")
    try:
        driver_version = text(nvml.nvmlSystemGetDriverVersion)
        count = ctypes.c_uint()
        check(nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)), "nvmlDeviceGetCount_v2")
        gpus = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            check(
                nvml.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle)),
                "nvmlDeviceGetHandleByIndex_v2",
            )
            mode = ctypes.c_int()
            persistence = nvml.nvmlDeviceGetPersistenceMode(handle, ctypes.byref(mode))
            gpus.append(
                {
                    "index": index,
                    "uuid": text(nvml.nvmlDeviceGetUUID, handle),
                    "name": text(nvml.nvmlDeviceGetName, handle),
                    "driver_version": driver_version,
                    "persistence_mode": persistence == NVML_SUCCESS
                    and mode.value == NVML_FEATURE_ENABLED,
                }
            )
    finally:
        nvml.nvmlShutdown()
    json.dump({"driver_version": driver_version, "gpus": gpus}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
