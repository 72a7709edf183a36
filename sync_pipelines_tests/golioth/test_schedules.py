"""Scheduling: enabled, active, in its window (also across midnight), due by its frequency; one run per slot."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from dagster import DagsterInstance, build_schedule_context, build_sensor_context

from sync_pipelines.golioth import integrations as store
from sync_pipelines.golioth.integrations import Integration, evaluate, in_window, slot_start
from sync_pipelines.golioth.schedules import golioth_due_integrations_sensor, golioth_sync_schedule
from sync_pipelines.warehouse import WarehouseResource
from sync_pipelines_tests.golioth.conftest import KEY_ENV, PROJECT

UTC = dt.timezone.utc


def at(hour: int, minute: int = 0, day: int = 1) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def _integration(**values) -> Integration:
    return Integration(values.pop("id", "acme"), PROJECT, KEY_ENV, **values)


@pytest.mark.parametrize(
    ("window", "tz", "now", "inside"),
    [
        (("09:00", "17:00"), "UTC", at(9), True),
        (("09:00", "17:00"), "UTC", at(17), False),  # the end is exclusive
        (("22:00", "06:00"), "UTC", at(23, 30), True),  # crosses midnight
        (("22:00", "06:00"), "UTC", at(5, 59), True),
        (("22:00", "06:00"), "UTC", at(6), False),
        (("22:00", "06:00"), "UTC", at(12), False),
        (("22:00", "06:00"), "Asia/Seoul", at(14), True),  # 23:00 in Seoul
        (("22:00", "06:00"), "Asia/Seoul", at(22), False),  # 07:00 in Seoul
    ],
)
def test_time_windows_in_the_integrations_zone(window, tz, now, inside):
    integration = _integration(time_window_start=window[0], time_window_end=window[1], timezone=tz)
    assert in_window(integration, now) is inside


def test_skip_reasons_say_why():
    assert evaluate(_integration(enabled=False), at(10)).reason == "disabled"
    assert evaluate(_integration(status="paused"), at(10)).reason == "status is paused, not active"
    outside = evaluate(_integration(time_window_start="22:00", time_window_end="06:00", timezone="Europe/Paris"), at(12))
    assert not outside.due and outside.reason == "outside its window 22:00-06:00 Europe/Paris (local time 13:00)"
    later = evaluate(_integration(frequency_minutes=15, next_run_at=at(10, 15)), at(10, 5))
    assert not later.due and later.reason.startswith("not due until 2026-12-01 10:15 UTC")
    due = evaluate(_integration(frequency_minutes=15, next_run_at=at(10, 15)), at(10, 15))
    assert due.due and due.slot == at(10, 15) and due.run_key == "golioth:acme:2026-12-01T10:15Z"
    assert slot_start(60, at(10, 59)) == at(10) and slot_start(15, at(10, 14)) == at(10)
    seven = slot_start(7, at(10, 5))  # slots tile time from the epoch, whatever the frequency
    assert dt.timedelta(0) <= at(10, 5) - seven < dt.timedelta(minutes=7) and seven.timestamp() % 420 == 0


def _tick(when: dt.datetime):
    context = build_schedule_context(scheduled_execution_time=when, resources={"warehouse": WarehouseResource()},
                                     instance=DagsterInstance.ephemeral())
    return golioth_sync_schedule.evaluate_tick(context)


def _sensor_tick():
    context = build_sensor_context(resources={"warehouse": WarehouseResource()}, instance=DagsterInstance.ephemeral())
    return golioth_due_integrations_sensor.evaluate_tick(context)


def _ids(data) -> list[str]:
    return sorted(r.tags["golioth/integration"] for r in data.run_requests or [])


def test_each_due_integration_gets_exactly_one_run_per_slot(warehouse, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "x" * 20)
    store.add(warehouse, _integration(id="every15", frequency_minutes=15))
    store.add(warehouse, _integration(id="nightly", time_window_start="22:00", time_window_end="06:00"))
    store.add(warehouse, _integration(id="off", enabled=False))
    first = _tick(at(10))
    assert _ids(first) == ["every15"]
    [request] = first.run_requests
    assert request.run_key == "golioth:every15:2026-12-01T10:00Z"
    assert request.run_config["ops"]["golioth_live_pull"]["config"]["integrations"] == ["every15"]
    again = _tick(at(10))  # the same tick evaluated again: the slot has its run
    assert _ids(again) == []
    assert "off: disabled" in again.skip_message and "nightly: outside its window 22:00-06:00 UTC" in again.skip_message
    assert "every15: not due until 2026-12-01 10:15 UTC" in again.skip_message
    from sync_pipelines.golioth.schedules import plan_runs

    new_only = plan_runs(warehouse, at(10, 1), "test", logging.getLogger("test"), only_new=True)
    assert new_only.requests == []  # the sensor's rule: every15 has its slot, the others are skipped
    assert _ids(_tick(at(10, 5))) == [] and _ids(_tick(at(10, 10))) == []  # not due yet
    second = _tick(at(10, 15))
    assert _ids(second) == ["every15"] and second.run_requests[0].run_key == "golioth:every15:2026-12-01T10:15Z"
    night = _tick(at(23, 5))
    assert _ids(night) == ["every15", "nightly"]  # inside the window crossing midnight
    assert _ids(_tick(at(2, 0, day=2))) == ["every15", "nightly"]  # after midnight, still inside
    assert _ids(_tick(at(6, 0, day=2))) == ["every15"]  # the window has closed


def test_a_new_or_re_enabled_integration_starts_from_the_sensor_once(warehouse, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "x" * 20)
    store.add(warehouse, _integration(id="fresh", frequency_minutes=60))
    assert _ids(_sensor_tick()) == ["fresh"]
    assert _ids(_sensor_tick()) == []
    store.update(warehouse, "fresh", enabled=False)
    assert _ids(_sensor_tick()) == []  # disabled
    store.update(warehouse, "fresh", enabled=True)
    assert _ids(_sensor_tick()) == []  # re-enabled within the slot that had its run: none again


def test_an_edit_runs_the_new_slot_at_once_but_never_a_slot_twice(warehouse, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "x" * 20)
    store.add(warehouse, _integration(id="acme", frequency_minutes=60))
    assert _ids(_tick(at(10, 20))) == ["acme"]  # slot 10:00
    store.update(warehouse, "acme", enabled=False)
    store.update(warehouse, "acme", enabled=True)
    assert _ids(_tick(at(10, 25))) == []  # slot 10:00 had its run
    store.update(warehouse, "acme", frequency_minutes=15)
    [request] = _tick(at(10, 30)).run_requests  # the new frequency's slot 10:30 is new
    assert request.run_key == "golioth:acme:2026-12-01T10:30Z"


def test_every_skip_is_logged_with_its_reason(warehouse, monkeypatch):
    from sync_pipelines.golioth.schedules import plan_runs

    monkeypatch.setenv(KEY_ENV, "x" * 20)
    store.add(warehouse, _integration(id="off", enabled=False))
    store.add(warehouse, _integration(id="on"))
    lines = []

    class Log:
        def info(self, message):
            lines.append(message)

    plan = plan_runs(warehouse, at(10), "test", Log())
    assert [r.tags["golioth/integration"] for r in plan.requests] == ["on"]
    assert "golioth integration off: skipped, disabled" in lines
    assert "golioth integration on: due, run for slot 2026-12-01 10:00 UTC" in lines
