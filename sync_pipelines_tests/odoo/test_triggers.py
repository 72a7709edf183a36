"""Schedule (00:00 full, else incremental; AUTO_SYNC_TYPES) and the "smart" changes sensor."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from dagster import (
    AssetKey,
    DagsterRunStatus,
    RunRequest,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from sync_pipelines.definitions import defs
from sync_pipelines.odoo import sensors
from sync_pipelines.odoo.resources import OdooResource
from sync_pipelines.odoo.schedules import odoo_sync_schedule
from sync_pipelines.odoo.sensors import odoo_changes_sensor
from sync_pipelines.odoo.settings import MODEL_SPECS, PURCHASE_ORDER_LINES
from sync_pipelines.warehouse import WarehouseResource


@pytest.fixture(autouse=True)
def _odoo_configured(monkeypatch):
    """Odoo settings for the schedule's configuration check (the sandbox's replace them)."""
    for name, value in (("ODOO_URL", "http://odoo.invalid"), ("ODOO_DB", "db"), ("ODOO_USERNAME", "sync"),
                        ("ODOO_API_KEY", "not-a-real-key")):
        monkeypatch.setenv(name, value)


def _tick(hour: int):
    when = dt.datetime(2026, 11, 23, hour, 0, tzinfo=dt.timezone.utc)
    context = build_schedule_context(scheduled_execution_time=when, resources={"odoo": OdooResource()})
    return odoo_sync_schedule(context)


def test_schedule_runs_full_at_midnight_and_incremental_otherwise(monkeypatch):
    monkeypatch.delenv("AUTO_SYNC_TYPES", raising=False)
    midnight, two = _tick(0), _tick(2)
    modes = {op["config"]["mode"] for op in midnight.run_config["ops"].values()}
    assert modes == {"full"} and len(midnight.run_config["ops"]) == len(MODEL_SPECS)
    assert {op["config"]["mode"] for op in two.run_config["ops"].values()} == {"incremental"}
    assert midnight.tags["sync_pipelines/source"] == "odoo"
    assert len(two.asset_selection) == len(MODEL_SPECS)


def test_schedule_crons_are_every_two_hours_utc_with_the_midnight_tick_full(monkeypatch):
    monkeypatch.delenv("AUTO_SYNC_TYPES", raising=False)
    sync_schedule = defs.resolve_schedule_def("odoo_sync_schedule")
    assert (sync_schedule.cron_schedule, sync_schedule.execution_timezone) == ("0 */2 * * *", "UTC")
    archive_schedule = defs.resolve_schedule_def("odoo_archive_schedule")
    assert (archive_schedule.cron_schedule, archive_schedule.execution_timezone) == ("30 3 * * *", "UTC")
    modes = {hour: {op["config"]["mode"] for op in _tick(hour).run_config["ops"].values()} for hour in range(0, 24, 2)}
    assert modes == {hour: {"full" if hour == 0 else "incremental"} for hour in range(0, 24, 2)}
    assert _tick(0).tags["sync_pipelines/mode"] == "full"


def test_auto_sync_types_selects_what_scheduled_runs_sync(monkeypatch):
    monkeypatch.setenv("AUTO_SYNC_TYPES", "invoices,purchases")
    request = _tick(4)
    assert {k.path[-1] for k in request.asset_selection} == {
        "odoo_invoices", "odoo_purchase_orders", "odoo_purchase_order_lines"
    }
    assert set(request.run_config["ops"]) == {k.path[-1] for k in request.asset_selection}


def test_sensor_requests_no_run_without_changes_and_one_run_when_odoo_changed(odoo, monkeypatch):
    odoo.sync()
    resources = {"odoo": OdooResource(), "warehouse": WarehouseResource()}
    with instance_for_test() as instance:
        quiet = odoo_changes_sensor(build_sensor_context(cursor=None, instance=instance, resources=resources))
        assert isinstance(quiet, SkipReason)

        line = next(iter(odoo.vendor.records["purchase.order.line"].values()))
        odoo.control("set_qty_received", line_id=line["id"], qty=line["product_qty"])
        result = odoo_changes_sensor(build_sensor_context(cursor=None, instance=instance, resources=resources))
        assert isinstance(result, SensorResult)
        [request] = result.run_requests
        assert request.asset_selection == [AssetKey(PURCHASE_ORDER_LINES.asset_name)]
        assert request.tags["sync_pipelines/source"] == "odoo"
        assert json.loads(result.cursor)[PURCHASE_ORDER_LINES.entity][1] == line["id"]

        # the requested run is not requested again while it waits in the queue
        queued = instance.create_run_for_job(
            job_def=defs.resolve_job_def("odoo_sync_job"),
            run_config=request.run_config,
            status=DagsterRunStatus.NOT_STARTED,  # created, not yet launched (QUEUED needs a code location)
            tags=request.tags,
        )
        again = odoo_changes_sensor(
            build_sensor_context(cursor=result.cursor, instance=instance, resources=resources)
        )
        assert isinstance(again, SkipReason)

        # the run failed (and its retries too): not asked again at once (Odoo may be down)...
        instance.report_run_failed(queued)
        backing_off = odoo_changes_sensor(
            build_sensor_context(cursor=result.cursor, instance=instance, resources=resources)
        )
        assert isinstance(backing_off, SkipReason)
        # ...but once the backoff has passed, the changes are requested again
        monkeypatch.setattr(sensors, "FAILED_RUN_BACKOFF", dt.timedelta(0))
        retry = odoo_changes_sensor(
            build_sensor_context(cursor=result.cursor, instance=instance, resources=resources)
        )
        assert isinstance(retry, SensorResult)
        [retried] = retry.run_requests
        assert retried.asset_selection == [AssetKey(PURCHASE_ORDER_LINES.asset_name)]
        assert retried.run_key != request.run_key  # a new key, or Dagster would drop it as a duplicate

        # once the run synced the change, the sensor stays quiet
        odoo.sync(types=PURCHASE_ORDER_LINES.entity)
        after = odoo_changes_sensor(build_sensor_context(cursor=None, instance=instance, resources=resources))
        assert isinstance(after, SkipReason)


def test_sensor_stays_quiet_after_a_sync_when_the_last_second_holds_several_writes(odoo):
    """Odoo compares write_date with microseconds but serves whole seconds: the record at the
    cursor (and its neighbours of that second, written in any id order) is not a change."""
    now = odoo.sandbox.clock.now().replace(microsecond=0)
    lines = sorted(odoo.vendor.records["purchase.order.line"])[:6]
    odoo.control("touch", model="purchase.order.line", ids=lines, values={"qty_invoiced": 1.0},
                 write_date=now.strftime("%Y-%m-%d %H:%M:%S"),
                 microseconds=[600_000, 500_000, 999_999, 1, 250_000, 750_000])
    odoo.sync()
    assert odoo.warehouse.get_cursor("odoo", PURCHASE_ORDER_LINES.entity) == {
        "write_date": now.strftime("%Y-%m-%d %H:%M:%S"), "id": max(lines)}
    resources = {"odoo": OdooResource(), "warehouse": WarehouseResource()}
    with instance_for_test() as instance:
        quiet = odoo_changes_sensor(build_sensor_context(cursor=None, instance=instance, resources=resources))
        assert isinstance(quiet, SkipReason), quiet
        # a later write in that same second, to a higher id, is a change
        newer = max(odoo.vendor.records["purchase.order.line"])
        odoo.control("touch", model="purchase.order.line", ids=[newer], values={"qty_invoiced": 2.0},
                     write_date=now.strftime("%Y-%m-%d %H:%M:%S"), microseconds=[999_999])
        result = odoo_changes_sensor(build_sensor_context(cursor=None, instance=instance, resources=resources))
        assert isinstance(result, SensorResult)
        assert [k.path[-1] for k in result.run_requests[0].asset_selection] == [PURCHASE_ORDER_LINES.asset_name]
        assert json.loads(result.cursor)[PURCHASE_ORDER_LINES.entity] == [now.strftime("%Y-%m-%d %H:%M:%S"), newer]
        odoo.sync(types=PURCHASE_ORDER_LINES.entity)
        after = odoo_changes_sensor(build_sensor_context(cursor=result.cursor, instance=instance, resources=resources))
        assert isinstance(after, SkipReason)


def test_auto_sync_enabled_false_pauses_schedule_and_sensor(odoo, monkeypatch):
    odoo.sync()
    line = next(iter(odoo.vendor.records["purchase.order.line"].values()))
    odoo.control("set_qty_received", line_id=line["id"], qty=line["product_qty"])
    resources = {"odoo": OdooResource(), "warehouse": WarehouseResource()}
    monkeypatch.setenv("AUTO_SYNC_ENABLED", "false")
    assert "AUTO_SYNC_ENABLED" in _tick(2).skip_message
    with instance_for_test() as instance:
        paused = odoo_changes_sensor(build_sensor_context(cursor=None, instance=instance, resources=resources))
        assert isinstance(paused, SkipReason) and "AUTO_SYNC_ENABLED" in paused.skip_message
        monkeypatch.setenv("AUTO_SYNC_ENABLED", "true")
        assert isinstance(_tick(2), RunRequest)
        resumed = odoo_changes_sensor(build_sensor_context(cursor=None, instance=instance, resources=resources))
        assert isinstance(resumed, SensorResult)
    monkeypatch.setenv("AUTO_SYNC_ENABLED", "maybe")
    with pytest.raises(ValueError, match="AUTO_SYNC_ENABLED"):
        _tick(2)


def test_schedule_and_sensor_skip_saying_what_to_set_when_odoo_is_not_configured(monkeypatch):
    monkeypatch.delenv("ODOO_URL")
    monkeypatch.delenv("ODOO_API_KEY")
    assert _tick(2).skip_message == "Odoo is not configured: set ODOO_URL, ODOO_API_KEY"
    resources = {"odoo": OdooResource(), "warehouse": WarehouseResource()}
    with instance_for_test() as instance:
        skipped = odoo_changes_sensor(build_sensor_context(cursor=None, instance=instance, resources=resources))
    assert isinstance(skipped, SkipReason)
    assert skipped.skip_message == "Odoo is not configured: set ODOO_URL, ODOO_API_KEY"
