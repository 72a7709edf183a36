"""Golioth source (issue 12): devices and telemetry per integration, pulled on each integration's
own schedule, pushed by webhook, one row per point. See README.md in this folder.
"""

from dagster import Definitions

from sync_pipelines.golioth.archive import golioth_archive_job
from sync_pipelines.golioth.assets import golioth_live_pull, golioth_sync_job, golioth_telemetry
from sync_pipelines.golioth.schedules import golioth_due_integrations_sensor, golioth_sync_schedule
from sync_pipelines.golioth.sensors import golioth_integrations_sensor, golioth_webhook_sensor

defs = Definitions(
    assets=[golioth_live_pull, golioth_telemetry],
    jobs=[golioth_sync_job, golioth_archive_job],
    schedules=[golioth_sync_schedule],
    sensors=[golioth_due_integrations_sensor, golioth_integrations_sensor, golioth_webhook_sensor],
)

__all__ = ["defs"]
