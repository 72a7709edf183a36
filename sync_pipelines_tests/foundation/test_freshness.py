"""Freshness (issue 13): every scheduled asset of the four sources has a FreshnessPolicy
matching its schedule (WARN one tick missed, FAIL two), and Golioth's integrations_on_time
names each integration late against its own frequency."""

from __future__ import annotations

import datetime as dt

from dagster import AssetCheckKey, AssetKey
from dagster._utils.schedules import cron_string_iterator

from sync_pipelines.definitions import defs
from sync_pipelines.freshness import EXPECTATIONS, UNSCHEDULED, late_connections, late_integrations
from sync_pipelines.golioth import integrations
from sync_pipelines.golioth.integrations import Integration
from sync_pipelines.warehouse import Warehouse

SCHEDULES = {"cars": "cars_sync_schedule", "odoo": "odoo_sync_schedule", "procore": "procore_sync_schedule"}


def _period(schedule_name: str) -> dt.timedelta:
    schedule = defs.resolve_schedule_def(schedule_name)
    ticks = cron_string_iterator(dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone.utc).timestamp(),
                                 schedule.cron_schedule, schedule.execution_timezone)
    first, second = next(ticks), next(ticks)
    return second - first


def test_every_scheduled_asset_has_a_policy_matching_its_schedule():
    graph = defs.resolve_asset_graph()
    seen = set()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        if name in UNSCHEDULED:
            assert node.freshness_policy is None, name
            continue
        expectation = EXPECTATIONS[node.group_name]
        policy = node.freshness_policy
        assert policy is not None, f"{name} has no FreshnessPolicy"
        assert policy.warn_window.to_timedelta() == expectation.every + expectation.grace, name
        assert policy.fail_window.to_timedelta() == 2 * expectation.every + expectation.grace, name
        assert node.metadata["sync_pipelines/expected_every"] == expectation.schedule
        seen.add(node.group_name)
    assert seen == {"cars", "odoo", "procore", "golioth"}
    for source, schedule_name in SCHEDULES.items():
        assert EXPECTATIONS[source].every == _period(schedule_name), source
        assert schedule_name in EXPECTATIONS[source].schedule


def test_the_golioth_check_runs_with_each_pull_and_in_the_status_job():
    for job_name in ("golioth_sync_job", "sync_status_job"):
        keys = defs.resolve_job_def(job_name).asset_layer.asset_graph.asset_check_keys
        assert AssetCheckKey(AssetKey("golioth_telemetry_live"), "integrations_on_time") in keys, job_name


def test_late_integrations_follow_each_integration_s_frequency(sqlite_url, monkeypatch):
    monkeypatch.setenv("KEY_A", "golioth-key-a")
    warehouse = Warehouse.for_url(sqlite_url)
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
    ago = lambda minutes: now - dt.timedelta(minutes=minutes)  # noqa: E731
    for integration in (
        Integration("new", "p", "KEY_A", frequency_minutes=5),
        Integration("on-time", "p", "KEY_A", frequency_minutes=60, last_run_at=ago(65)),
        Integration("hourly-late", "p", "KEY_A", frequency_minutes=60, last_run_at=ago(75)),
        Integration("paused", "p", "KEY_A", status="paused", last_run_at=ago(600)),
        Integration("night-only", "p", "KEY_A", time_window_start="22:00", time_window_end="23:00",
                    last_run_at=ago(600)),
        Integration("just-opened", "p", "KEY_A", time_window_start="11:55", time_window_end="13:00",
                    last_run_at=ago(1400)),
        Integration("open-since-11", "p", "KEY_A", time_window_start="11:00", time_window_end="13:00",
                    last_run_at=ago(1400)),
    ):
        integrations.add(warehouse, integration)
    late = late_integrations(warehouse, now)
    assert set(late) == {"new", "hourly-late", "open-since-11"}
    assert late["hourly-late"] == "last run 2026-12-02 10:45 UTC, expected every 60 min"
    assert late["new"] == "never synced"
    warehouse.dispose()


def test_late_procore_connections_are_named_one_by_one(sqlite_url):
    warehouse = Warehouse.for_url(sqlite_url)
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
    ago = lambda minutes: now - dt.timedelta(minutes=minutes)  # noqa: E731
    rows = [("7001", "active", ago(5), ago(600)), ("7002", "active", ago(45), ago(600)),
            ("7003", "active", None, ago(3)), ("7004", "active", None, ago(30)), ("7005", "needs_reauth", None, ago(600))]
    with warehouse.engine.begin() as conn:
        conn.execute(warehouse.table("procore_connections").insert(), [
            {"user_id": user, "status": status, "last_sync_at": synced, "connected_at": connected, "synced_at": now}
            for user, status, synced, connected in rows
        ])
    assert late_connections(warehouse, now) == {
        "7002": "last full sync 2026-12-02 11:15 UTC, expected every 10 min",
        "7004": "never synced (connected 2026-12-02 11:30 UTC), expected every 10 min",
    }  # 7005 is the status check's business (needs reauth)
    warehouse.dispose()
