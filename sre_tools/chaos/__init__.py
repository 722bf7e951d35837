"""Chaos drills: prove that detection, alerting, remediation and rollback work.

- :mod:`.model`: the drill model, read from and written to Chaos Toolkit's experiment format;
- :mod:`.tolerance`: does a probe's value satisfy a tolerance;
- :mod:`.inventory`: targets from an Ansible inventory: the allowlist, each node's transport
  (:mod:`sre_tools.transport`), ``--limit``;
- :mod:`.safety`: allowlist, blast radius, the fleet lock, the abort switch, preconditions;
- :mod:`.preconditions`: error budget, paging alerts, remediation drain budget;
- :mod:`.journal`: the append-only, fsync'd event log of a run and its Chaos Toolkit export;
- :mod:`.runner`: steady state -> method -> expectations -> rollbacks, always; ``recover``;
- :mod:`.results`: runs and measured times in the store, ``sre drill report``;
- :mod:`.actions` and :mod:`.probes`: the activities the catalog's drills use.
"""
