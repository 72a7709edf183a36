"""Destination database layer: engine, migrations, bulk upsert, cursors and rejects."""

from sync_pipelines.warehouse.resource import WarehouseResource
from sync_pipelines.warehouse.store import (
    Warehouse,
    WarehouseTransaction,
    WarehouseUnavailableError,
    chunked,
    utcnow,
)
from sync_pipelines.warehouse.types import as_utc
from sync_pipelines.warehouse.upsert import UpsertCounts

__all__ = [
    "UpsertCounts",
    "Warehouse",
    "WarehouseResource",
    "WarehouseTransaction",
    "WarehouseUnavailableError",
    "as_utc",
    "chunked",
    "utcnow",
]
