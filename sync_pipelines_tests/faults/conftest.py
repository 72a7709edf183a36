"""Fault suite harness: a source adapter per test, short read timeouts, the scenario tally.

Cases marked ``faults`` (database restarts, SIGKILL, concurrent runs, the matrix on Postgres)
run only under ``make faults`` (``SYNC_FAULT_SUITE=full``); the rest run with every test run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from sync_pipelines.http_client import VendorHTTPClient
from sync_pipelines.sandbox import Sandbox
from sync_pipelines_tests.faults.sources import SOURCES, Comparison, FaultSource

FULL_SUITE = os.environ.get("SYNC_FAULT_SUITE") == "full"
READ_TIMEOUT = 0.5  # seconds; the read-timeout fault answers after twice that


def pytest_collection_modifyitems(config, items) -> None:
    if FULL_SUITE:
        return
    skip = pytest.mark.skip(reason="long fault case: run by `make faults`")
    for item in items:
        if item.get_closest_marker("faults"):
            item.add_marker(skip)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.faults])])
def database_url(request) -> str:
    """The matrix runs on SQLite with every test run, and on Postgres too under `make faults`."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def short_read_timeout(monkeypatch) -> float:
    """Every vendor client gives up reading after READ_TIMEOUT (production waits 30 s)."""
    original = VendorHTTPClient.__post_init__

    def post_init(self) -> None:
        original(self)
        self.timeout = (self.timeout[0], READ_TIMEOUT)

    monkeypatch.setattr(VendorHTTPClient, "__post_init__", post_init)
    return READ_TIMEOUT


@pytest.fixture
def make_source_on(secret_key, monkeypatch) -> Iterator:
    """``make_source_on(name, warehouse)``: the source's adapter over a sandbox serving only
    its vendors (the vendor variables point at it), writing to ``warehouse``."""
    with ExitStack() as stack:
        made: list[FaultSource] = []

        def make(name: str, warehouse) -> FaultSource:
            cls = SOURCES[name]
            sandbox = stack.enter_context(Sandbox(seed=42, vendors=cls.vendors))
            for key, value in sandbox.env().items():
                monkeypatch.setenv(key, value)
            made.append(cls(sandbox, warehouse))
            return made[-1]

        yield make
        for source in made:
            source.dispose()


@pytest.fixture
def make_source(make_source_on, warehouse):
    """``make_source(name)``: the adapter writing to the test's ``warehouse`` (SQLite, or Postgres)."""
    return lambda name: make_source_on(name, warehouse)


@pytest.fixture
def tally(request):
    """Record a scenario's losses and duplicates for the summary line (``record(comparison)``)."""

    def record(comparison: Comparison) -> None:
        request.node.user_properties.append(("fault_lost", len(comparison.lost)))
        request.node.user_properties.append(("fault_duplicated", len(comparison.duplicated)))

    request.node.user_properties.append(("fault_scenario", request.node.nodeid))
    return record


_SCENARIOS: dict[str, dict] = {}


def pytest_runtest_logreport(report) -> None:
    props = dict(report.user_properties) if report.user_properties else {}
    if "fault_scenario" not in props:
        return
    entry = _SCENARIOS.setdefault(report.nodeid, {"held": True, "lost": 0, "duplicated": 0, "run": False})
    if report.when == "call":
        entry["run"] = True
    entry["held"] = entry["held"] and not report.failed and not hasattr(report, "wasxfail")
    lost = [v for k, v in report.user_properties if k == "fault_lost"]
    dup = [v for k, v in report.user_properties if k == "fault_duplicated"]
    entry["lost"] = max(entry["lost"], max(lost, default=0))
    entry["duplicated"] = max(entry["duplicated"], max(dup, default=0))


def pytest_terminal_summary(terminalreporter) -> None:
    ran = {k: v for k, v in _SCENARIOS.items() if v["run"]}
    if not ran:
        return
    held = sum(v["held"] for v in ran.values())
    lost = sum(v["lost"] for v in ran.values())
    duplicated = sum(v["duplicated"] for v in ran.values())
    terminalreporter.write_line(
        f"faults: {held}/{len(ran)} scenarios held, {lost} rows lost, {duplicated} duplicated"
    )
