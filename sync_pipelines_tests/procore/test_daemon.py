"""The run queue live: a real `dagster-daemon run` drains one tick's runs within the limits.

Small limits keep it quick: 6 connections, at most 2 runs in flight (the shipped instance
yaml with the ``procore/sync`` tag limit at 2) and 4 sync starts a minute
(``PROCORE_STARTS_PER_MINUTE``), so both limits bind and the drain crosses a minute."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from sync_pipelines.procore.assets import JOB_TAGS
from sync_pipelines_tests.processes import ROOT
from sync_pipelines_tests.procore.conftest import SYNC_JOB
from sync_pipelines_tests.procore.test_queue import ORIGIN, TICK, _tick

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300), pytest.mark.serial]
CONNECTIONS, IN_FLIGHT, STARTS_PER_MINUTE = 6, 2, 4


def _instance_yaml() -> str:
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]:
        if limit["key"] == "procore/sync":
            limit["limit"] = IN_FLIGHT
    return yaml.safe_dump(config)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _most_at_once(spans: list[tuple[dt.datetime, dt.datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])  # ends first on ties
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_live_daemon_drains_the_queue_within_the_in_flight_and_start_rate_limits(
    procore_on_instance, tmp_path, monkeypatch
):
    procore = procore_on_instance
    users = procore.connect_many(CONNECTIONS)
    requests = _tick(procore, TICK)
    assert len(requests) == CONNECTIONS
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(_instance_yaml())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("PROCORE_STARTS_PER_MINUTE", str(STARTS_PER_MINUTE))
    for name in [k for k in os.environ if k.startswith("DAGSTER_PG")]:
        monkeypatch.delenv(name)  # SQLite run storage under the temporary home
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("procore_connections", users)
        run_ids = [
            instance.create_run_for_job(
                job_def=SYNC_JOB, run_config=request.run_config, status=DagsterRunStatus.QUEUED,
                remote_job_origin=ORIGIN,
                tags={**JOB_TAGS, **request.tags, "dagster/partition": request.partition_key},
            ).run_id
            for request in requests  # QUEUED, as the schedule's submission leaves them
        ]
        daemon = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        output = ""
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and daemon.poll() is None:
                runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
                if all(run.is_finished for run in runs):
                    break
                time.sleep(1)
        finally:
            os.killpg(daemon.pid, signal.SIGKILL)
            output = daemon.communicate(timeout=30)[0]
        records = instance.get_run_records()
        mine = {r.dagster_run.run_id: r for r in records if r.dagster_run.run_id in run_ids}
        statuses = {run_id: mine[run_id].dagster_run.status for run_id in run_ids}
        assert set(statuses.values()) == {DagsterRunStatus.SUCCESS}, (statuses, output[-3000:])
        spans = [
            (dt.datetime.fromtimestamp(r.start_time, dt.timezone.utc), dt.datetime.fromtimestamp(r.end_time, dt.timezone.utc))
            for r in records if r.dagster_run.job_name == SYNC_JOB.name and r.start_time and r.end_time
        ]
    drain = [(a.strftime("%H:%M:%S"), b.strftime("%H:%M:%S")) for a, b in sorted(spans)]
    assert _most_at_once(spans) == IN_FLIGHT, drain  # the limit was reached and never passed
    starts = sorted(_aware(r["sync_started_at"]) for r in procore.rows("procore_connections"))
    # A run's record starts before its start slot (it may wait in the gate holding its queue
    # slot), so the rate is read from the gate's own stamps: one per connection, one run each.
    for first in starts:
        in_window = sum(1 for s in starts if first <= s < first + dt.timedelta(seconds=60))
        assert in_window <= STARTS_PER_MINUTE, (starts, drain)
    assert starts[-1] - starts[0] >= dt.timedelta(seconds=60), (starts, drain)  # 6 starts at 4/min
    for table, ids in procore.expected(users).items():
        assert sorted(procore.ids(table)) == sorted(ids), table
