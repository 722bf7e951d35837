"""Fixtures for integration tests that run a real Prometheus on loopback.

A test module provides the data by overriding the module-scoped ``prometheus_series`` fixture
(a list of :class:`tests.helpers.prometheus.CounterSeries`); ``prometheus`` backfills it with
promtool into a fresh TSDB and serves it on 127.0.0.1 for the whole module.

Missing ``prometheus``/``promtool`` binaries fail the tests (they never skip): the CI installs them,
and a silently skipped integration suite would hide exactly the breakage it exists to catch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from tests.helpers.prometheus import (
    CounterSeries,
    MissingBinaryError,
    PrometheusError,
    PrometheusServer,
    backfill_series,
    find_binary,
)

LOOPBACK_NO_PROXY = "127.0.0.1,localhost"


@pytest.fixture(scope="module")
def prometheus_series() -> Sequence[CounterSeries]:
    pytest.fail("the test module must override the prometheus_series fixture", pytrace=False)


@pytest.fixture(scope="module")
def prometheus(
    prometheus_series: Sequence[CounterSeries], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """Prometheus serving ``prometheus_series`` (backfilled) on 127.0.0.1:<free port>."""
    try:
        find_binary("promtool")
        find_binary("prometheus")
    except MissingBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    workdir = tmp_path_factory.mktemp("prometheus")
    try:
        tsdb = backfill_series(prometheus_series, workdir)
        server = PrometheusServer(tsdb, workdir=workdir).start()
    except PrometheusError as exc:
        pytest.fail(f"cannot start Prometheus: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _loopback_without_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI uses urllib, which honours *_proxy variables: never send loopback through a proxy."""
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, LOOPBACK_NO_PROXY)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the Prometheus log to the report of a failed test that used the server."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    server = getattr(item, "funcargs", {}).get("prometheus")
    if isinstance(server, PrometheusServer):
        report.sections.append(("Prometheus log (tail)", server.log(8000)))
