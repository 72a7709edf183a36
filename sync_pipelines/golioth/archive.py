"""``golioth_archive_job``: telemetry older than the retention moves to ``device_telemetry_history_archive``.

Bounded batches in ONE transaction per run (:func:`sync_pipelines.archive.archive_rows`), so a
re-run moves only what is left; retention rules in the README's "Retention".
"""

import datetime as dt

from dagster import Nothing, OpExecutionContext, Out, Output, in_process_executor, job, op
from pydantic import Field

from sync_pipelines.archive import ArchiveConfig, archive_rows
from sync_pipelines.golioth import settings
from sync_pipelines.golioth.assets import SOURCE_TAGS
from sync_pipelines.retries import retry_transient_failures
from sync_pipelines.warehouse import WarehouseResource, utcnow


class GoliothArchiveConfig(ArchiveConfig):
    retention_days: int | None = Field(
        default=None, description="move points older than this many days; default GOLIOTH_TELEMETRY_RETENTION_DAYS or 90"
    )
    batch_size: int = Field(default=5_000, description="rows per batch inside the run's one transaction")


@op(out=Out(Nothing), description="Move telemetry older than the retention to device_telemetry_history_archive.")
def golioth_archive_telemetry(context: OpExecutionContext, config: GoliothArchiveConfig, warehouse: WarehouseResource):
    days = config.retention_days if config.retention_days is not None else settings.retention_days()
    if days < 0:
        raise ValueError(f"retention_days must be >= 0, got {days}")
    cutoff = config.as_of_time() - dt.timedelta(days=days)
    with retry_transient_failures(context):
        wh = warehouse.get_warehouse()
        with wh.transaction() as tx:
            result = archive_rows(
                tx, table=settings.TELEMETRY_TABLE, archive_table=settings.TELEMETRY_ARCHIVE_TABLE,
                where=lambda t: t.c.ts < cutoff, archived_at=utcnow(), batch_size=config.batch_size,
            )
    context.log.info(f"archived {result.moved} telemetry point(s) older than {cutoff.isoformat()} in {result.batches} batch(es)")
    yield Output(None, metadata={"moved": result.moved, "batches": result.batches, "cutoff": cutoff.isoformat(),
                                 "retention_days": days})


@job(
    name="golioth_archive_job",
    tags=SOURCE_TAGS,
    executor_def=in_process_executor,
    description="Move Golioth telemetry older than GOLIOTH_TELEMETRY_RETENTION_DAYS (90) to the archive table.",
)
def golioth_archive_job():
    golioth_archive_telemetry()
