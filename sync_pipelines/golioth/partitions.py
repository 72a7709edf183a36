"""``golioth_telemetry``'s partitions: UTC day x integration (a dynamic dimension).

One dynamic partition per row of ``golioth_integrations``, enabled or not (a disabled
integration keeps its history visible and backfillable); a removed integration loses its
partition. Kept in step by ``golioth_integrations_sensor`` and by the CLI. Story: README "Backfills".
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

from dagster import (
    DagsterInstance,
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from sync_pipelines.golioth import integrations as store
from sync_pipelines.warehouse import Warehouse

DAY, INTEGRATION = "day", "integration"
INTEGRATIONS_PARTITIONS = DynamicPartitionsDefinition(name="golioth_integrations")
DAYS_PARTITIONS = DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)
TELEMETRY_PARTITIONS = MultiPartitionsDefinition({DAY: DAYS_PARTITIONS, INTEGRATION: INTEGRATIONS_PARTITIONS})

Window = tuple[dt.datetime, dt.datetime]


def partition_key(day: dt.date | str, integration_id: str) -> MultiPartitionKey:
    """The key of one day of one integration (shown as ``2026-11-24|acme``)."""
    return MultiPartitionKey({DAY: str(day), INTEGRATION: integration_id})


def days_by_integration(keys: Iterable[str]) -> dict[str, list[dt.date]]:
    """The selected days of each integration named in ``keys`` (multi-partition keys), sorted."""
    days: dict[str, set[dt.date]] = defaultdict(set)
    for key in keys:
        dimensions = TELEMETRY_PARTITIONS.get_partition_key_from_str(str(key)).keys_by_dimension
        days[dimensions[INTEGRATION]].add(dt.date.fromisoformat(dimensions[DAY]))
    return {integration_id: sorted(found) for integration_id, found in sorted(days.items())}


def day_windows(days: Iterable[dt.date]) -> list[Window]:
    """Consecutive days merged into ``[start, end)`` UTC windows (one stream read per window)."""
    windows: list[Window] = []
    for day in sorted(set(days)):
        start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
        end = start + dt.timedelta(days=1)
        if windows and windows[-1][1] == start:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


def wanted_partitions(warehouse: Warehouse) -> set[str]:
    """Every stored integration has a partition (enabled or not), no other key does."""
    return {i.id for i in store.load(warehouse)}


def add_partition(instance: DagsterInstance, integration_id: str) -> bool:
    """Add the integration's partition unless it has one; True when it was added."""
    if instance.has_dynamic_partition(INTEGRATIONS_PARTITIONS.name, integration_id):
        return False
    instance.add_dynamic_partitions(INTEGRATIONS_PARTITIONS.name, [integration_id])
    return True


def remove_partition(instance: DagsterInstance, integration_id: str) -> bool:
    """Remove the integration's partition (its materialization history stays in the event log)."""
    if not instance.has_dynamic_partition(INTEGRATIONS_PARTITIONS.name, integration_id):
        return False
    instance.delete_dynamic_partition(INTEGRATIONS_PARTITIONS.name, integration_id)
    return True


def contiguous_slices(ordered: list[str], chosen: Iterable[str]) -> list[list[str]]:
    """``chosen`` split into runs of neighbours in ``ordered`` (the dynamic partitions' order):
    a partition range covers every integration between its ends, so each slice is one range."""
    chosen = set(chosen)
    slices: list[list[str]] = []
    previous_chosen = False
    for key in ordered:
        if key in chosen:
            if previous_chosen:
                slices[-1].append(key)
            else:
                slices.append([key])
        previous_chosen = key in chosen
    return slices


def range_tags(first_day: dt.date, last_day: dt.date, integrations: list[str]) -> dict[str, str]:
    """The run tags of one single-run backfill over days x a contiguous slice of integrations."""
    return {
        "dagster/asset_partition_range_start": str(partition_key(first_day, integrations[0])),
        "dagster/asset_partition_range_end": str(partition_key(last_day, integrations[-1])),
    }
