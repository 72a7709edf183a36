"""Freshness of every scheduled asset, as Dagster 1.13 ``FreshnessPolicy.time_window``
(what the UI's asset health shows): WARN once one schedule tick is missed, FAIL after two.

Golioth syncs each integration on its own frequency, which lives in the destination, not in
code: its assets get a one-day floor, and ``integrations_on_time`` (a check reading
``golioth_integrations``) says which integration is late. A policy is per asset, not per
partition: ``connections_on_time`` says which Procore connection is late. The story:
README, "Freshness".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSpec,
    Definitions,
    FreshnessPolicy,
    asset_check,
    map_asset_specs,
)

from sync_pipelines.warehouse import WarehouseResource, utcnow


@dataclass(frozen=True)
class Expectation:
    every: dt.timedelta  # how often the schedule syncs the asset
    grace: dt.timedelta  # a slow run, a busy queue
    schedule: str

    @property
    def policy(self) -> FreshnessPolicy:
        # Dagster wants warn < fail: warn after one missed tick, fail after two.
        return FreshnessPolicy.time_window(fail_window=2 * self.every + self.grace, warn_window=self.every + self.grace)


EXPECTATIONS = {
    "cars": Expectation(dt.timedelta(hours=6), dt.timedelta(minutes=30), "cars_sync_schedule, 0 */6 * * *"),
    "odoo": Expectation(dt.timedelta(hours=2), dt.timedelta(minutes=30), "odoo_sync_schedule, 0 */2 * * *"),
    "procore": Expectation(dt.timedelta(minutes=10), dt.timedelta(minutes=10),
                           "procore_sync_schedule, */10 * * * * (any connection's sync)"),
    # Floor only: integrations sync every N minutes, some only inside a daily window.
    "golioth": Expectation(dt.timedelta(days=1), dt.timedelta(hours=1),
                           "each integration's frequency (golioth_integrations); see check integrations_on_time"),
}
# Materialized only when an operator backfills a range: no schedule to be late against.
UNSCHEDULED = {"golioth_telemetry"}
GOLIOTH_GRACE = dt.timedelta(minutes=10)  # the 5-minute scheduler, then the run itself


def with_freshness(spec: AssetSpec) -> AssetSpec:
    """``spec`` with its group's policy (a policy set on the asset itself wins) and, as
    metadata, what it is expected to follow."""
    expectation = EXPECTATIONS.get(spec.group_name or "")
    if expectation is None or spec.key.to_user_string() in UNSCHEDULED:
        return spec
    return spec.replace_attributes(freshness_policy=spec.freshness_policy or expectation.policy).merge_attributes(
        metadata={"sync_pipelines/expected_every": expectation.schedule}
    )


def apply_freshness(defs: Definitions) -> Definitions:
    """``defs`` with :func:`with_freshness` applied to its assets (``dagster.map_asset_specs``:
    ``Definitions.map_asset_specs`` is still a preview in 1.13)."""
    return Definitions(
        assets=map_asset_specs(with_freshness, list(defs.assets or [])), asset_checks=defs.asset_checks,
        jobs=defs.jobs, schedules=defs.schedules, sensors=defs.sensors, resources=defs.resources,
        executor=defs.executor, loggers=defs.loggers, metadata=defs.metadata,
    )


def late_integrations(warehouse, now: dt.datetime) -> dict[str, str]:
    """Integrations due now (enabled, active, in their window) whose last run is older than
    their frequency plus grace, with why."""
    from sync_pipelines.golioth import integrations

    late = {}
    for integration in integrations.load(warehouse):
        if not integrations.evaluate(integration, now).due:
            continue
        allowed = dt.timedelta(minutes=integration.frequency_minutes) + GOLIOTH_GRACE
        if now - _window_opened(integration, now) < allowed:
            continue  # its window has just opened: the scheduler has not had its chance yet
        if integration.last_run_at is None:
            late[integration.id] = "never synced"
        elif now - integration.last_run_at > allowed:
            late[integration.id] = (f"last run {integration.last_run_at:%Y-%m-%d %H:%M} UTC, "
                                    f"expected every {integration.frequency_minutes} min")
    return late


def _window_opened(integration, now: dt.datetime) -> dt.datetime:
    """When the integration's current window opened (no window: the beginning of time)."""
    if not integration.time_window_start:
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    local = now.astimezone(integration.tz)
    hour, minute = (int(part) for part in integration.time_window_start.split(":"))
    opened = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if opened > local:  # a window crossing midnight, opened yesterday
        opened -= dt.timedelta(days=1)
    return opened.astimezone(dt.timezone.utc)


def _late_result(late: dict[str, str], count_name: str, label: str = "") -> AssetCheckResult:
    """A warning naming each late key with why (passed when none is late)."""
    return AssetCheckResult(
        passed=not late,
        severity=AssetCheckSeverity.WARN,
        metadata={count_name: len(late), "late": "; ".join(f"{k}: {v}" for k, v in late.items()) or "none"},
        description="; ".join(f"{label}{k}: {v}" for k, v in late.items()) or None,
    )


@asset_check(
    asset="golioth_telemetry_live",
    name="integrations_on_time",
    description="Warns when a Golioth integration due now has not run within its frequency + 10 min "
    "(golioth_integrations.frequency_minutes; the asset's FreshnessPolicy is only a one-day floor).",
)
def golioth_integrations_on_time(warehouse: WarehouseResource) -> AssetCheckResult:
    return _late_result(late_integrations(warehouse.get_warehouse(), utcnow()), "late_integrations")


def late_connections(warehouse, now: dt.datetime) -> dict[str, str]:
    """Active Procore connections not synced in full (``last_sync_at``; never: since they
    connected) for longer than Procore's WARN window, with why."""
    from sync_pipelines.procore.connections import ACTIVE, TABLE
    from sync_pipelines.warehouse import as_utc

    allowed = EXPECTATIONS["procore"].every + EXPECTATIONS["procore"].grace
    t = warehouse.table(TABLE)
    query = sa.select(t.c.user_id, t.c.last_sync_at, t.c.connected_at).where(t.c.status == ACTIVE).order_by(t.c.user_id)
    with warehouse.engine.connect() as conn:
        rows = conn.execute(query).all()
    late = {}
    for user_id, last_sync_at, connected_at in rows:
        since = as_utc(last_sync_at or connected_at)
        if now - since > allowed:
            what = f"last full sync {since:%Y-%m-%d %H:%M} UTC" if last_sync_at else f"never synced (connected {since:%Y-%m-%d %H:%M} UTC)"
            late[str(user_id)] = f"{what}, expected every 10 min"
    return late


@asset_check(
    asset="procore_companies",
    name="connections_on_time",
    description="Warns when an active Procore connection has had no full sync for 20 min (the asset's "
    "FreshnessPolicy only sees the newest sync of any connection).",
)
def procore_connections_on_time(warehouse: WarehouseResource) -> AssetCheckResult:
    return _late_result(late_connections(warehouse.get_warehouse(), utcnow()), "late_connections", label="user ")
