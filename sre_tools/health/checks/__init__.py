"""Check modules; importing this package registers every check, in this order."""
# isort: skip_file

from sre_tools.health.checks import (  # noqa: F401  (importing registers the checks)
    core,
    xid,
    memory,
    thermal,
    clocks,
    power,
    pcie,
    nvlink,
    fabric,
    persistence_firmware,
    mig,
    infiniband,
    reset,  # last: aggregates the findings above into one "reset or reboot pending"
)
