"""The production path (issue 13): Dagster storage and destination in Postgres, from the
environment only; ``dagster-daemon`` launches runs by itself; the webserver shows them.

The daemon and the webserver run the repository's ``dagster.yaml`` on a fresh Postgres
database each for Dagster and for the destination, against the sandbox. A test code location
(``production_location.py``) has a sensor that requests two cars syncs and one Odoo sync on
its first tick: the run queue's one-sync-per-source limit must run the two cars syncs one
after the other. The freshness daemon then judges the synced assets fresh and Procore's,
backdated, late; a fourth run fails and the alert sensor posts it to a loopback webhook.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.events import DagsterEvent, StepMaterializationData
from dagster._core.events.log import EventLogEntry

from sync_pipelines.warehouse import Warehouse
from sync_pipelines_tests.conftest import create_pg_database, drop_pg_database, pg_url_for
from sync_pipelines_tests.foundation.production_location import CARS_RUN_KEYS, TRIGGER
from sync_pipelines_tests.foundation.test_alerts import Webhook
from sync_pipelines_tests.processes import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(480)]

BIN = Path(sys.executable).parent
STALE = {"procore_projects": dt.timedelta(minutes=25), "procore_companies": dt.timedelta(minutes=45)}
RUNS_QUERY = "{ runsOrError { ... on Runs { results { runId status jobName tags { key value } } } } }"


def _store_materialization(instance: DagsterInstance, asset: str, age: dt.timedelta) -> None:
    """A materialization of ``asset`` recorded ``age`` ago: a sync that stopped then."""
    event = DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, "procore_sync_job",
                         event_specific_data=StepMaterializationData(AssetMaterialization(asset_key=asset)))
    instance.store_event(EventLogEntry(error_info=None, level="debug", user_message="", run_id="backdated",
                                       timestamp=time.time() - age.total_seconds(), dagster_event=event))


def _wait_for_freshness(instance: DagsterInstance, expected: dict[str, FreshnessState], timeout: float = 90):
    keys = [AssetKey(name) for name in expected]
    deadline, states = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        records = instance.get_freshness_state_records(keys)
        states = {key.to_user_string(): record.freshness_state for key, record in records.items()}
        if states == expected:
            return
        time.sleep(1)
    raise AssertionError(f"freshness states {states}, expected {expected}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A Dagster process in its own process group (its run workers with it), output to ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is left (run workers)
    except ProcessLookupError:
        pass
    process.wait(timeout=20)


@pytest.fixture
def production(pg_server, sandbox, tmp_path, monkeypatch):
    """Env of a production deployment: Postgres URLs and sandbox vendors, nothing else."""
    databases = [create_pg_database(pg_server, "sync_prod_dagster"), create_pg_database(pg_server, "sync_prod_dest")]
    dagster_url, destination_url = (pg_url_for(pg_server, name) for name in databases)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    (tmp_path / "workspace.yaml").write_text(json.dumps({"load_from": [{"python_module": {
        "module_name": "sync_pipelines_tests.foundation.production_location", "attribute": "defs",
        "working_directory": str(ROOT), "location_name": "production_path"}}]}))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DAGSTER_PG_", "SYNC_DATABASE"))}
    env.update(sandbox.env(), DAGSTER_HOME=str(home), DAGSTER_PG_URL=dagster_url, SYNC_DATABASE_URL=destination_url,
               FRESHNESS_DAEMON_INTERVAL_SECONDS="5")  # Dagster's own knob (30 s by default)
    for key in ("DAGSTER_HOME", "DAGSTER_PG_URL", "SYNC_DATABASE_URL"):
        monkeypatch.setenv(key, env[key])
    with DagsterInstance.get() as instance:  # create Dagster's tables once, before two processes race to
        for asset, age in STALE.items():
            _store_materialization(instance, asset, age)
    warehouse = Warehouse.for_url(destination_url)  # a deploy migrates before starting the daemon
    processes: list[subprocess.Popen] = []
    try:
        yield env, tmp_path, processes, dagster_url, warehouse
    finally:
        for process in processes:
            _stop(process)
        warehouse.dispose()
        for name in databases:
            drop_pg_database(name)


def _wait_for_runs(instance: DagsterInstance, daemon: subprocess.Popen, log: Path, count: int, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.poll() is None, f"the daemon exited:\n{log.read_text()[-3000:]}"
        records = instance.get_run_records(RunsFilter(tags={"sync_pipelines/trigger": TRIGGER}))
        if len(records) == count and all(r.dagster_run.is_finished for r in records):
            return sorted(records, key=lambda r: r.start_time or 0)
        time.sleep(1)
    raise AssertionError(f"no {count} finished runs after {timeout}s:\n{log.read_text()[-3000:]}")


def _graphql(port: int, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    body = json.dumps({"query": RUNS_QUERY}).encode()
    while True:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.load(answer)["data"]["runsOrError"]["results"]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.mark.slow
def test_the_daemon_runs_syncs_by_itself_on_postgres_one_per_source_at_a_time(production):
    env, tmp_path, processes, dagster_url, warehouse = production
    workspace = str(tmp_path / "workspace.yaml")
    daemon_log = tmp_path / "daemon.log"
    webhook, port = Webhook(), _free_port()
    env.update(SYNC_ALERT_WEBHOOK_URL=webhook.url, SYNC_UI_BASE_URL=f"http://127.0.0.1:{port}")
    processes.append(_start([str(BIN / "dagster-daemon"), "run", "-w", workspace], env, daemon_log))
    processes.append(_start([str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)],
                            env, tmp_path / "webserver.log"))

    with DagsterInstance.get() as instance:
        records = _wait_for_runs(instance, processes[0], daemon_log, 4, timeout=300)
        [broken] = [r for r in records if r.dagster_run.tags["dagster/run_key"] == "odoo-broken"]
        runs = [r for r in records if r is not broken]
        assert [r.dagster_run.status for r in runs] == [DagsterRunStatus.SUCCESS] * 3, [
            (r.dagster_run.job_name, r.dagster_run.status) for r in runs
        ]
        assert broken.dagster_run.status == DagsterRunStatus.FAILURE
        assert all(r.dagster_run.tags["dagster/sensor_name"] == TRIGGER for r in runs)  # the daemon's own
        cars = [r for r in runs if r.dagster_run.job_name == "cars_sync_job"]
        assert sorted(r.dagster_run.tags["dagster/run_key"] for r in cars) == sorted(CARS_RUN_KEYS)
        # Queued in the same tick, yet the second cars sync started only once the first had ended.
        assert cars[0].end_time <= cars[1].start_time, [(r.start_time, r.end_time) for r in cars]
        run_ids = {r.dagster_run.run_id for r in runs}
        broken_id = broken.dagster_run.run_id

    # Runs and their events are in Dagster's Postgres database; rows in the destination's.
    engine = sa.create_engine(dagster_url)
    with engine.connect() as conn:
        stored = set(conn.execute(sa.text("SELECT run_id FROM runs")).scalars())
        materialized = dict(conn.execute(sa.text(
            "SELECT run_id, count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND run_id <> 'backdated' "
            "GROUP BY run_id")).all())
    engine.dispose()
    assert stored == run_ids | {broken_id}
    assert run_ids == set(materialized) and all(n >= 1 for n in materialized.values()), materialized
    assert warehouse.count("cars", source="encar") > 0 and warehouse.count("cars", source="kbchachacha") > 0
    assert warehouse.count("odoo_invoices") > 0

    shown = {run["runId"]: run["status"] for run in _graphql(port)}
    assert shown == {**{run_id: "SUCCESS" for run_id in run_ids}, broken_id: "FAILURE"}

    # The failure was announced once by the daemon's sync_failure_alert_sensor, linking its page.
    deadline = time.monotonic() + 90
    while not webhook.texts and time.monotonic() < deadline:
        time.sleep(1)
    [alert] = webhook.texts
    assert alert.startswith(f":rotating_light: odoo: odoo_sync_job failed (run {broken_id})"), alert
    assert "delay_ms must be >= 0" in alert and f"http://127.0.0.1:{port}/runs/{broken_id}" in alert
    webhook.stop()

    # The daemon's freshness evaluation (what the UI shows): synced assets pass; Procore's,
    # last synced 25 and 45 minutes ago (every 10 min expected), warn and fail.
    with DagsterInstance.get() as instance:
        _wait_for_freshness(instance, {"cars": FreshnessState.PASS, "odoo_invoices": FreshnessState.PASS,
                                       "procore_projects": FreshnessState.WARN, "procore_companies": FreshnessState.FAIL})
