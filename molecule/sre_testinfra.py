"""Shared testinfra support for the roles' molecule scenarios.

Each role's ``molecule/tests/conftest.py`` re-exports these; ``molecule/base.yml`` puts this
directory on ``PYTHONPATH`` for the verifier.

* ``host`` is testinfra's host for the instance, from molecule's inventory: plain ``ssh`` per
  command with the inventory's key, port and verified known_hosts (not an Ansible module run per
  command, which costs seconds each).
* ``role_vars`` is what the role saw: its ``defaults/main.yml`` overlaid with the scenario's
  inventory variables, so one test module serves the ``default`` and ``alternative`` scenarios.
* A failing test gets ``journalctl -u UNIT`` of the units its module names in ``JOURNAL_UNITS``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra
import testinfra.host
import yaml

JOURNAL_LINES = 200


@pytest.fixture(scope="module")
def host(_testinfra_host: testinfra.host.Host) -> testinfra.host.Host:
    """The instance under test. Molecule's inventory reaches it over SSH (molecule/base.yml),
    and for an ssh connection testinfra's ansible backend runs each command with plain ``ssh``;
    any other connection would run an Ansible module per command, so it fails here."""
    connection = _testinfra_host.backend.get_variables().get("ansible_connection")
    if connection != "ssh":
        pytest.fail(f"expected ansible_connection ssh for the instance, got {connection!r}")
    return _testinfra_host


@pytest.fixture(scope="module")
def role_vars(_testinfra_host: testinfra.host.Host) -> dict[str, Any]:
    """The role's defaults with the scenario's inventory variables on top."""
    project = os.environ.get("MOLECULE_PROJECT_DIRECTORY")
    if not project:
        pytest.fail("MOLECULE_PROJECT_DIRECTORY is not set: run the tests through molecule")
    defaults_file = Path(project) / "defaults" / "main.yml"
    merged: dict[str, Any] = yaml.safe_load(defaults_file.read_text(encoding="utf-8")) or {}
    merged.update(_testinfra_host.backend.get_variables())
    return merged


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the journal of the module's units to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    units = getattr(getattr(item, "module", None), "JOURNAL_UNITS", ())
    target = getattr(item, "funcargs", {}).get("host")
    if not units or target is None:
        return
    for unit in units:
        result = target.run("journalctl --no-pager -n %s -u %s", str(JOURNAL_LINES), unit)
        report.sections.append((f"journalctl -u {unit}", result.stdout + result.stderr))
