"""Queue semantics in Dagster: one run per connection per tick, at most 10 in flight and 10 starts a minute."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterRunStatus,
    build_schedule_context,
    build_sensor_context,
)
from dagster._core.instance_for_test import instance_for_test
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.test_utils import create_run_for_test
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from sync_pipelines.procore.assets import CONNECTIONS_PARTITIONS, JOB_TAGS
from sync_pipelines.procore.connections import DISCONNECTED, NEEDS_REAUTH
from sync_pipelines.procore.gate import try_start
from sync_pipelines.procore.resources import ProcoreResource
from sync_pipelines.procore.schedules import procore_sync_schedule
from sync_pipelines.procore.sensors import procore_connections_sensor
from sync_pipelines.warehouse import WarehouseResource
from sync_pipelines_tests.procore.conftest import failure_text

ROOT = Path(__file__).resolve().parents[2]
# Queued runs must say where their job lives; the queue logic only reads the location name.
ORIGIN = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("sync_pipelines"), "__repository__").get_job_origin(
    "procore_sync_job"
)
TICK = dt.datetime(2026, 12, 1, 12, 10, tzinfo=dt.timezone.utc)


def _resources():
    return {"procore": ProcoreResource(), "warehouse": WarehouseResource()}


def _sense(procore) -> None:
    """One tick of procore_connections_sensor, its partition requests applied as the daemon would."""
    context = build_sensor_context(instance=procore.instance, resources=_resources())
    result = procore_connections_sensor(context)
    for request in getattr(result, "dynamic_partitions_requests", None) or []:
        if type(request).__name__ == "AddDynamicPartitionsRequest":
            procore.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                procore.instance.delete_dynamic_partition(request.partitions_def_name, key)


def _tick(procore, when=TICK) -> list:
    context = build_schedule_context(instance=procore.instance, scheduled_execution_time=when, resources=_resources())
    result = procore_sync_schedule(context)
    return result if isinstance(result, list) else []


def test_a_tick_requests_one_run_per_active_connection_and_none_twice(procore_on_instance):
    procore = procore_on_instance
    users = procore.connect_many(25)
    for user in users:
        procore.instance.delete_dynamic_partition(CONNECTIONS_PARTITIONS.name, user)
    _sense(procore)
    assert sorted(procore.instance.get_dynamic_partitions(CONNECTIONS_PARTITIONS.name)) == sorted(users)
    requests = _tick(procore)
    assert sorted(r.partition_key for r in requests) == sorted(users)
    assert len({r.run_key for r in requests}) == 25

    for request in requests[:20]:  # 20 of them are still running when the next tick comes
        create_run_for_test(procore.instance, job_name="procore_sync_job", status=DagsterRunStatus.STARTED,
                            tags={**request.tags, "dagster/partition": request.partition_key})
    later = _tick(procore, TICK + dt.timedelta(minutes=10))
    assert sorted(r.partition_key for r in later) == sorted(r.partition_key for r in requests[20:])

    procore.store.set_status(users[0], NEEDS_REAUTH, "test")
    procore.store.disconnected(users[1])
    _sense(procore)
    assert users[1] not in procore.instance.get_dynamic_partitions(CONNECTIONS_PARTITIONS.name)
    assert users[0] in procore.instance.get_dynamic_partitions(CONNECTIONS_PARTITIONS.name)  # history kept
    assert {r.partition_key for r in _tick(procore, TICK + dt.timedelta(minutes=20))}.isdisjoint(users[:2])
    assert procore.store.get(users[1]).status == DISCONNECTED


def test_every_connection_lands_exactly_once(procore, monkeypatch):
    monkeypatch.setenv("PROCORE_STARTS_PER_MINUTE", "100")  # the pacing is the next test's; here, the data
    users = procore.connect_many(25)
    for user in users:
        run = procore.sync(user)
        assert run.success, failure_text(run)
    for table, ids in procore.expected(users).items():
        assert sorted(procore.ids(table)) == sorted(ids), table


def _queue_config() -> dict:
    return {"concurrency": yaml.safe_load((ROOT / "dagster.yaml").read_text())["concurrency"]}


def _set_status(instance, run_id: str, event_type: DagsterEventType) -> None:
    instance.run_storage.handle_run_event(
        run_id, DagsterEvent(event_type_value=event_type.value, job_name="procore_sync_job")
    )


def test_the_shipped_limits_drain_25_runs_never_more_than_10_in_flight_nor_10_starts_a_minute(procore_on_instance):
    procore = procore_on_instance
    users = procore.connect_many(25)
    requests = _tick(procore)
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    with instance_for_test(overrides=_queue_config()) as instance:
        run_user = {}
        for request in requests:
            run = create_run_for_test(instance, job_name="procore_sync_job", status=DagsterRunStatus.QUEUED,
                                      remote_job_origin=ORIGIN,
                                      tags={**JOB_TAGS, **request.tags, "dagster/partition": request.partition_key})
            run_user[run.run_id] = request.partition_key
        now, in_flight, starts, finished = TICK, {}, [], set()
        while len(finished) < 25:
            for run in daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None):
                _set_status(instance, run.run_id, DagsterEventType.RUN_START)
                in_flight[run.run_id] = None  # launched; passes the start gate below
            assert len(in_flight) <= 10
            for run_id, started in list(in_flight.items()):
                if started is None and not try_start(procore.warehouse, run_user[run_id], 10, now):
                    in_flight[run_id] = now
                    starts.append(now)
                elif started is not None and now - started >= dt.timedelta(seconds=5):  # a 5 s sync
                    _set_status(instance, run_id, DagsterEventType.RUN_SUCCESS)
                    del in_flight[run_id]
                    finished.add(run_id)
            for start in starts:
                assert sum(1 for s in starts if start <= s < start + dt.timedelta(seconds=60)) <= 10
            now += dt.timedelta(seconds=5)
    assert len(starts) == 25 and {run_user[r] for r in finished} == set(users)
    assert starts[-1] - starts[0] >= dt.timedelta(minutes=2)  # 10, 10, 5: three minutes' starts
