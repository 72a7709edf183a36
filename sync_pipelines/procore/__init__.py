"""Procore source (issue 11): per-connection OAuth syncs of companies, projects and RFIs.

See README.md in this folder for the whole story.
"""

from dagster import Definitions

from sync_pipelines.procore.assets import SYNC_ASSETS, procore_sync_job
from sync_pipelines.procore.cleanup import procore_cleanup_job
from sync_pipelines.procore.resources import ProcoreResource
from sync_pipelines.procore.schedules import procore_cleanup_schedule, procore_sync_schedule
from sync_pipelines.procore.sensors import procore_connections_sensor

defs = Definitions(
    assets=SYNC_ASSETS,
    jobs=[procore_sync_job, procore_cleanup_job],
    schedules=[procore_sync_schedule, procore_cleanup_schedule],
    sensors=[procore_connections_sensor],
    resources={"procore": ProcoreResource()},
)

__all__ = ["defs"]
