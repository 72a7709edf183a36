"""procore_cleanup_job (old run records, resolved rejects) and run monitoring of stuck Procore runs."""

from __future__ import annotations

import datetime as dt
import logging
import time

from dagster import DagsterEvent, DagsterEventType, DagsterRunStatus
from dagster._core.events.log import EventLogEntry
from dagster._core.test_utils import create_run_for_test
from dagster._daemon.monitoring.run_monitoring import check_run_timeout

from sync_pipelines.definitions import defs
from sync_pipelines.procore.assets import JOB_TAGS
from sync_pipelines.warehouse import utcnow

CLEANUP_JOB = defs.resolve_job_def("procore_cleanup_job")


def _reject(tx, key: str, last_seen: dt.datetime) -> None:
    tx.reject("procore", "rfis", key, "bad record")
    tx.execute("UPDATE sync_rejects SET last_seen_at = :t WHERE record_key = :k", {"t": last_seen, "k": key})


def test_cleanup_removes_old_procore_runs_and_resolved_rejects_only(procore_on_instance):
    procore = procore_on_instance
    user = procore.connect()
    synced = procore.sync(user)
    assert synced.success
    other = create_run_for_test(procore.instance, job_name="odoo_sync_job", status=DagsterRunStatus.SUCCESS)
    rfi = str(min(procore.ids("procore_rfis")))
    old = utcnow() - dt.timedelta(days=8)
    with procore.warehouse.transaction() as tx:
        _reject(tx, rfi, old)  # landed since: resolved, and old
        _reject(tx, "999999999", old)  # never landed: still open, kept however old
    keep = CLEANUP_JOB.execute_in_process(instance=procore.instance)  # 7 days: the sync run is recent
    assert keep.success
    assert procore.instance.get_run_by_id(synced.run_id) is not None
    assert sorted(r["record_key"] for r in procore.warehouse.rejects("procore")) == ["999999999"]

    time.sleep(0.05)
    purge = CLEANUP_JOB.execute_in_process(
        instance=procore.instance, run_config={"ops": {"procore_cleanup": {"config": {"retention_days": 0}}}}
    )
    assert purge.success
    assert procore.instance.get_run_by_id(synced.run_id) is None
    assert procore.instance.get_run_by_id(keep.run_id) is None
    assert procore.instance.get_run_by_id(purge.run_id) is not None  # not itself
    assert procore.instance.get_run_by_id(other.run_id) is not None  # other sources' history is theirs
    assert procore.ids("procore_rfis")  # synced data untouched


def _started(instance, seconds_ago: float):
    run = create_run_for_test(instance, job_name="procore_sync_job", status=DagsterRunStatus.STARTING, tags=JOB_TAGS)
    instance.handle_new_event(EventLogEntry(
        error_info=None, level=logging.DEBUG, user_message="", run_id=run.run_id, timestamp=time.time() - seconds_ago,
        dagster_event=DagsterEvent(DagsterEventType.RUN_START.value, job_name="procore_sync_job"),
    ))
    return instance.get_run_record_by_id(run.run_id)


def test_run_monitoring_fails_a_procore_run_stuck_past_its_max_runtime(procore_on_instance):
    instance = procore_on_instance.instance
    stuck, fresh = _started(instance, 2 * 3600), _started(instance, 600)
    for record in (stuck, fresh):
        check_run_timeout(instance, record, logging.getLogger("test"), instance.run_monitoring_max_runtime_seconds)
    assert instance.get_run_by_id(stuck.dagster_run.run_id).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(fresh.dagster_run.run_id).status == DagsterRunStatus.STARTED
    assert JOB_TAGS["dagster/max_runtime"] == "3600"
