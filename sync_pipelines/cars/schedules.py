"""``cars_sync_schedule``: an incremental cars sync every 6 hours (UTC)."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from sync_pipelines.cars.assets import cars_sync_job, run_config_for
from sync_pipelines.cars.settings import SOURCE
from sync_pipelines.kit import run_tags


@schedule(
    name="cars_sync_schedule",
    cron_schedule="0 */6 * * *",
    execution_timezone="UTC",
    job=cars_sync_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every 6 hours (UTC): incremental Encar + KB Chachacha sync (first page each, plus a bounded "
    "round of per-car status checks), then archive cars sold > 7 days.",
)
def cars_sync_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return RunRequest(
        run_config=run_config_for("incremental"),
        tags=run_tags(SOURCE, mode="incremental", trigger="cars_sync_schedule"),
    )
