"""Assets of group ``cars`` (``encar_listings``, ``kbchachacha_listings``, ``cars``),
``cars_sync_job`` and ``cars_full_sync_job``.

A listing asset runs :func:`~sync_pipelines.cars.sync.sync_entity` for its vendor; ``cars``
archives sold cars and reports totals. Their numeric metadata replaces ``cars_sync_log``
(cars README, "Assets, jobs, schedule, sensor, checks").
"""


import time

from dagster import (
    AssetExecutionContext,
    AssetKey,
    FreshnessPolicy,
    MaterializeResult,
    asset,
    define_asset_job,
    in_process_executor,
)
from pydantic import Field

from sync_pipelines.cars.archive import CarsArchiveConfig, archive_cutoff, archive_sold_cars
from sync_pipelines.cars.resources import EncarResource, KBChachachaResource
from sync_pipelines.cars.settings import (
    CARS_ARCHIVE_TABLE,
    CARS_TABLE,
    DEFAULT_INCREMENTAL_PAGES,
    DEFAULT_LISTING_BATCH_ROWS,
    DEFAULT_MAX_PAGES,
    DEFAULT_STATUS_CHECKS_PER_RUN,
    FRESHNESS_FAIL_WINDOW,
    FRESHNESS_WINDOW,
    MASS_SOLD_MIN_ANSWERS,
    SOURCE,
    VENDORS,
)
from sync_pipelines.cars.sync import EncarAdapter, KBChachachaAdapter, VendorAdapter, sync_entity
from sync_pipelines.executors import sync_executor
from sync_pipelines.kit import finish_sync_asset, run_tags
from sync_pipelines.retries import retry_transient_failures
from sync_pipelines.status_checks import sync_selection
from sync_pipelines.sync_config import SyncConfig
from sync_pipelines.warehouse import Warehouse, WarehouseResource


class CarsListingConfig(SyncConfig):
    """Run config of ``encar_listings`` / ``kbchachacha_listings`` (all optional)."""

    max_pages: int = Field(default=DEFAULT_MAX_PAGES, description="full mode reads at most this many list pages")
    incremental_pages: int = Field(
        default=DEFAULT_INCREMENTAL_PAGES, description="incremental mode reads this many list pages (newest first)"
    )
    status_checks_per_run: int = Field(
        default=DEFAULT_STATUS_CHECKS_PER_RUN,
        description="per-car status calls, every run, for the least recently checked active/reserved cars "
        "(round-robin; Encar's include the cars the listing shows, whose reservation only the detail tells)",
    )
    mass_sold_min_answers: int = Field(
        default=MASS_SOLD_MIN_ANSWERS,
        description="when at least this many per-car answers of a run came back and most say sold, cars the "
        "listing shows are asked too; if they 'are sold' as well the run stops before marking any car sold",
    )
    listing_batch_rows: int = Field(
        default=DEFAULT_LISTING_BATCH_ROWS,
        description="listing pages land together, whole, in one transaction of about this many cars",
    )


def _sync_listing(context: AssetExecutionContext, adapter: VendorAdapter, config: CarsListingConfig,
                  wh: Warehouse) -> MaterializeResult:
    report = sync_entity(
        adapter,
        wh,
        mode=config.mode,
        max_pages=config.max_pages,
        incremental_pages=config.incremental_pages,
        status_checks_per_run=config.status_checks_per_run,
        mass_sold_min_answers=config.mass_sold_min_answers,
        listing_batch_rows=config.listing_batch_rows,
        run_id=context.run.run_id,
        logger=context.log,
    )
    summary = (
        f"{report.entity} ({report.mode}): {report.pages_fetched} page(s), {report.fetched} card(s); "
        f"inserted {report.counts.inserted}, updated {report.counts.updated}, unchanged {report.counts.unchanged}, "
        f"rejected {report.rejected}; status checked {report.status_checked}, newly sold {report.newly_sold}, "
        f"newly reserved {report.newly_reserved}, reactivated {report.reactivated}"
    )
    return finish_sync_asset(
        context.log, report, summary, destination=wh.location, metadata=adapter.http_metadata(),
        notes=[f"{report.entity} status change: {line}" for line in report.status_samples],
    )


@asset(
    group_name="cars",
    pool="encar",
    kinds={"encar"},
    description="Encar listing (sorted by ModifiedDate) into table `cars` (source='encar'); sales confirmed "
    "through the vehicle detail.",
    metadata={"table": CARS_TABLE, "source": "encar"},
)
def encar_listings(
    context: AssetExecutionContext, config: CarsListingConfig, encar: EncarResource, warehouse: WarehouseResource
) -> MaterializeResult:
    with retry_transient_failures(context), encar.get_client() as client:
        return _sync_listing(context, EncarAdapter(client), config, warehouse.get_warehouse())


@asset(
    group_name="cars",
    pool="kbchachacha",
    kinds={"kbchachacha"},
    description="KB Chachacha listing (HTML, sorted by -orderDate) into table `cars` (source='kbchachacha'); "
    "sales confirmed through the per-car JSON.",
    metadata={"table": CARS_TABLE, "source": "kbchachacha"},
)
def kbchachacha_listings(
    context: AssetExecutionContext,
    config: CarsListingConfig,
    kbchachacha: KBChachachaResource,
    warehouse: WarehouseResource,
) -> MaterializeResult:
    with retry_transient_failures(context), kbchachacha.get_client() as client:
        return _sync_listing(context, KBChachachaAdapter(client), config, warehouse.get_warehouse())


@asset(
    group_name="cars",
    deps=[encar_listings, kbchachacha_listings],
    description="The unified `cars` table after both listings landed: archives cars sold for more than "
    "older_than_days (default 7) to `cars_archive`, and reports totals per source and status.",
    metadata={"table": CARS_TABLE, "archive_table": CARS_ARCHIVE_TABLE},
    # WARN once a tick was missed (with freshness_check's 30 min grace, so no flicker while a
    # run is going); FAIL after two (Dagster wants warn < fail).
    freshness_policy=FreshnessPolicy.time_window(fail_window=FRESHNESS_FAIL_WINDOW, warn_window=FRESHNESS_WINDOW),
)
def cars(context: AssetExecutionContext, config: CarsArchiveConfig, warehouse: WarehouseResource) -> MaterializeResult:
    started = time.monotonic()
    cutoff = archive_cutoff(config)
    with retry_transient_failures(context):
        wh = warehouse.get_warehouse()
        archived = archive_sold_cars(wh, cutoff)
        context.log.info(f"archived {archived.moved} car(s) sold before {cutoff.isoformat()}")
        totals: dict[str, int] = {}
        for source in VENDORS:
            for status in ("active", "reserved", "sold"):
                totals[f"{source}_{status}"] = wh.count(CARS_TABLE, source=source, sale_status=status)
            totals[f"{source}_cars"] = sum(totals[f"{source}_{s}"] for s in ("active", "reserved", "sold"))
        return MaterializeResult(
            metadata={
                "cars_total": wh.count(CARS_TABLE),
                **totals,
                "archived": archived.moved,
                "cars_archive_total": wh.count(CARS_ARCHIVE_TABLE),
                "archive_cutoff": cutoff.isoformat(),
                "duration_seconds": round(time.monotonic() - started, 3),
            }
        )


CARS_ASSETS = [encar_listings, kbchachacha_listings, cars]
LISTING_ASSET_KEYS = [AssetKey("encar_listings"), AssetKey("kbchachacha_listings")]

def run_config_for(mode: str = "incremental", archive: dict | None = None, **listing: object) -> dict:
    """Run config of ``cars_sync_job``: ``mode`` (and e.g. ``max_pages``) on both listings."""
    ops = {name: {"config": {"mode": mode, **listing}} for name in ("encar_listings", "kbchachacha_listings")}
    if archive:
        ops["cars"] = {"config": archive}
    return {"ops": ops}


# Each job's mode is its default run config, so the Launchpad opens pre-filled; the shared
# source tag puts both under the instance's one-sync-per-source queue limit. The incremental
# job's steps run in process: a process per step (about 4 s of CPU each) would cost more than
# its few pages; the full job keeps the multiprocess executor, both listings at once.
cars_sync_job = define_asset_job(
    "cars_sync_job",
    selection=sync_selection(*CARS_ASSETS),
    tags=run_tags(SOURCE),
    config=run_config_for("incremental"),
    executor_def=sync_executor(in_process_executor),
    description="Encar and KB Chachacha listings into `cars` (one after the other, in process), then archive "
    "cars sold > 7 days. Incremental by default (first page per source plus the round-robin status checks).",
)

cars_full_sync_job = define_asset_job(
    "cars_full_sync_job",
    selection=sync_selection(*CARS_ASSETS),
    tags=run_tags(SOURCE),
    config=run_config_for("full"),
    description="cars_sync_job in full mode by default: both listings to their end (up to max_pages, 500), "
    "every car that left the list confirmed through the per-car call, then archive.",
)
