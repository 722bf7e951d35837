"""A transport from an inventory host entry (Ansible's variable names), every field validated.

The entry is data from a file someone edited: each field is checked before it reaches paramiko
or a command line, and a bad one raises :class:`ValidationError` naming the host and the field.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sre_tools.exceptions import ValidationError
from sre_tools.transport.base import Transport

# useradd's default NAME_REGEX (Debian), with the trailing `$` of machine accounts.
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}\$?")
# A DNS name, an IPv4 address or an IPv6 address (with an optional %zone).
_HOST = re.compile(r"[A-Za-z0-9:][A-Za-z0-9._:%-]{0,252}")
# Variables that would carry a password: refused, and their values never repeated.
_PASSWORD_VARS = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
KNOWN_HOSTS_VAR = "sre_known_hosts_file"


@dataclass(frozen=True)
class SshTarget:
    """Where and how to reach one node over SSH; validated by :func:`ssh_target`."""

    name: str  # inventory hostname, for messages
    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    load_system_host_keys: bool = False


def _fail(name: str, field: str, message: str) -> ValidationError:
    return ValidationError(message, source=f"inventory host {name!r}", field=field)


def _path(name: str, field: str, value: Any) -> Path:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise _fail(name, field, "must be a file path")
    text = str(value)
    if "\0" in text or "\n" in text:
        raise _fail(name, field, "must be a file path without NUL or newline")
    return Path(text).expanduser()


def _known_hosts_from_args(args: Any) -> str | None:
    """``-o UserKnownHostsFile=PATH`` in ``ansible_ssh_common_args``, as the inventories that
    Ansible uses with verified host keys carry it."""
    if not isinstance(args, str):
        return None
    try:
        words = shlex.split(args)
    except ValueError:
        return None
    for i, word in enumerate(words):
        option = word[2:] if word.startswith("-o") and len(word) > 2 else None
        if word == "-o" and i + 1 < len(words):
            option = words[i + 1]
        if option and option.lower().startswith("userknownhostsfile="):
            return option.split("=", 1)[1].split()[0] if option.split("=", 1)[1] else None
    return None


def ssh_target(
    name: str,
    hostvars: Mapping[str, Any],
    *,
    known_hosts: str | Path | None = None,
    load_system_host_keys: bool = False,
) -> SshTarget:
    """Validate ``hostvars`` of inventory host ``name``.

    Fields: ``ansible_host`` (default: ``name``), ``ansible_port`` (default 22), ``ansible_user``
    and ``ansible_ssh_private_key_file`` (required). The known_hosts file is ``known_hosts``,
    else the host's ``sre_known_hosts_file``, else ``UserKnownHostsFile`` in its
    ``ansible_ssh_common_args``; there is no default, and the system's files are read only with
    ``load_system_host_keys``.
    """
    for var in _PASSWORD_VARS:
        if hostvars.get(var) is not None:
            raise _fail(name, var, "password authentication is not supported; use a key file")

    host = hostvars.get("ansible_host", name)
    if not isinstance(host, str) or not host:
        raise _fail(name, "ansible_host", "must be a host name or address")
    if host.startswith("-"):
        raise _fail(name, "ansible_host", f"must not start with '-', got {host!r}")
    if not _HOST.fullmatch(host):
        raise _fail(name, "ansible_host", f"not a host name or address: {host!r}")

    raw_port = hostvars.get("ansible_port", 22)
    if isinstance(raw_port, str) and raw_port.strip().isdigit():
        raw_port = int(raw_port)  # INI inventories give strings
    if isinstance(raw_port, bool) or not isinstance(raw_port, int):
        raise _fail(name, "ansible_port", f"must be an integer, got {raw_port!r}")
    if not 1 <= raw_port <= 65535:
        raise _fail(name, "ansible_port", f"must be in 1..65535, got {raw_port}")

    user = hostvars.get("ansible_user")
    if user is None:
        raise _fail(name, "ansible_user", "is required")
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise _fail(name, "ansible_user", f"must match {_USER.pattern}, got {user!r}")

    if hostvars.get("ansible_ssh_private_key_file") is None:
        raise _fail(name, "ansible_ssh_private_key_file", "is required (key auth only)")
    key_file = _path(name, "ansible_ssh_private_key_file", hostvars["ansible_ssh_private_key_file"])

    if known_hosts is not None:
        known, field = known_hosts, "known_hosts"
    elif hostvars.get(KNOWN_HOSTS_VAR) is not None:
        known, field = hostvars[KNOWN_HOSTS_VAR], KNOWN_HOSTS_VAR
    else:
        found = _known_hosts_from_args(hostvars.get("ansible_ssh_common_args"))
        if found is None:
            raise _fail(
                name,
                KNOWN_HOSTS_VAR,
                "no known_hosts file: set it, or UserKnownHostsFile in ansible_ssh_common_args",
            )
        known, field = found, "ansible_ssh_common_args"
    known_path = _path(name, field, known)
    if str(known_path) == "/dev/null":
        raise _fail(name, field, "known_hosts is /dev/null: host keys would not be verified")

    return SshTarget(
        name=name,
        host=host,
        port=raw_port,
        user=user,
        key_file=key_file,
        known_hosts=known_path,
        load_system_host_keys=load_system_host_keys,
    )


def transport_for_host(
    name: str,
    hostvars: Mapping[str, Any],
    *,
    known_hosts: str | Path | None = None,
    load_system_host_keys: bool = False,
    **options: Any,
) -> Transport:
    """A transport for inventory host ``name``: local for ``ansible_connection: local``, SSH
    otherwise. ``options`` go to the transport (timeouts, ``max_output``)."""
    connection = hostvars.get("ansible_connection", "ssh")
    if connection == "local":
        from sre_tools.transport.local import LocalTransport

        return LocalTransport(**options)
    if connection not in ("ssh", "paramiko", "smart"):
        raise _fail(
            name, "ansible_connection", f"must be ssh, paramiko or local, got {connection!r}"
        )
    target = ssh_target(
        name, hostvars, known_hosts=known_hosts, load_system_host_keys=load_system_host_keys
    )
    from sre_tools.transport.ssh import SshTransport

    return SshTransport(target, **options)
