"""Shared fixtures and hooks: molecule/sre_testinfra.py (on PYTHONPATH via molecule/base.yml)."""

from sre_testinfra import host, pytest_runtest_makereport, role_vars  # noqa: F401
