"""``golioth_sync_schedule`` and ``golioth_due_integrations_sensor``: each integration on its own schedule.

The schedule is the clock (``*/5``), the sensor starts integrations without a slot yet; both
claim the slot before requesting, with run key ``golioth:<integration>:<slot start>``, so one
due slot gets one run. How they split the work: README "Scheduling".
"""

import datetime as dt
from dataclasses import dataclass, field

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    schedule,
    sensor,
)

from sync_pipelines.golioth import integrations as store
from sync_pipelines.golioth.assets import INTEGRATION_TAG, golioth_sync_job, run_config_for
from sync_pipelines.golioth.settings import SOURCE
from sync_pipelines.kit import run_tags
from sync_pipelines.warehouse import Warehouse, WarehouseResource, utcnow


@dataclass
class Plan:
    """What one tick decided: the runs requested, and every integration skipped with why."""

    requests: list[RunRequest] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def skip_reason(self, nothing: str) -> SkipReason:
        reasons = "; ".join(f"{iid}: {why}" for iid, why in self.skipped.items())
        return SkipReason(f"{nothing}{' (' + reasons + ')' if reasons else ''}")


def plan_runs(warehouse: Warehouse, now: dt.datetime, trigger: str, log, only_new: bool = False) -> Plan:
    """Run requests of the integrations due at ``now`` (their slots claimed); logs every skip."""
    plan = Plan()
    for integration in store.load(warehouse):
        if only_new and integration.next_run_at is not None:
            continue
        decision = store.evaluate(integration, now)
        if not decision.due:
            log.info(f"golioth integration {integration.id}: skipped, {decision.reason}")
            plan.skipped[integration.id] = decision.reason
            continue
        if not store.claim_slot(warehouse, decision, integration.frequency_minutes, now):
            plan.skipped[integration.id] = f"slot {decision.slot:%H:%M} already has its run"
            continue
        log.info(f"golioth integration {integration.id}: due, run for slot {decision.slot:%Y-%m-%d %H:%M} UTC")
        plan.requests.append(RunRequest(
            run_key=decision.run_key,
            run_config=run_config_for([integration.id]),
            tags={**run_tags(SOURCE, mode="incremental", trigger=trigger), INTEGRATION_TAG: integration.id,
                  "golioth/slot": decision.slot.isoformat()},
        ))
    return plan


@schedule(
    name="golioth_sync_schedule",
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    job=golioth_sync_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: one run per Golioth integration that is enabled, active, in its window and due.",
)
def golioth_sync_schedule(context: ScheduleEvaluationContext, warehouse: WarehouseResource):
    now = context.scheduled_execution_time or utcnow()
    plan = plan_runs(warehouse.get_warehouse(), now.astimezone(dt.timezone.utc), "golioth_sync_schedule", context.log)
    return plan.requests or plan.skip_reason("no golioth integration due")


@sensor(
    name="golioth_due_integrations_sensor",
    job=golioth_sync_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts Golioth integrations that have no slot yet (new, re-enabled, edited) without waiting "
    "for the 5-minute schedule; the same rules and slot claim.",
)
def golioth_due_integrations_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    plan = plan_runs(warehouse.get_warehouse(), utcnow(), "golioth_due_integrations_sensor", context.log,
                     only_new=True)
    return plan.requests or plan.skip_reason("no new golioth integration to start")
