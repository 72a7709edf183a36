"""Cars source (issue 3): Encar and KB Chachacha listings into `cars`, sales confirmed per
car, sold cars archived after 7 days. See README.md in this folder for the whole story."""

from dagster import Definitions

from sync_pipelines.cars.archive import cars_archive_job
from sync_pipelines.cars.assets import CARS_ASSETS, cars_full_sync_job, cars_sync_job
from sync_pipelines.cars.checks import CARS_CHECKS, cars_freshness_sensor
from sync_pipelines.cars.resources import EncarResource, KBChachachaResource
from sync_pipelines.cars.schedules import cars_sync_schedule

defs = Definitions(
    assets=CARS_ASSETS,
    asset_checks=CARS_CHECKS,
    jobs=[cars_sync_job, cars_full_sync_job, cars_archive_job],
    schedules=[cars_sync_schedule],
    sensors=[cars_freshness_sensor],
    resources={"encar": EncarResource(), "kbchachacha": KBChachachaResource()},
)

__all__ = ["defs"]
