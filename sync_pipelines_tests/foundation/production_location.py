"""A test code location: the product's assets, jobs and resources, without its schedules and
sensors, plus ``production_path_sensor``, which requests on its first tick two cars syncs
(same source: the run queue must run them one after the other), one Odoo sync and one
Odoo sync that fails (for the real ``sync_failure_alert_sensor``), all in one process per run.

The daemon evaluates the sensor by itself, as it does a schedule tick; no run is launched by hand.
"""

from __future__ import annotations

from dagster import AssetKey, DefaultSensorStatus, Definitions, RunRequest, SensorEvaluationContext, sensor

from sync_pipelines.alerts import sync_failure_alert_sensor
from sync_pipelines.cars.assets import cars_sync_job
from sync_pipelines.cars.assets import run_config_for as cars_run_config
from sync_pipelines.definitions import defs as product
from sync_pipelines.kit import run_tags
from sync_pipelines.odoo.assets import odoo_sync_job

TRIGGER = "production_path_sensor"
CARS_RUN_KEYS = ("cars-first", "cars-second")


@sensor(
    name=TRIGGER,
    jobs=[cars_sync_job, odoo_sync_job],
    minimum_interval_seconds=1,
    default_status=DefaultSensorStatus.RUNNING,
)
def production_path_sensor(context: SensorEvaluationContext):
    # Run keys make later ticks request nothing new: three runs in all.
    for run_key in CARS_RUN_KEYS:
        yield RunRequest(
            run_key=run_key, job_name=cars_sync_job.name, run_config=cars_run_config("incremental"),
            tags=run_tags("cars", mode="incremental", trigger=TRIGGER),
        )
    yield RunRequest(run_key="odoo", job_name=odoo_sync_job.name, tags=run_tags("odoo", trigger=TRIGGER))
    # Fails at once (a bad config value: no retry), for sync_failure_alert_sensor to announce.
    yield RunRequest(
        run_key="odoo-broken", job_name=odoo_sync_job.name, asset_selection=[AssetKey("odoo_products")],
        run_config={"ops": {"odoo_products": {"config": {"delay_ms": -1}}}},
        tags={**run_tags("odoo", trigger=TRIGGER), "dagster/max_retries": "0"},
    )


defs = Definitions(
    assets=product.assets,
    asset_checks=product.asset_checks,
    jobs=product.jobs,
    resources=product.resources,
    sensors=[production_path_sensor, sync_failure_alert_sensor],
)
