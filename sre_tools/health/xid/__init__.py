"""NVIDIA XIDs: the vendored catalog, the kernel-log parser, NVML events, classification.

- :mod:`.catalog`: NVIDIA's XID catalog (``sre_tools/data/xid``), loaded on first use;
- :mod:`.parser`: kernel-log lines (any dmesg/kmsg/journal/syslog prefix) to :class:`XidEvent`;
- :mod:`.kernel_log`: backfill from /dev/kmsg, journalctl or dmesg (current boot);
- :mod:`.events`: the NVML event thread, the event-dict schema, de-duplication across sources;
- :mod:`.classify`: catalog buckets to our actions, and one decision per GPU.

The health check (``sre_tools.health.checks.xid``) and ``sre xid explain`` put these together.
"""

from sre_tools.health.xid.model import XidEvent

__all__ = ["XidEvent"]
