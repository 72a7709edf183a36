"""``odoo_changes_sensor``: request a sync only when Odoo has changes ("smart" sync).

Every 5 minutes, per model, ``search_count`` of records after the newer of the warehouse
cursor and the sensor's own cursor (the latter only while a requested run is pending or
failed less than 30 minutes ago); one incremental run for the changed models (Odoo README).
"""

import datetime as dt
import hashlib
import json
import time

from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sync_pipelines.kit import run_tags
from sync_pipelines.odoo.assets import odoo_sync_job, run_config_for
from sync_pipelines.odoo.client import keyset_domain
from sync_pipelines.odoo.resources import OdooResource
from sync_pipelines.odoo.settings import SOURCE, auto_sync_enabled, auto_sync_specs
from sync_pipelines.odoo.sync import parse_cursor
from sync_pipelines.warehouse import WarehouseResource

# A run in one of these states will still sync what it was requested for.
PENDING_RUN_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
REQUESTS_KEY = "_requests"  # cursor entry counting requests, so each run_key is new
# After a failed run, changes are requested again only this much later.
FAILED_RUN_BACKOFF = dt.timedelta(minutes=30)


def _sync_in_flight_or_recently_failed(instance) -> bool:
    if instance.get_runs(RunsFilter(job_name=odoo_sync_job.name, statuses=PENDING_RUN_STATUSES), limit=1):
        return True
    failed = instance.get_run_records(
        RunsFilter(job_name=odoo_sync_job.name, statuses=[DagsterRunStatus.FAILURE]), limit=1
    )
    if not failed:
        return False
    ended = failed[0].end_time or failed[0].update_timestamp.timestamp()
    return time.time() - ended < FAILED_RUN_BACKOFF.total_seconds()


@sensor(
    name="odoo_changes_sensor",
    job=odoo_sync_job,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="Asks Odoo whether anything changed since the last sync; requests an incremental run only then.",
)
def odoo_changes_sensor(
    context: SensorEvaluationContext, odoo: OdooResource, warehouse: WarehouseResource
) -> SensorResult | SkipReason:
    if not auto_sync_enabled():
        return SkipReason("AUTO_SYNC_ENABLED is false: automatic Odoo syncs are paused")
    if missing := odoo.missing_settings():
        return SkipReason(f"Odoo is not configured: set {', '.join(missing)}")
    requested: dict = json.loads(context.cursor) if context.cursor else {}
    pending = _sync_in_flight_or_recently_failed(context.instance)
    wh = warehouse.get_warehouse()
    changed, counts, marks = [], {}, dict(requested)
    with odoo.get_client() as client:
        for spec in auto_sync_specs():
            synced = parse_cursor(wh.get_cursor(SOURCE, spec.entity))
            asked = tuple(requested[spec.entity]) if pending and spec.entity in requested else None
            baseline = max((p for p in (synced, asked) if p), default=None)
            domain = [*keyset_domain(baseline), *spec.domain]
            count = client.search_count(spec.model, domain, context=spec.context)
            if not count:
                continue
            newest = client.newest_position(spec.model, domain, context=spec.context)
            if newest:
                marks[spec.entity] = list(newest)
            changed.append(spec)
            counts[spec.entity] = count
    if not changed:
        return SkipReason("no Odoo changes since the last sync")
    marks[REQUESTS_KEY] = int(requested.get(REQUESTS_KEY, 0)) + 1
    new_cursor = json.dumps(marks, sort_keys=True)
    context.log.info(f"Odoo changes: {counts}; requesting a sync of {[s.entity for s in changed]}")
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key="odoo-changes-" + hashlib.sha1(new_cursor.encode()).hexdigest()[:16],
                run_config=run_config_for(changed, "incremental"),
                asset_selection=[AssetKey(spec.asset_name) for spec in changed],
                tags=run_tags(SOURCE, trigger="odoo_changes_sensor"),
            )
        ],
        cursor=new_cursor,
    )
