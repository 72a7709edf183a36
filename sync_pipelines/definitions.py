"""The one code location: every source's assets, jobs, schedules and sensors.

Each source is a subpackage (``sync_pipelines/<source>/``) exporting ``defs``; this module
only merges them with the resources they share. Nothing here touches the network or
reads credentials: resources read the environment when a run starts.

Dagster allows exactly one ``Definitions`` object at module scope here, so sources are
imported as modules (``from sync_pipelines import cars``), never as ``... import defs``.
"""

from dagster import Definitions, multi_or_in_process_executor

from sync_pipelines import cars, golioth, odoo, procore
from sync_pipelines.alerts import sync_failure_alert_sensor
from sync_pipelines.executors import sync_executor
from sync_pipelines.freshness import (
    apply_freshness,
    golioth_integrations_on_time,
    procore_connections_on_time,
)
from sync_pipelines.instance import refuse_throwaway_instance
from sync_pipelines.run_health import build_run_health_sensor
from sync_pipelines.status_checks import build_status_defs
from sync_pipelines.warehouse import WarehouseResource

# Source subpackages, one line each (sources without an issue are not built yet):
SOURCE_MODULES: list = [cars, odoo, golioth, procore]


def build_definitions() -> Definitions:
    # jobs without an executor of their own (cars, asset materializations): Celery when SYNC_EXECUTOR says
    shared = Definitions(
        resources={"warehouse": WarehouseResource()}, sensors=[sync_failure_alert_sensor],
        executor=sync_executor(multi_or_in_process_executor),
    )
    sources = [module.__name__.rsplit(".", 1)[-1] for module in SOURCE_MODULES]
    status = build_status_defs(sources, [golioth_integrations_on_time, procore_connections_on_time])
    # every scheduled asset gets its FreshnessPolicy (sync_pipelines/freshness.py)
    merged = apply_freshness(Definitions.merge(shared, *(module.defs for module in SOURCE_MODULES), status))
    # run_health_sensor retries dead `dagster job execute` runs: it may request any job here
    return Definitions.merge(merged, Definitions(sensors=[build_run_health_sensor(merged.jobs or [])]))


refuse_throwaway_instance()
defs = build_definitions()
