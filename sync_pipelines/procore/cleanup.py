"""``procore_cleanup_job``: forget Procore run records and resolved rejects past the retention.

This replaces the old manual ``DELETE FROM procore_sync_queue ... < now() - 7 days``: Dagster's
run history took the queue table's place, so it is what gets trimmed. Removed: finished runs
(success, failure, canceled) of ``procore_sync_job`` and of this job, last updated before the
cutoff, and ``sync_rejects`` of Procore last seen before the cutoff whose record has landed
since (resolved). Open rejects stay, however old. Synced data is never touched.
"""


import datetime as dt

import sqlalchemy as sa
from dagster import Config, DagsterInstance, DagsterRunStatus, OpExecutionContext, Output, RunsFilter, job, op
from pydantic import Field

from sync_pipelines.kit import run_tags
from sync_pipelines.procore import settings
from sync_pipelines.procore.models import COMPANIES, PROJECTS, RFIS
from sync_pipelines.warehouse import Warehouse, WarehouseResource, utcnow

FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
JOBS = ("procore_sync_job", "procore_cleanup_job")


class CleanupConfig(Config):
    retention_days: float | None = Field(
        default=None, description="keep this many days; default PROCORE_CLEANUP_RETENTION_DAYS or 7"
    )


def delete_old_runs(instance: DagsterInstance, cutoff: dt.datetime, keep_run_id: str | None = None) -> int:
    deleted = 0
    for job_name in JOBS:
        while True:
            records = instance.get_run_records(
                RunsFilter(job_name=job_name, statuses=FINISHED, updated_before=cutoff), limit=500
            )
            doomed = [r.dagster_run.run_id for r in records if r.dagster_run.run_id != keep_run_id]
            for run_id in doomed:
                instance.delete_run(run_id)
            deleted += len(doomed)
            if len(records) < 500:
                break
    return deleted


def delete_resolved_rejects(warehouse: Warehouse, cutoff: dt.datetime) -> int:
    rejects = warehouse.table("sync_rejects")
    deleted = 0
    with warehouse.transaction() as tx:
        for spec in (COMPANIES, PROJECTS, RFIS):
            landed = sa.select(sa.cast(warehouse.table(spec.table).c.id, sa.String))
            deleted += tx.conn.execute(
                rejects.delete().where(
                    rejects.c.source == settings.SOURCE, rejects.c.entity == spec.entity,
                    rejects.c.last_seen_at < cutoff, rejects.c.record_key.in_(landed),
                )
            ).rowcount
    return deleted


@op(name="procore_cleanup", description="Delete Procore run records and resolved rejects older than the retention.")
def procore_cleanup(context: OpExecutionContext, config: CleanupConfig, warehouse: WarehouseResource) -> Output:
    days = config.retention_days if config.retention_days is not None else settings.cleanup_retention_days()
    cutoff = utcnow() - dt.timedelta(days=days)
    runs = delete_old_runs(context.instance, cutoff, keep_run_id=context.run_id)
    rejects = delete_resolved_rejects(warehouse.get_warehouse(), cutoff)
    context.log.info(f"procore cleanup (older than {days:g} days): {runs} run record(s), {rejects} resolved reject(s)")
    return Output(None, metadata={"runs_deleted": runs, "rejects_deleted": rejects, "retention_days": days})


# One clean-up at a time; sync runs do not carry the source tag (it would allow one sync at a time).
@job(name="procore_cleanup_job", tags=run_tags(settings.SOURCE),
     description="Daily clean-up of Procore run history and resolved rejects (replaces the manual DELETE).")
def procore_cleanup_job() -> None:
    procore_cleanup()
