"""``procore_sync_schedule`` (every 10 minutes, UTC): one run per active connection, never two.

This is the old ``procore_sync_queue`` filler. Each tick requests an incremental
``procore_sync_job`` run for every ``active`` connection whose partition exists and that has
no run queued or running yet; ``needs_reauth`` and ``disconnected`` ones are skipped. The run
queue drains them (``procore/sync`` tag limit in ``dagster.yaml``), the start gate paces them.
"""


import datetime as dt

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from sync_pipelines.procore.assets import CONNECTION_TAG, CONNECTIONS_PARTITIONS, procore_sync_job, run_config
from sync_pipelines.procore.cleanup import procore_cleanup_job
from sync_pipelines.procore.connections import ACTIVE, connection_statuses
from sync_pipelines.procore.resources import ProcoreResource
from sync_pipelines.warehouse import WarehouseResource

IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def connections_in_flight(instance: DagsterInstance) -> set[str]:
    """Connections with a ``procore_sync_job`` run queued or running."""
    runs = instance.get_runs(RunsFilter(job_name=procore_sync_job.name, statuses=IN_FLIGHT))
    return {run.tags.get("dagster/partition") for run in runs} - {None}


def sync_run_requests(instance: DagsterInstance, statuses: dict[str, str], tick: dt.datetime) -> list[RunRequest]:
    partitions = set(instance.get_dynamic_partitions(CONNECTIONS_PARTITIONS.name))
    busy = connections_in_flight(instance)
    stamp = tick.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M")
    return [
        RunRequest(
            run_key=f"procore-{user_id}-{stamp}",
            partition_key=user_id,
            run_config=run_config("incremental"),
            tags={CONNECTION_TAG: user_id, "sync_pipelines/trigger": "procore_sync_schedule"},
        )
        for user_id, status in sorted(statuses.items())
        if status == ACTIVE and user_id in partitions and user_id not in busy
    ]


@schedule(
    name="procore_sync_schedule",
    cron_schedule="*/10 * * * *",
    execution_timezone="UTC",
    job=procore_sync_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every 10 minutes: one incremental run per active Procore connection not already queued or running.",
)
def procore_sync_schedule(
    context: ScheduleEvaluationContext, procore: ProcoreResource, warehouse: WarehouseResource
) -> list[RunRequest] | SkipReason:
    if missing := procore.missing_settings():
        return SkipReason(f"Procore is not configured: set {', '.join(missing)}")
    statuses = connection_statuses(warehouse.get_warehouse())
    tick = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
    requests = sync_run_requests(context.instance, statuses, tick)
    if not requests:
        inactive = sum(1 for s in statuses.values() if s != ACTIVE)
        return SkipReason(f"no Procore connection to sync ({len(statuses)} known, {inactive} not active, "
                          "the rest already queued or running)")
    return requests


@schedule(
    name="procore_cleanup_schedule",
    cron_schedule="45 3 * * *",
    execution_timezone="UTC",
    job=procore_cleanup_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Daily: delete Procore run records and resolved rejects older than the retention (7 days).",
)
def procore_cleanup_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return RunRequest(tags={"sync_pipelines/trigger": "procore_cleanup_schedule"})
