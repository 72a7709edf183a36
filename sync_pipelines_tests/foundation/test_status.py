"""``python -m sync_pipelines status``: real syncs on a real instance, then the report's figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from dagster import DagsterInstance

from sync_pipelines import status
from sync_pipelines.instance import prepare_dagster_home
from sync_pipelines_tests.cars.conftest import CarsHarness
from sync_pipelines_tests.golioth.conftest import GoliothHarness
from sync_pipelines_tests.processes import ROOT
from sync_pipelines_tests.procore.conftest import ProcoreHarness

pytestmark = pytest.mark.timeout(240)
SOURCES = ["cars", "odoo", "golioth", "procore"]


def _status_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SYNC_DATABASE_URL"))}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "sync_pipelines", "status", *args], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def instance(tmp_path, monkeypatch):
    """A Dagster home on disk (the embedded policies), so a second process reads the same runs."""
    home = tmp_path / "dagster_home"
    prepare_dagster_home(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        yield instance


def _run_syncs(instance, sandbox, warehouse) -> tuple[str, str]:
    """Cars twice (one bad record, then a vendor refusing us), Procore twice (the second with a
    spent refresh token), Golioth once with a paused integration beside. Returns (failed run, user)."""
    cars = CarsHarness(sandbox, warehouse)
    cars.instance = instance
    sandbox.faults.add("wrong_type", vendor="encar", field="Price", times=1, path=r"/search/")
    assert cars.sync().success
    sandbox.faults.add("status", vendor="encar", status=403, times=None)
    failed = cars.sync(raise_on_error=False)
    assert not failed.success
    sandbox.faults.clear()

    procore = ProcoreHarness(sandbox, warehouse)
    procore.instance = instance
    user = procore.connect()
    assert procore.sync(user).success
    procore.control("spend_refresh", user_id=user)
    procore.control("expire_access", user_id=user)
    assert not procore.sync(user).success

    golioth = GoliothHarness(sandbox, warehouse)
    golioth.instance = instance
    golioth.add("acme")
    golioth.add("sleepy", status="paused")
    assert golioth.sync(["acme"]).success
    return failed.result.run_id, user


@pytest.mark.slow
def test_status_reports_runs_rows_lag_rejects_reauth_and_skips(instance, sandbox, warehouse, monkeypatch, tmp_path):
    monkeypatch.setenv("SYNC_SECRET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("SYNC_UI_BASE_URL", "https://dagster.example.com")
    failed_run, user = _run_syncs(instance, sandbox, warehouse)

    report = status.build_report(instance, warehouse, SOURCES)
    by_source = {s.source: s for s in report.sources}
    cars, procore, golioth, odoo = (by_source[n] for n in ("cars", "procore", "golioth", "odoo"))
    assert cars.last_run.run_id == failed_run and cars.last_run.status == "FAILURE"
    assert "403" in cars.last_run.error and not cars.last_run.error.startswith("sync_pipelines.")
    assert cars.last_run.url == f"https://dagster.example.com/runs/{failed_run}"
    assert (cars.success_24h.succeeded, cars.success_24h.finished, cars.success_24h.rate) == (1, 2, 0.5)
    assert cars.success_7d == cars.success_24h
    assert cars.rows_changed_24h.inserted == warehouse.count("cars") > 0  # the rejected record is not a row
    assert cars.rows_changed_last_run.total == 0  # the failed run changed nothing
    assert cars.open_rejects == 1 and cars.lag_seconds is not None and cars.lag_seconds >= 0
    assert cars.needs_reauth is None and cars.integrations_skipped is None

    assert procore.last_run.status == "FAILURE" and procore.success_24h.rate == 0.5
    assert procore.needs_reauth == [user]
    rows = sum(warehouse.count(t) for t in ("procore_companies", "procore_projects", "procore_rfis"))
    assert procore.rows_changed_24h.inserted == rows > 0
    assert procore.newest_vendor_timestamp is not None

    assert golioth.last_run.status == "SUCCESS" and golioth.success_24h.rate == 1.0
    assert golioth.integrations_skipped == [{"id": "sleepy", "reason": "status is paused, not active"}]
    assert golioth.rows_changed_24h.inserted >= warehouse.count("device_telemetry_history") > 0
    assert golioth.lag_seconds is not None

    assert odoo.last_run is None and odoo.success_24h.rate is None and odoo.lag_seconds is None

    text = status.render_text(report)
    assert "success 24 h      50% (1/2)" in text and f"needs reauth      1: {user}" in text
    assert "sleepy: status is paused, not active" in text
    assert f"run page          https://dagster.example.com/runs/{failed_run}" in text

    # the command, in another process, from the same instance and destination
    done = _status_cli("--json", DAGSTER_HOME=os.environ["DAGSTER_HOME"], SYNC_DATABASE_URL=warehouse.url)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = {s["source"]: s for s in json.loads(done.stdout)["sources"]}
    assert printed["cars"]["last_run"]["run_id"] == failed_run
    assert printed["cars"]["success_24h"] == {"succeeded": 1, "finished": 2, "rate": 0.5}
    assert printed["cars"]["open_rejects"] == 1
    assert printed["cars"]["rows_changed_24h"]["total"] == cars.rows_changed_24h.total
    assert printed["procore"]["needs_reauth"] == [user]
    assert printed["golioth"]["integrations_skipped"] == [{"id": "sleepy", "reason": "status is paused, not active"}]
    one = _status_cli("--source", "procore", DAGSTER_HOME=os.environ["DAGSTER_HOME"], SYNC_DATABASE_URL=warehouse.url)
    assert one.returncode == 0 and one.stdout.count("  last run ") == 1 and "procore" in one.stdout, one.stderr


def test_status_of_a_fresh_clone_reads_nothing_and_writes_nothing(sqlite_url):
    from sync_pipelines.warehouse import Warehouse

    warehouse = Warehouse.for_url(sqlite_url, migrate_schema=False)
    try:
        with DagsterInstance.ephemeral() as instance:
            report = status.build_report(instance, warehouse, SOURCES)
        assert [s.last_run for s in report.sources] == [None] * 4
        assert {(s.open_rejects, s.lag_seconds, s.needs_reauth, s.integrations_skipped) for s in report.sources} == {
            (0, None, None, None)
        }
        assert "last run          never" in status.render_text(report)
        assert json.loads(status.render_json(report))["sources"][0]["success_24h"]["rate"] is None
        assert sa.inspect(warehouse.engine).get_table_names() == []  # no migration from a report
    finally:
        warehouse.dispose()
