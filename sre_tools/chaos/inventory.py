"""Drill targets from an Ansible YAML inventory: the allowlist, each node's transport, ``--limit``.

One file gives both what a drill may touch (the ``chaos_targets`` group, see
:mod:`sre_tools.chaos.safety`) and how to reach each node: its variables, merged as Ansible merges
them, go to :func:`sre_tools.transport.transport_for_host`. A config file that only lists
``chaos_targets: [node, ...]`` has no variables: its nodes are reached with the local transport.

Variables merged, lowest precedence first: ``all.vars``, then the ``vars`` of every group the
host is in, parents before children (groups at the same depth by name, as Ansible sorts them),
then the host's own variables. Not read: ``group_vars/`` and ``host_vars/`` directories, INI
inventories, inventory plugins, and Jinja templates in values (a ``{{ ... }}`` value is refused
by the field's validation, never rendered).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sre_tools.chaos.safety import ALLOWLIST_GROUP, allowlist_from_data
from sre_tools.exceptions import ValidationError
from sre_tools.inputs import MAX_SPEC_BYTES, load_yaml, read_text_capped
from sre_tools.transport import LocalTransport, Transport, ssh_target, transport_for_host

MAX_GROUP_DEPTH = 16
# Ansible's --limit syntax we do not take: a regex (~), a file (@), a slice (group[0:2]).
_UNSUPPORTED_LIMIT = ("~", "@")
# ',' always separates; ':' only outside brackets (inside, it is a slice: refused).
_SEPARATOR = re.compile(r",|:(?![^\[]*\])")

TransportFactory = Callable[[str], Transport]


@dataclass(frozen=True)
class Inventory:
    """Hosts with their merged variables, and every group's hosts (children included)."""

    source: str
    hostvars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _mapping_or_empty(value: Any, source: str, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError("must be a mapping", source=source, field=where)
    return value


def parse_inventory(data: Any, source: str) -> Inventory:
    """An :class:`Inventory` from a YAML inventory document (``all:`` or top-level groups)."""
    if not isinstance(data, Mapping):
        raise ValidationError("must be a YAML mapping of groups", source=source)
    # host -> [(depth, group, vars)], host -> own vars (later occurrences win)
    group_vars: dict[str, list[tuple[int, str, Mapping[str, Any]]]] = {}
    own_vars: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}

    def walk(name: str, group: Any, depth: int, where: str, chain: tuple[str, ...]) -> list[str]:
        if depth > MAX_GROUP_DEPTH:
            raise ValidationError("groups nested too deeply", source=source, field=where)
        group = _mapping_or_empty(group, source, where)
        gvars = _mapping_or_empty(group.get("vars"), source, f"{where}.vars")
        members: list[str] = []
        hosts = _mapping_or_empty(group.get("hosts"), source, f"{where}.hosts")
        for key, hvars in hosts.items():
            host = str(key)
            own = _mapping_or_empty(hvars, source, f"{where}.hosts.{host}")
            own_vars.setdefault(host, {}).update(own)
            members.append(host)
        children = _mapping_or_empty(group.get("children"), source, f"{where}.children")
        for child, body in children.items():
            if child in chain:
                raise ValidationError("group is its own ancestor", source=source, field=where)
            members += walk(
                str(child), body, depth + 1, f"{where}.children.{child}", (*chain, child)
            )
        for host in members:
            group_vars.setdefault(host, []).append((depth, name, gvars))
        groups.setdefault(name, []).extend(members)
        return members

    for name, body in data.items():
        walk(str(name), body, 0 if name == "all" else 1, str(name), (str(name),))
    hostvars: dict[str, dict[str, Any]] = {}
    for host, own in own_vars.items():
        merged: dict[str, Any] = {}
        for _, _, gvars in sorted(group_vars.get(host, []), key=lambda g: (g[0], g[1])):
            merged.update(gvars)
        merged.update(own)
        hostvars[host] = merged
    return Inventory(
        source, hostvars, {g: tuple(dict.fromkeys(hosts)) for g, hosts in groups.items()}
    )


def limit_hosts(candidates: Sequence[str], pattern: str, inventory: Inventory) -> tuple[str, ...]:
    """The ``candidates`` that Ansible's ``--limit PATTERN`` keeps, in the subset we support:
    items separated by ``,`` or ``:``; each a host name, a group name or an ``fnmatch`` glob on
    host names (``gpu-*``, ``n[1-3]``); ``!item`` removes what it matches, ``&item`` keeps only
    what it also matches. Regexes (``~``), files (``@``) and slices (``group[0:2]``) are refused.
    """
    items = [p.strip() for p in _SEPARATOR.split(pattern) if p.strip()]
    if not items:
        raise ValidationError("is empty", field="--limit")
    include: set[str] = set()
    plain = False
    excluded: set[str] = set()
    required: list[set[str]] = []
    for item in items:
        op, word = (item[0], item[1:]) if item[0] in "!&" else ("", item)
        if not word or word[0] in _UNSUPPORTED_LIMIT or _is_slice(word):
            raise ValidationError(
                f"unsupported pattern {item!r} (names, groups, globs, !exclude, &intersect)",
                field="--limit",
            )
        matched = _match(word, candidates, inventory)
        if op == "!":
            excluded |= matched
        elif op == "&":
            required.append(matched)
        else:
            plain = True
            include |= matched
    kept = include if plain else set(candidates)
    for need in required:
        kept &= need
    kept -= excluded
    selected = tuple(n for n in candidates if n in kept)
    if not selected:
        raise ValidationError(
            f"{pattern!r} matches none of the candidates ({', '.join(candidates)})",
            field="--limit",
        )
    return selected


def _is_slice(word: str) -> bool:
    # `group[0:2]` is a slice; `n[12]` and `n[1-3]` are fnmatch classes (as globs they match).
    return word.endswith("]") and ":" in word.rsplit("[", maxsplit=1)[-1]


def _match(word: str, candidates: Sequence[str], inventory: Inventory) -> set[str]:
    if word in inventory.groups:
        return set(inventory.groups[word]) & set(candidates)
    if word in ("all", "*"):
        return set(candidates)
    return {n for n in candidates if fnmatch.fnmatchcase(n, word)}


class InventoryTransports:
    """The transport factory of an inventory: ``factory(node)`` builds the node's transport from
    its merged variables (local for ``ansible_connection: local``, else SSH). :meth:`check`
    validates nodes' fields before anything connects; :meth:`describe` says how a node is reached
    (``local`` or ``user@host:port``), for the journal (never a secret)."""

    def __init__(
        self, inventory: Inventory | None, *, known_hosts: str | Path | None = None, **options: Any
    ):
        self.inventory = inventory
        self.known_hosts = known_hosts
        self.options = options

    def _vars(self, node: str) -> Mapping[str, Any] | None:
        if self.inventory is None:
            return None
        if node not in self.inventory.hostvars:
            raise ValidationError(
                f"host {node!r} is not in the inventory", source=self.inventory.source
            )
        return self.inventory.hostvars[node]

    def __call__(self, node: str) -> Transport:
        hostvars = self._vars(node)
        if hostvars is None:
            return LocalTransport()
        return transport_for_host(node, hostvars, known_hosts=self.known_hosts, **self.options)

    def describe(self, node: str) -> str:
        hostvars = self._vars(node)
        if hostvars is None or hostvars.get("ansible_connection") == "local":
            return "local"
        connection = hostvars.get("ansible_connection", "ssh")
        if connection not in ("ssh", "paramiko", "smart"):
            raise ValidationError(
                f"must be ssh, paramiko or local, got {connection!r}",
                source=f"inventory host {node!r}",
                field="ansible_connection",
            )
        t = ssh_target(node, hostvars, known_hosts=self.known_hosts)
        return f"{t.user}@{t.host}:{t.port}"

    def check(self, nodes: Sequence[str]) -> dict[str, str]:
        """Validate every node's fields; return how each is reached."""
        return {node: self.describe(node) for node in nodes}


def load_inventory(path: str) -> tuple[tuple[str, ...], Inventory | None]:
    """``(allowlist, inventory)`` of an inventory file; the inventory is None for a config file
    that only lists ``chaos_targets: [...]`` (its nodes are reached locally)."""
    text, source = read_text_capped(path, MAX_SPEC_BYTES, what="inventory")
    data = load_yaml(text, source)
    allowlist = allowlist_from_data(data, source)
    if isinstance(data, Mapping) and isinstance(data.get(ALLOWLIST_GROUP), list):
        return allowlist, None
    return allowlist, parse_inventory(data, source)


def inventory_transports(
    path: str, known_hosts: str | Path | None = None, **options: Any
) -> tuple[tuple[str, ...], InventoryTransports]:
    """The allowlist of the inventory at ``path`` and a transport factory for its nodes.

    ``known_hosts`` overrides every host's known_hosts file; ``options`` go to each transport
    (``connect_timeout``, ``max_output``...). What ``sre drill run --inventory`` uses.
    """
    allowlist, inventory = load_inventory(path)
    return allowlist, InventoryTransports(inventory, known_hosts=known_hosts, **options)


def recover_transports(
    events: Sequence[Mapping[str, Any]],
    inventory: str | None,
    *,
    known_hosts: str | Path | None = None,
) -> InventoryTransports:
    """The factory that reaches a journaled run's nodes again for ``sre drill recover``: from
    ``inventory``, else the inventory its ``run-start`` names. Each node must still be reached the
    way the journal says (``local`` or ``user@host:port``): rollbacks never go to another host."""
    start = events[0]
    journaled: Mapping[str, str] = start.get("transports") or {}
    path = inventory or start.get("inventory")
    if not path and "transports" in start and start["transports"] is None:
        # Started through the API without saying how it reached its nodes (a journal from
        # before transports were journaled has no key at all: those runs were all local).
        raise ValidationError(
            "the journal does not say how the run reached its nodes: give its inventory",
            field="--inventory",
        )
    if not path:
        remote = sorted(n for n, how in journaled.items() if how != "local")
        if remote:
            raise ValidationError(
                f"the run reached {', '.join(remote)} over SSH: give its inventory",
                field="--inventory",
            )
        return InventoryTransports(None)
    _, factory = inventory_transports(str(path), known_hosts=known_hosts)
    nodes: list[Any] = next(
        (list(e["nodes"]) for e in events if e.get("event") == "targets-resolved"), []
    )
    now = factory.check([str(n) for n in nodes])
    for node, how in journaled.items():
        if now.get(node) != how:
            raise ValidationError(
                f"{node} was reached as {how}; the inventory now says {now.get(node)}",
                source=str(path),
                field="--inventory",
            )
    return factory
