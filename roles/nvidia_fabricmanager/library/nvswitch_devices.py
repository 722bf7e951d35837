#!/usr/bin/python
"""Ansible module: list the NVSwitches of this node (read-only, check-mode safe)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvswitch_devices
short_description: Find NVIDIA NVSwitch devices on the PCI bus
description:
  - Reads C(<sysfs_root>/bus/pci/devices/*/{vendor,device,class}) and counts NVIDIA (vendor
    C(0x10de)) devices of PCI class C(0x0680) (bridge), or whose device id is in O(pci_ids), as
    NVSwitches; also lists C(<proc_root>/driver/nvidia-nvswitch/devices) when the driver is loaded.
  - Changes nothing; reports C(changed=false).
options:
  sysfs_root:
    description: Where sysfs is mounted.
    type: path
    default: /sys
  proc_root:
    description: Where procfs is mounted.
    type: path
    default: /proc
  pci_ids:
    description: NVIDIA PCI device ids (hex, without C(0x)) that count as NVSwitches.
    type: list
    elements: str
    default: []
author:
  - SRE tools maintainers
"""

RETURN = r"""
nvswitches:
  description: PCI addresses of the NVSwitches found on the bus.
  returned: always
  type: list
  elements: str
driver_devices:
  description: Entries of /proc/driver/nvidia-nvswitch/devices (the loaded driver's view).
  returned: always
  type: list
  elements: str
present:
  description: Whether any NVSwitch was found either way.
  returned: always
  type: bool
"""

import os  # noqa: E402 - after the documentation strings, as Ansible modules are

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

NVIDIA_VENDOR = "0x10de"
BRIDGE_OTHER_CLASS = "0x0680"


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as stream:
            return stream.read().strip().lower()
    except OSError:
        return ""


def find_nvswitches(sysfs_root: str, pci_ids: list[str]) -> list[str]:
    devices_dir = os.path.join(sysfs_root, "bus", "pci", "devices")
    wanted = {"0x" + pci_id.lower().removeprefix("0x") for pci_id in pci_ids}
    found = []
    try:
        addresses = sorted(os.listdir(devices_dir))
    except OSError:
        return []
    for address in addresses:
        base = os.path.join(devices_dir, address)
        if _read(os.path.join(base, "vendor")) != NVIDIA_VENDOR:
            continue
        device = _read(os.path.join(base, "device"))
        pci_class = _read(os.path.join(base, "class"))
        if pci_class.startswith(BRIDGE_OTHER_CLASS) or device in wanted:
            found.append(address)
    return found


def driver_devices(proc_root: str) -> list[str]:
    try:
        return sorted(os.listdir(os.path.join(proc_root, "driver", "nvidia-nvswitch", "devices")))
    except OSError:
        return []


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "sysfs_root": {"type": "path", "default": "/sys"},
            "proc_root": {"type": "path", "default": "/proc"},
            "pci_ids": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    switches = find_nvswitches(module.params["sysfs_root"], module.params["pci_ids"])
    via_driver = driver_devices(module.params["proc_root"])
    module.exit_json(
        changed=False,
        nvswitches=switches,
        driver_devices=via_driver,
        present=bool(switches or via_driver),
    )


if __name__ == "__main__":
    main()
