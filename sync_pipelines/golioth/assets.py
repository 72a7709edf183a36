"""Golioth assets (group ``golioth``, pool ``golioth``) and ``golioth_sync_job``.

``golioth_devices`` + ``golioth_telemetry_live`` (one step: the live pull; the cursor moves
only after its points commit) and ``golioth_telemetry`` (backfills by day x integration that
never touch the live cursor). With no integration both succeed doing nothing. Story: README
"How a run works" and "Backfills".
"""

import datetime as dt
import warnings
from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    asset,
    define_asset_job,
    in_process_executor,
    multi_asset,
)
from dagster._utils.warnings import BetaWarning
from pydantic import Field

from sync_pipelines.executors import sync_executor
from sync_pipelines.golioth import integrations as store
from sync_pipelines.golioth import sync
from sync_pipelines.golioth.integrations import Integration
from sync_pipelines.golioth.partitions import TELEMETRY_PARTITIONS, day_windows, days_by_integration
from sync_pipelines.golioth.settings import SOURCE
from sync_pipelines.kit import finish_sync_asset, run_tags
from sync_pipelines.retries import retry_transient_failures
from sync_pipelines.sync_config import SyncConfig
from sync_pipelines.warehouse import Warehouse, WarehouseResource

SOURCE_TAGS = run_tags(SOURCE)
INTEGRATION_TAG = "golioth/integration"


class GoliothSyncConfig(SyncConfig):
    integrations: list[str] = Field(
        default_factory=list, description="integration ids to sync; empty: every enabled, active integration"
    )
    full_lookback_hours: int = Field(
        default=24, description="mode full (or an integration's first pull): re-read this many hours of stream"
    )


def chosen_integrations(warehouse: Warehouse, ids: list[str]) -> list[Integration]:
    """The named integrations (unknown ids are an error), or every enabled, active one."""
    if ids:
        found = store.load(warehouse, ids)
        missing = sorted(set(ids) - {i.id for i in found})
        if missing:
            raise Failure(f"unknown golioth integration(s): {', '.join(missing)}")
        return found
    return [i for i in store.load(warehouse) if i.enabled and i.status == "active"]


def fail_if_any_failed(context: AssetExecutionContext, report: sync.GoliothReport) -> None:
    """Log each failed integration; the run fails naming them once the others have synced."""
    for integration_id, error in report.failed.items():
        context.log.error(f"golioth integration {integration_id} failed: {error}")
    if report.failed:
        raise Failure(
            description="; ".join(f"{iid}: {error}" for iid, error in report.failed.items()),
            metadata={"failed_integrations": ", ".join(report.failed)},
        )


@multi_asset(
    specs=[
        AssetSpec("golioth_devices", group_name="golioth", kinds={"golioth"},
                  description="Devices per integration -> golioth_devices (online derived from lastReport)."),
        AssetSpec("golioth_telemetry_live", group_name="golioth", kinds={"golioth"}, deps=["golioth_devices"],
                  description="LightDB Stream points since each integration's cursor -> device_telemetry_history."),
    ],
    pool="golioth",
)
def golioth_live_pull(
    context: AssetExecutionContext, config: GoliothSyncConfig, warehouse: WarehouseResource
) -> Iterator[MaterializeResult]:
    with retry_transient_failures(context):
        wh = warehouse.get_warehouse()
        chosen = chosen_integrations(wh, config.integrations)
        report = sync.GoliothReport("telemetry", config.mode)
        lookback = dt.timedelta(hours=config.full_lookback_hours)

        def work(integration: Integration, client) -> None:
            if config.mode == "full":
                with wh.transaction() as tx:
                    tx.set_cursor("golioth", sync.cursor_entity(integration.id), None)
            cursor = sync.live_pull(wh, integration, client, report, initial_lookback=lookback, run_id=context.run.run_id)
            context.log.info(f"golioth {integration.id}: cursor now {cursor.isoformat()}")

        sync.for_each_integration(wh, chosen, work, report)
    telemetry = finish_sync_asset(context.log, report, _summary(f"golioth live pull ({config.mode})", report),
                                  destination=wh.location)
    devices = {k: v for k, v in telemetry.metadata.items() if k.startswith("devices") or k == "integrations"}
    yield MaterializeResult(asset_key="golioth_devices", metadata=devices)
    yield MaterializeResult(asset_key="golioth_telemetry_live", metadata=telemetry.metadata)
    fail_if_any_failed(context, report)


# BackfillPolicy is beta in Dagster 1.13: the warning would print at every import of the project.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=BetaWarning)


@asset(
    name="golioth_telemetry",
    group_name="golioth",
    kinds={"golioth"},
    pool="golioth",
    partitions_def=TELEMETRY_PARTITIONS,
    backfill_policy=BackfillPolicy.single_run(),
    description="Telemetry history by UTC day x integration -> device_telemetry_history; a range backfills "
    "in one run (per integration, its selected days) and never moves the live cursor.",
)
def golioth_telemetry(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    selected = days_by_integration(context.partition_keys)
    windows = {integration_id: day_windows(days) for integration_id, days in selected.items()}
    with retry_transient_failures(context):
        wh = warehouse.get_warehouse()
        chosen = chosen_integrations(wh, list(selected))  # a partition of a removed integration fails here
        report = sync.GoliothReport("telemetry", "backfill")
        sync.for_each_integration(
            wh, chosen, lambda integration, client: sync.backfill(wh, integration, client, windows[integration.id], report),
            report,
        )
    fail_if_any_failed(context, report)
    first = min(w[0][0] for w in windows.values())
    last = max(w[-1][1] for w in windows.values())
    days = ", ".join(f"{iid} {d[0]}..{d[-1]} ({len(d)} day(s))" for iid, d in selected.items())
    return finish_sync_asset(
        context.log, report, _summary(f"golioth backfill of {days}", report),
        destination=wh.location,
        metadata={"window_start": first.isoformat(), "window_end": last.isoformat(), "partitions": len(context.partition_keys)},
    )


def _summary(what: str, report: sync.GoliothReport) -> str:
    return (f"{what}: {len(report.integrations)} integration(s) ({len(report.failed)} failed), "
            f"{report.devices_seen} device(s) ({report.devices_online} online), {report.points_pulled} point(s) read, "
            f"{report.points_inserted} new, {report.duplicates} already stored, {report.rejected} rejected")


golioth_sync_job = define_asset_job(
    "golioth_sync_job",
    selection=["golioth_devices", "golioth_telemetry_live"],
    tags=SOURCE_TAGS,
    executor_def=sync_executor(in_process_executor),
    description="Golioth live pull: devices and telemetry since each integration's cursor "
    "(config integrations: the ones to sync; empty: every enabled, active one).",
)


def run_config_for(integration_ids: list[str], mode: str = "incremental") -> dict:
    return {"ops": {"golioth_live_pull": {"config": {"mode": mode, "integrations": integration_ids}}}}
