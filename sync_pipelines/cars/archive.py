"""Archive: cars ``sold`` for more than N days (default 7) move from ``cars`` to ``cars_archive``.

Copy-then-delete, every car of one archive run in ONE transaction
(:func:`sync_pipelines.archive.archive_rows`, batches of 5,000 inside it for memory): a
crash midway rolls the whole run back, so nothing is moved or duplicated, a car is always in
exactly one of the two tables, and re-running moves them all. Used by the ``cars`` asset
(so it runs after every successful sync, from the schedule, the Launchpad or the CLI) and
by ``cars_archive_job`` (alone).
"""

import datetime as dt

import sqlalchemy as sa
from dagster import OpExecutionContext, Output, in_process_executor, job, op
from pydantic import Field

from sync_pipelines.archive import ArchiveConfig, ArchiveResult, archive_rows
from sync_pipelines.cars.settings import CARS_ARCHIVE_TABLE, CARS_TABLE, DEFAULT_ARCHIVE_AFTER_DAYS, SOURCE
from sync_pipelines.kit import run_tags
from sync_pipelines.retries import retry_transient_failures
from sync_pipelines.warehouse import Warehouse, WarehouseResource


class CarsArchiveConfig(ArchiveConfig):
    older_than_days: float = Field(
        default=DEFAULT_ARCHIVE_AFTER_DAYS, description="archive cars sold for more than this many days"
    )


def archive_cutoff(config: CarsArchiveConfig) -> dt.datetime:
    if config.older_than_days < 0:
        raise ValueError("older_than_days must be >= 0")
    return config.as_of_time() - dt.timedelta(days=config.older_than_days)


def archive_sold_cars(wh: Warehouse, cutoff: dt.datetime) -> ArchiveResult:
    """Move every car sold before ``cutoff`` into ``cars_archive``, in one transaction."""

    def sold_before_cutoff(table: sa.Table):
        return sa.and_(table.c.sale_status == "sold", table.c.sold_at.is_not(None), table.c.sold_at < cutoff)

    with wh.transaction() as tx:
        return archive_rows(tx, table=CARS_TABLE, archive_table=CARS_ARCHIVE_TABLE, where=sold_before_cutoff)


@op(description="Move cars sold for more than older_than_days (default 7) from cars to cars_archive.")
def archive_sold_cars_op(context: OpExecutionContext, config: CarsArchiveConfig, warehouse: WarehouseResource):
    cutoff = archive_cutoff(config)
    with retry_transient_failures(context):
        wh = warehouse.get_warehouse()
        result = archive_sold_cars(wh, cutoff)
        metadata = {
            "archived": result.moved,
            "batches": result.batches,
            "cars_remaining": wh.count(CARS_TABLE),
            "cars_archive_total": wh.count(CARS_ARCHIVE_TABLE),
            "cutoff": cutoff.isoformat(),
        }
    context.log.info(f"archived {result.moved} sold car(s) (sold before {cutoff.isoformat()}), e.g. {result.keys_sample[:10]}")
    yield Output(result.moved, metadata=metadata)


@job(
    name="cars_archive_job",
    tags=run_tags(SOURCE),
    executor_def=in_process_executor,
    description="Move cars sold for more than 7 days (configurable) to cars_archive. Also runs inside every sync.",
)
def cars_archive_job():
    archive_sold_cars_op()
