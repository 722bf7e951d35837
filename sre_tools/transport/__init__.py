"""How the package runs a command or moves a file on a node: locally or over SSH.

Every transport takes an argv list (never a shell string), enforces a timeout on each call, caps
the output it keeps and closes as a context manager. :func:`transport_for_host` builds one from an
inventory host entry. The SSH transport imports paramiko only when it is used (the ``chaos``
extra).
"""

from __future__ import annotations

from sre_tools.transport.base import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_OUTPUT_BYTES,
    AuthError,
    ConnectError,
    HostKeyError,
    Result,
    Transport,
    TransportError,
    TransportTimeout,
)
from sre_tools.transport.inventory import SshTarget, ssh_target, transport_for_host
from sre_tools.transport.local import LocalTransport

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "AuthError",
    "ConnectError",
    "HostKeyError",
    "LocalTransport",
    "Result",
    "SshTarget",
    "Transport",
    "TransportError",
    "TransportTimeout",
    "ssh_target",
    "transport_for_host",
]
