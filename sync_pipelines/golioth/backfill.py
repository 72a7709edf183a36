"""``golioth backfill``: a range of UTC days x integrations as single-run backfills of ``golioth_telemetry``.

The run goes through Dagster (``execute_job`` on the project's instance, as ``dagster asset
materialize --partition-range`` does), so it is in the run history and uses the ``golioth``
pool. One run per contiguous slice of the integration partitions; usually one. README "Backfills".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dagster import AssetKey, DagsterInstance, execute_job

from sync_pipelines.golioth import integrations as store
from sync_pipelines.golioth.integrations import IntegrationError
from sync_pipelines.golioth.partitions import (
    DAYS_PARTITIONS,
    INTEGRATIONS_PARTITIONS,
    add_partition,
    contiguous_slices,
    range_tags,
)
from sync_pipelines.golioth.settings import SOURCE
from sync_pipelines.kit import run_tags
from sync_pipelines.warehouse import Warehouse, utcnow

ASSET = AssetKey("golioth_telemetry")
DEFINITIONS_MODULE = "sync_pipelines.definitions"
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}  # one step: no step subprocess to start


@dataclass(frozen=True)
class BackfillRun:
    integrations: list[str]
    run_id: str
    success: bool


def plan(warehouse: Warehouse, instance: DagsterInstance, first: dt.date, last: dt.date,
         integration_ids: list[str]) -> list[list[str]]:
    """The integration slices to run (one range each); adds missing partitions. Raises
    :class:`IntegrationError` on a bad range or an unknown integration, having changed nothing."""
    earliest = dt.date.fromisoformat(DAYS_PARTITIONS.get_first_partition_key())
    today = utcnow().date()
    if first > last:
        raise IntegrationError(f"--from {first} is after --to {last}")
    if first < earliest or last > today:
        raise IntegrationError(f"days must be within {earliest}..{today} (UTC), got {first}..{last}")
    if integration_ids:
        chosen = store.load(warehouse, integration_ids)
        missing = sorted(set(integration_ids) - {i.id for i in chosen})
        if missing:
            raise IntegrationError(f"no golioth integration {', '.join(map(repr, missing))}")
    else:
        chosen = [i for i in store.load(warehouse) if i.enabled]
        if not chosen:
            raise IntegrationError("no enabled golioth integration to backfill (name one with --integration)")
    for integration in chosen:
        add_partition(instance, integration.id)  # backfillable before golioth_integrations_sensor ticks
    ordered = list(instance.get_dynamic_partitions(INTEGRATIONS_PARTITIONS.name))
    return contiguous_slices(ordered, [i.id for i in chosen])


def launch(instance: DagsterInstance, first: dt.date, last: dt.date, slices: list[list[str]]) -> list[BackfillRun]:
    """One ``golioth_telemetry`` run per slice, each over ``first..last`` (end day included)."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from sync_pipelines.definitions import defs

    job_name = defs.get_repository_def().get_implicit_job_def_for_assets([ASSET]).name
    job = ReconstructableRepository.for_module(DEFINITIONS_MODULE, "defs").get_reconstructable_job(job_name)
    runs = []
    for integrations in slices:
        tags = {**run_tags(SOURCE, mode="backfill", trigger="cli"), **range_tags(first, last, integrations)}
        result = execute_job(job, instance, run_config=IN_PROCESS, tags=tags, asset_selection=[ASSET])
        runs.append(BackfillRun(integrations, result.run_id, result.success))
    return runs
