"""``procore_connections_sensor``: one dynamic partition per connection, as connections come and go.

A connection gets its partition when it is stored (``connect``) and loses it when it is
disconnected or deleted; a ``needs_reauth`` connection keeps its partition (its history
stays visible, and a reconnect resumes it) but the schedule skips it.
"""


from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from sync_pipelines.kit import sync_dynamic_partitions
from sync_pipelines.procore.assets import CONNECTIONS_PARTITIONS
from sync_pipelines.procore.connections import DISCONNECTED, connection_statuses
from sync_pipelines.warehouse import WarehouseResource


@sensor(
    name="procore_connections_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds a partition of the Procore assets for each connection and removes those of disconnected ones.",
)
def procore_connections_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource) -> SensorResult | SkipReason:
    statuses = connection_statuses(warehouse.get_warehouse())
    wanted = [user for user, status in statuses.items() if status != DISCONNECTED]
    return sync_dynamic_partitions(context, CONNECTIONS_PARTITIONS, wanted, "connection")
