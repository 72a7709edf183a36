"""``golioth_webhook_sensor`` (drain the webhook inbox) and ``golioth_integrations_sensor``
(one ``golioth_telemetry`` partition per integration).

Each inbox batch and the removal of its events commit together
(:func:`sync_pipelines.golioth.sync.drain_inbox`); a drain that moved something is recorded as
a materialization of ``golioth_telemetry_live``. See the README's "Push" and "Backfills".
"""

from dagster import (
    AssetMaterialization,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sync_pipelines.golioth.partitions import INTEGRATIONS_PARTITIONS, wanted_partitions
from sync_pipelines.golioth.sync import drain_inbox
from sync_pipelines.kit import sync_dynamic_partitions
from sync_pipelines.warehouse import WarehouseResource


@sensor(
    name="golioth_webhook_sensor",
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description="Drains the Golioth webhook inbox into device_telemetry_history (received_via push), in order.",
)
def golioth_webhook_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    report = drain_inbox(warehouse.get_warehouse())
    if not report.points_pulled and not report.rejected:
        return SkipReason("golioth webhook inbox is empty")
    metadata = report.as_metadata()
    pushed = {"points_pushed": report.points_pulled, "points_inserted": report.points_inserted,
              "duplicates_dropped": report.duplicates, "rejected": report.rejected,
              "newest_point_lag_seconds": metadata["newest_point_lag_seconds"], "route": "push"}
    context.log.info(f"golioth webhook inbox drained: {pushed}")
    return SensorResult(asset_events=[AssetMaterialization(asset_key="golioth_telemetry_live", metadata=pushed)])


@sensor(
    name="golioth_integrations_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds a golioth_telemetry partition for each Golioth integration (enabled or not) and removes "
    "those of removed integrations.",
)
def golioth_integrations_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    wanted = wanted_partitions(warehouse.get_warehouse())
    return sync_dynamic_partitions(context, INTEGRATIONS_PARTITIONS, wanted, "golioth integration")
