"""``odoo_sync_schedule`` (every 2 hours, UTC; the 00:00 tick is a full sync) and the daily archive."""

import datetime as dt

from dagster import (
    AssetKey,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from sync_pipelines.kit import run_tags
from sync_pipelines.odoo.archive import odoo_archive_job
from sync_pipelines.odoo.assets import odoo_sync_job, run_config_for
from sync_pipelines.odoo.resources import OdooResource
from sync_pipelines.odoo.settings import SOURCE, auto_sync_enabled, auto_sync_specs


def sync_run_request(tick: dt.datetime) -> RunRequest:
    """The run of one schedule tick: ``full`` at 00:00 UTC, ``incremental`` otherwise,
    over the models ``AUTO_SYNC_TYPES`` selects (all by default)."""
    mode = "full" if tick.astimezone(dt.timezone.utc).hour == 0 else "incremental"
    specs = auto_sync_specs()
    return RunRequest(
        run_config=run_config_for(specs, mode),
        asset_selection=[AssetKey(spec.asset_name) for spec in specs],
        tags=run_tags(SOURCE, mode=mode, trigger="odoo_sync_schedule"),
    )


@schedule(
    name="odoo_sync_schedule",
    cron_schedule="0 */2 * * *",
    execution_timezone="UTC",
    job=odoo_sync_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Odoo sync every 2 hours (UTC); the 00:00 run is full (finds deletions), the others incremental.",
)
def odoo_sync_schedule(context: ScheduleEvaluationContext, odoo: OdooResource) -> RunRequest | SkipReason:
    if not auto_sync_enabled():
        return SkipReason("AUTO_SYNC_ENABLED is false: scheduled Odoo syncs are paused")
    if missing := odoo.missing_settings():
        # A deployment that does not use Odoo gets a skipped tick saying so, not a failed run every 2 h.
        return SkipReason(f"Odoo is not configured: set {', '.join(missing)}")
    return sync_run_request(context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc))


@schedule(
    name="odoo_archive_schedule",
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    job=odoo_archive_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Daily: archive Odoo rows deleted or cancelled for more than 30 days.",
)
def odoo_archive_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return RunRequest(tags=run_tags(SOURCE, trigger="odoo_archive_schedule"))
