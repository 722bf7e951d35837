"""Check modules; importing this package registers every check, in this order."""

from sre_tools.health.checks import core  # noqa: F401  (registers checks)

# Further modules register themselves here as they land (memory, thermal, pcie, nvlink, xid, ...).
