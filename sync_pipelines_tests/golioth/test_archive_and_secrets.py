"""golioth_archive_job, golioth_webhook_sensor through Dagster, and no secret in clear anywhere."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, build_sensor_context

from sync_pipelines.definitions import defs
from sync_pipelines.golioth.receiver import create_app
from sync_pipelines.golioth.sensors import golioth_webhook_sensor
from sync_pipelines.golioth.sync import store_points
from sync_pipelines.warehouse import WarehouseResource, utcnow
from sync_pipelines_tests.golioth.conftest import TOKEN, Receiver, failure_text

pytestmark = pytest.mark.timeout(300)


def _points(warehouse, ages_days: list[float]) -> None:
    now = utcnow()
    rows = [{"device_id": f"d{i % 3}", "ts": (now - dt.timedelta(days=age)).replace(microsecond=0), "path": "env",
             "payload": {"i": i}, "received_via": "pull", "integration_id": "acme", "project_id": "p",
             "received_at": now} for i, age in enumerate(ages_days)]
    with warehouse.transaction() as tx:
        store_points(tx, rows)


def _archive(run_config=None):
    job = defs.resolve_job_def("golioth_archive_job")
    return job.execute_in_process(run_config=run_config or {}, instance=DagsterInstance.ephemeral())


def test_archive_moves_points_past_the_retention_once_in_bounded_batches(warehouse, monkeypatch):
    _points(warehouse, [1, 10, 89, 91, 100, 200, 365, 400])
    result = _archive({"ops": {"golioth_archive_telemetry": {"config": {"batch_size": 2}}}})
    assert result.success, failure_text(result)
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    meta = output.event_specific_data.metadata
    assert meta["moved"].value == 5 and meta["batches"].value == 3 and meta["retention_days"].value == 90
    assert warehouse.count("device_telemetry_history") == 3
    assert warehouse.count("device_telemetry_history_archive") == 5
    assert _archive().success  # idempotent: nothing left to move
    assert warehouse.count("device_telemetry_history_archive") == 5
    monkeypatch.setenv("GOLIOTH_TELEMETRY_RETENTION_DAYS", "5")
    assert _archive().success
    assert warehouse.count("device_telemetry_history") == 1


def test_webhook_sensor_drains_the_inbox_idempotently_and_records_it(golioth, database_url):
    golioth.add("acme")
    with Receiver(create_app(token=TOKEN, database_url=database_url)) as receiver:
        golioth.control("webhook", url=receiver.url, token=TOKEN, redeliver_rate=0.5, seed=2)
        golioth.control("emit", count=5, devices=4)
        points = {p for m in golioth.vendor.outbox for p in m.points()}
        golioth.control("deliver")
    context = build_sensor_context(resources={"warehouse": WarehouseResource()}, instance=DagsterInstance.ephemeral())
    data = golioth_webhook_sensor.evaluate_tick(context)
    [event] = data.asset_events
    assert event.metadata["points_inserted"].value == len(points) and event.metadata["duplicates_dropped"].value > 0
    assert len(golioth.rows("received_via = 'push'")) == len(points)
    again = golioth_webhook_sensor.evaluate_tick(context)
    assert again.skip_message == "golioth webhook inbox is empty" and not again.asset_events


def test_no_api_key_or_webhook_token_in_any_table_log_metadata_or_event(golioth, database_url, monkeypatch, capfd):
    key = golioth.vendor.keys["sandbox-project"]
    golioth.add("acme")
    run = golioth.sync()
    with Receiver(create_app(token=TOKEN, database_url=database_url)) as receiver:
        golioth.control("webhook", url=receiver.url, token=TOKEN)
        golioth.control("emit", count=1, devices=2)
        golioth.control("deliver")
        import requests

        requests.post(receiver.url, data=b"{}", headers={"Authorization": f"Bearer {TOKEN}x"}, timeout=10)
    golioth.control("revoke_key", project="sandbox-project")
    failed = golioth.sync(raise_on_error=False)
    texts = [str(e) for r in (run, failed) for e in r.all_events]
    texts += [failure_text(failed)]
    with golioth.warehouse.engine.connect() as conn:
        for table in sa.inspect(golioth.warehouse.engine).get_table_names():
            texts += [str(tuple(r)) for r in conn.execute(sa.text(f'SELECT * FROM "{table}"'))]
    out, err = capfd.readouterr()
    texts += [out, err]
    for secret in (key, TOKEN):
        assert not any(secret in text for text in texts), secret
