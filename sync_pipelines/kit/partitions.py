"""Keep a dynamic partitions set equal to the keys a source stores (connections, integrations)."""

from collections.abc import Iterable

from dagster import DynamicPartitionsDefinition, SensorEvaluationContext, SensorResult, SkipReason


def sync_dynamic_partitions(
    context: SensorEvaluationContext, partitions_def: DynamicPartitionsDefinition, wanted: Iterable[str], what: str
) -> SensorResult | SkipReason:
    """The sensor answer adding the ``wanted`` keys that have no partition and deleting the others."""
    existing = set(context.instance.get_dynamic_partitions(partitions_def.name))
    wanted = set(wanted)
    added, removed = sorted(wanted - existing), sorted(existing - wanted)
    if not added and not removed:
        return SkipReason(f"{len(existing)} {what} partition(s), all current")
    requests = []
    if added:
        requests.append(partitions_def.build_add_request(added))
    if removed:
        requests.append(partitions_def.build_delete_request(removed))
    context.log.info(f"{partitions_def.name} partitions: added {added or 'none'}, removed {removed or 'none'}")
    return SensorResult(dynamic_partitions_requests=requests)
