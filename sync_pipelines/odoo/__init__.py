"""Odoo source (issue 4): invoices, purchases, sales, products and inventory over JSON-RPC.

See README.md in this folder for the whole story.
"""

from dagster import Definitions

from sync_pipelines.odoo.archive import odoo_archive_job
from sync_pipelines.odoo.assets import SYNC_ASSETS, odoo_sync_job
from sync_pipelines.odoo.checks import ODOO_CHECKS
from sync_pipelines.odoo.resources import OdooResource
from sync_pipelines.odoo.schedules import odoo_archive_schedule, odoo_sync_schedule
from sync_pipelines.odoo.sensors import odoo_changes_sensor

defs = Definitions(
    assets=SYNC_ASSETS,
    asset_checks=ODOO_CHECKS,
    jobs=[odoo_sync_job, odoo_archive_job],
    schedules=[odoo_sync_schedule, odoo_archive_schedule],
    sensors=[odoo_changes_sensor],
    resources={"odoo": OdooResource()},
)

__all__ = ["defs"]
