"""The Dagster resource every source asset writes through."""

from __future__ import annotations

from dagster import ConfigurableResource

from sync_pipelines import settings
from sync_pipelines.warehouse.store import Warehouse


class WarehouseResource(ConfigurableResource):
    """Destination database. Reads ``SYNC_DATABASE_URL`` at run time (embedded SQLite if unset).

    The URL is deliberately not a config field by default: resource config is shown in the
    Dagster UI, and a Postgres URL usually carries a password.
    """

    database_url: str | None = None

    def get_warehouse(self) -> Warehouse:
        return Warehouse.for_url(self.database_url or settings.database_url())
