"""``odoo_archive_job``: move rows Odoo deleted, or cancelled long ago, into archive tables.

Every table of one run in ONE transaction (:func:`sync_pipelines.archive.archive_rows`),
purchase order lines right after their order, so a row is always in exactly one table and
an order never sits in the archive while its lines are live (Odoo README, Dagster definitions).
"""

import datetime as dt

import sqlalchemy as sa
from dagster import Nothing, OpExecutionContext, Out, Output, in_process_executor, job, op
from pydantic import Field

from sync_pipelines.archive import ArchiveConfig, ArchiveResult, archive_rows
from sync_pipelines.kit import run_tags
from sync_pipelines.odoo.settings import DEFAULT_ARCHIVE_RETENTION_DAYS, MODEL_SPECS, SOURCE, ModelSpec
from sync_pipelines.retries import retry_transient_failures
from sync_pipelines.warehouse import WarehouseResource, utcnow


class OdooArchiveConfig(ArchiveConfig):
    retention_days: int = Field(
        default=DEFAULT_ARCHIVE_RETENTION_DAYS,
        description="move rows deleted in Odoo, or cancelled, for more than this many days",
    )


def archive_condition(spec: ModelSpec, cutoff: dt.datetime):
    def where(table: sa.Table):
        conditions = [sa.and_(table.c.deleted_at.is_not(None), table.c.deleted_at < cutoff)]
        if spec.cancellable:
            conditions.append(sa.and_(table.c.state == "cancel", table.c.write_date < cutoff))
        if spec.archived_with:
            # rows whose parent (a purchase order) is archived: MODEL_SPECS lists parents
            # first, so an order's lines move in the same run, right after it
            parent_table, parent_key = spec.archived_with
            parent_archive = sa.table(f"{parent_table}_archive", sa.column("id"))
            conditions.append(table.c[parent_key].in_(sa.select(parent_archive.c.id)))
        return sa.or_(*conditions)

    return where


@op(
    out=Out(Nothing),  # counts go to the output metadata; nothing is pickled by an IO manager
    description="Move Odoo rows deleted or cancelled for more than retention_days to *_archive tables.")
def odoo_archive_rows(context: OpExecutionContext, config: OdooArchiveConfig, warehouse: WarehouseResource):
    if config.retention_days < 0:
        raise ValueError("retention_days must be >= 0")
    as_of = config.as_of_time()
    cutoff = as_of - dt.timedelta(days=config.retention_days)
    archived_at = utcnow()
    results: dict[str, ArchiveResult] = {}
    with retry_transient_failures(context):
        wh = warehouse.get_warehouse()
        with wh.transaction() as tx:
            # MODEL_SPECS lists parents first: an order's lines see it in the archive table
            # (same transaction) and move right after it.
            for spec in MODEL_SPECS:
                results[spec.table] = archive_rows(
                    tx, table=spec.table, archive_table=spec.archive_table,
                    where=archive_condition(spec, cutoff), archived_at=archived_at,
                )
    for table, result in results.items():  # committed: now it is true
        if result.moved:
            context.log.info(f"archived {result.moved} row(s) of {table}, e.g. ids {result.keys_sample[:10]}")
    moved = {table: result.moved for table, result in results.items()}
    total = sum(moved.values())
    yield Output(
        None,
        metadata={"moved": total, **{f"moved_{t}": n for t, n in moved.items()}, "cutoff": cutoff.isoformat()},
    )


@job(
    name="odoo_archive_job",
    tags=run_tags(SOURCE),
    executor_def=in_process_executor,
    description="Archive Odoo rows deleted in Odoo or cancelled for more than N days (default 30).",
)
def odoo_archive_job():
    odoo_archive_rows()
