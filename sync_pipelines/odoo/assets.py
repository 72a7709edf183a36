"""One asset per synced Odoo model (group ``odoo``, pool ``odoo``), and ``odoo_sync_job``.

Each asset reads its model from Odoo and writes its table itself (no IO manager), then
reports fetched / inserted / updated / unchanged / rejected / deleted counts and the cursor.
"""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    asset,
    define_asset_job,
    in_process_executor,
)
from pydantic import Field

from sync_pipelines.executors import sync_executor
from sync_pipelines.kit import finish_sync_asset, run_tags
from sync_pipelines.odoo import settings
from sync_pipelines.odoo.resources import OdooResource
from sync_pipelines.odoo.settings import MODEL_SPECS, SOURCE, SPECS_BY_TABLE, ModelSpec
from sync_pipelines.odoo.sync import sync_entity
from sync_pipelines.retries import retry_transient_failures
from sync_pipelines.status_checks import sync_selection
from sync_pipelines.sync_config import SyncConfig
from sync_pipelines.warehouse import WarehouseResource


class OdooSyncConfig(SyncConfig):
    """Run config of every Odoo asset (all optional)."""

    batch_size: int | None = Field(
        default=None, description="records per search_read call (>= 1); default ODOO_INVOICE_BATCH_SIZE or 100"
    )
    delay_ms: int | None = Field(
        default=None, description="pause between batches in ms; default ODOO_INVOICE_DELAY_MS or 100"
    )
    overlap_seconds: int = Field(
        default=settings.DEFAULT_OVERLAP_SECONDS,
        description="incremental runs re-read records written this many seconds before the cursor",
    )


class OdooConfigValueError(ValueError):
    """A run config value out of range, named with its config path; fails before any Odoo call."""


def _check_config(spec: ModelSpec, config: OdooSyncConfig) -> None:
    where = f"ops.{spec.asset_name}.config"
    if config.batch_size is not None and config.batch_size < 1:
        raise OdooConfigValueError(
            f"{where}.batch_size must be a positive number of records per search_read, got {config.batch_size} "
            "(leave it out for ODOO_INVOICE_BATCH_SIZE or 100)"
        )
    if config.delay_ms is not None and config.delay_ms < 0:
        raise OdooConfigValueError(f"{where}.delay_ms must be >= 0, got {config.delay_ms}")
    if config.overlap_seconds < 0:
        raise OdooConfigValueError(f"{where}.overlap_seconds must be >= 0, got {config.overlap_seconds}")


def build_sync_asset(spec: ModelSpec) -> AssetsDefinition:
    # rows archived with a parent come back with it: synced after the parent's asset
    deps = [AssetKey(SPECS_BY_TABLE[spec.archived_with[0]].asset_name)] if spec.archived_with else []

    @asset(
        name=spec.asset_name,
        group_name="odoo",
        pool="odoo",
        kinds={"odoo"},
        deps=deps,
        description=f"{spec.description} Odoo model `{spec.model}` -> table `{spec.table}`.",
        metadata={"odoo_model": spec.model, "table": spec.table, "sync_type": spec.sync_type},
    )
    def _sync(
        context: AssetExecutionContext, config: OdooSyncConfig, odoo: OdooResource, warehouse: WarehouseResource
    ) -> MaterializeResult:
        _check_config(spec, config)
        # `is not None`, not `or`: a configured 0 is refused above, never read as "unset"
        batch_size = config.batch_size if config.batch_size is not None else settings.default_batch_size()
        delay_ms = config.delay_ms if config.delay_ms is not None else settings.default_delay_ms()
        with retry_transient_failures(context), odoo.get_client() as client:
            wh = warehouse.get_warehouse()
            report = sync_entity(
                spec,
                client,
                wh,
                mode=config.mode,
                batch_size=batch_size,
                delay_seconds=delay_ms / 1000,
                overlap_seconds=config.overlap_seconds,
                run_id=context.run.run_id,
                logger=context.log,
            )
            stats = client.stats.as_metadata(SOURCE)
        summary = (
            f"odoo {spec.entity} ({config.mode}): fetched {report.fetched}, inserted {report.counts.inserted}, "
            f"updated {report.counts.updated}, unchanged {report.counts.unchanged}, rejected {report.rejected}, "
            f"deleted {report.deleted}; cursor {report.cursor_text}"
        )
        return finish_sync_asset(context.log, report, summary, destination=wh.location, metadata=stats)

    return _sync


SYNC_ASSETS = [build_sync_asset(spec) for spec in MODEL_SPECS]
ASSET_KEYS = {spec.entity: AssetKey(spec.asset_name) for spec in MODEL_SPECS}

odoo_sync_job = define_asset_job(
    "odoo_sync_job",
    selection=sync_selection(*SYNC_ASSETS),
    tags=run_tags(SOURCE),
    executor_def=sync_executor(in_process_executor),
    description="Sync every Odoo model (or the selected ones): invoices, purchases, sales, products, inventory.",
)


def run_config_for(specs: list[ModelSpec], mode: str = "incremental", **extra) -> dict:
    """Run config setting ``mode`` (and e.g. ``batch_size``) on the given Odoo assets."""
    return {"ops": {spec.asset_name: {"config": {"mode": mode, **extra}} for spec in specs}}
