"""Live pull, push + pull identity, gap filling, backfills, missing keys (SQLite and Postgres)."""

from __future__ import annotations

import datetime as dt

import pytest

from sync_pipelines.golioth import integrations as store
from sync_pipelines.golioth.models import normalize_ts
from sync_pipelines.golioth.receiver import create_app
from sync_pipelines.golioth.sync import cursor_entity, drain_inbox
from sync_pipelines.warehouse import utcnow
from sync_pipelines_tests.golioth.conftest import KEY_ENV_2, PROJECT, PROJECT_2, TOKEN, Receiver, failure_text

pytestmark = pytest.mark.timeout(300)


def test_live_pull_lands_devices_and_the_last_day_once_then_only_the_overlap(golioth):
    golioth.add("acme")
    first = golioth.sync()
    assert first.success
    [meta] = [m for m in first.asset_materializations_for_node("golioth_live_pull")
              if m.asset_key.path[-1] == "golioth_telemetry_live"]
    values = {k: v.value for k, v in meta.metadata.items()}
    # the first pull reads the last day (its start is a moment before this `since`)
    since, until = utcnow() - dt.timedelta(days=1), utcnow() - dt.timedelta(minutes=2)
    expected = golioth.sandbox_keys(since=since, until=until)
    assert golioth.keys() >= expected and len(golioth.keys()) == len(golioth.rows())
    assert values["devices_seen"] == 20 and values["devices_online"] == 20
    assert values["points_inserted"] == len(golioth.rows()) and values["duplicates_dropped"] == 0
    assert 0 <= values["newest_point_lag_seconds"] < 3600
    assert {r["received_via"] for r in golioth.rows()} == {"pull"}
    with golioth.warehouse.engine.connect() as conn:
        devices = conn.exec_driver_sql("SELECT device_id, status, online, firmware_version, last_seen FROM golioth_devices").all()
    assert len(devices) == 20 and {d.status for d in devices} == {"-"} and {d.firmware_version for d in devices} == {"1.0.0"}
    assert all(d.last_seen is not None for d in devices)

    # new points arrive; the next pull reads from the cursor minus the overlap only
    before = golioth.sandbox_keys()
    golioth.control("emit", count=3, devices=4)
    second = golioth.sync()
    new = golioth.sandbox_keys() - before
    [meta] = [m for m in second.asset_materializations_for_node("golioth_live_pull")
              if m.asset_key.path[-1] == "golioth_telemetry_live"]
    values = {k: v.value for k, v in meta.metadata.items()}
    assert len(new) >= 12 and values["points_inserted"] == len(new)
    assert values["points_pulled"] < 200  # the overlap, not the day again
    assert golioth.keys() >= golioth.sandbox_keys(since=since, until=until)


def test_a_point_pushed_redelivered_and_pulled_is_one_row_first_route_kept(golioth, database_url):
    golioth.add("acme")
    golioth.sync()  # the cursor is set; the history is in
    with Receiver(create_app(token=TOKEN, database_url=database_url)) as receiver:
        golioth.control("webhook", url=receiver.url, token=TOKEN, redeliver_rate=1.0)
        golioth.control("emit", count=2, devices=3)
        messages = list(golioth.vendor.outbox)
        points = {p for m in messages for p in m.points()}
        delivery = golioth.control("deliver")
        assert delivery["sent"] == 2 * len(messages) and delivery["failed"] == 0  # each message twice
        report = drain_inbox(golioth.warehouse)
        assert report.points_inserted == len(points) and report.duplicates == len(points)
        again = golioth.control("deliver")  # nothing queued
        assert again["sent"] == 0
    pushed = golioth.rows("received_via = 'push'")
    assert len(pushed) == len(points)
    result = golioth.sync()
    assert result.success
    rows = golioth.rows()
    assert len(rows) == len(golioth.keys())  # one row per point
    assert len(golioth.rows("received_via = 'push'")) == len(points)  # pulled later, still the push row
    assert golioth.keys() >= {(r["device_id"], r["ts"] if r["ts"].tzinfo else r["ts"].replace(tzinfo=dt.timezone.utc),
                               r["path"]) for r in pushed}


def test_the_next_pull_fills_every_gap_the_webhook_dropped(golioth, database_url):
    golioth.add("acme")
    golioth.sync()
    with Receiver(create_app(token=TOKEN, database_url=database_url)) as receiver:
        golioth.control("webhook", url=receiver.url, token=TOKEN, drop_rate=0.3, reorder=True, workers=4, seed=3)
        golioth.control("emit", count=10, devices=20)
        golioth.control("deliver")
        drain_inbox(golioth.warehouse)
    dropped = {(d, normalize_ts(t), p) for m in golioth.vendor.dropped for d, t, p in m.points()}
    delivered = {(d, normalize_ts(t), p) for m in golioth.vendor.messages_sent for d, t, p in m.points()}
    assert len(golioth.vendor.dropped) > 20
    assert not dropped & golioth.keys() and delivered <= golioth.keys()  # the push missed exactly those
    golioth.sync()
    assert dropped | delivered <= golioth.keys()
    assert len(golioth.rows()) == len(golioth.keys())


def test_backfill_of_7_days_x_2_integrations_is_one_run_landing_every_point_once_leaving_the_cursors(
        golioth, warehouse, database_url):
    golioth.add("acme")
    golioth.add("second", project=PROJECT_2, key_env=KEY_ENV_2)
    golioth.sync()
    cursors = {i: warehouse.get_cursor("golioth", cursor_entity(i)) for i in ("acme", "second")}
    today = utcnow().date()
    start, end = today - dt.timedelta(days=7), today - dt.timedelta(days=1)
    window_start = dt.datetime.combine(start, dt.time(), dt.timezone.utc)
    window_end = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    # one run over the range start|acme ... end|second: what the CLI backfill launches
    result = golioth.backfill(start.isoformat(), end.isoformat())
    assert result.success, failure_text(result)
    materializations = result.asset_materializations_for_node("golioth_telemetry")
    assert len(materializations) == 14  # one per partition: 7 days x 2 integrations
    expected = (golioth.sandbox_keys(since=window_start, until=window_end)
                | golioth.sandbox_keys(PROJECT_2, since=window_start, until=window_end))
    assert len(expected) > 5000
    assert expected <= golioth.keys()
    assert len(golioth.rows()) == len(golioth.keys())
    assert materializations[0].metadata["integrations"].value == 2
    assert {i: warehouse.get_cursor("golioth", cursor_entity(i)) for i in ("acme", "second")} == cursors
    before = _tuples(warehouse, database_url)
    assert before is None or before[0] >= len(expected)  # the counters do see the first backfill
    count = len(golioth.rows())
    again = golioth.backfill(start.isoformat(), end.isoformat())
    assert again.success
    m = again.asset_materializations_for_node("golioth_telemetry")[0]  # one per partition, same counts
    assert m.metadata["points_inserted"].value == 0 and m.metadata["duplicates_dropped"].value >= len(expected)
    assert len(golioth.rows()) == count
    assert _tuples(warehouse, database_url) == before  # Postgres: no tuple inserted or updated
    assert {i: warehouse.get_cursor("golioth", cursor_entity(i)) for i in ("acme", "second")} == cursors


def _tuples(warehouse, database_url):
    """Postgres' (n_tup_ins, n_tup_upd) of the telemetry table once its counters are still."""
    if not database_url.startswith("postgresql"):
        return None
    from sync_pipelines_tests.foundation.test_warehouse_postgres import _stat_updates

    return _stat_updates(warehouse, "device_telemetry_history")


def test_a_missing_key_variable_fails_its_integration_and_the_others_sync(golioth, monkeypatch):
    golioth.add("acme")
    golioth.add("second", project=PROJECT_2, key_env=KEY_ENV_2)
    monkeypatch.delenv(KEY_ENV_2)
    result = golioth.sync(raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert KEY_ENV_2 in text and "second" in text
    assert golioth.rows("integration_id = 'acme'")
    assert not golioth.rows("integration_id = 'second'")
    assert store.get(golioth.warehouse, "second").last_error.count(KEY_ENV_2) == 1
    assert store.get(golioth.warehouse, "acme").last_error is None
    # its own run (as the schedule requests it) fails alone, naming the variable
    alone = golioth.sync(["second"], raise_on_error=False)
    assert not alone.success and KEY_ENV_2 in failure_text(alone)


def test_a_refused_key_names_the_variable_and_project_never_the_key(golioth):
    golioth.add("acme")
    key = golioth.vendor.keys[PROJECT]
    golioth.control("revoke_key", project=PROJECT)
    result = golioth.sync(raise_on_error=False)
    text = failure_text(result)
    assert not result.success
    assert "API key in $GOLIOTH_SANDBOX_API_KEY refused for project sandbox-project" in text
    assert key not in text


def test_with_no_integration_the_job_does_nothing_and_succeeds(golioth):
    result = golioth.sync()
    assert result.success and golioth.rows() == []


def test_devices_follow_firmware_updates_disabling_deletion_and_filters(golioth):
    golioth.add("acme", device_filter={"tags": ["outdoor"]})
    ids = sorted(d.id for d in golioth.vendor.devices[PROJECT].values() if "outdoor" in d.tags)
    golioth.sync()
    golioth.control("firmware", device=ids[0], version="2.1.0")
    golioth.control("disable", device=ids[1])
    golioth.control("delete", device=ids[2])
    changes = golioth.sandbox.evolve(3)["golioth"]  # the world moves on: reports, offline devices, firmware
    assert all("reports" in c for c in changes)
    result = golioth.sync()
    assert result.success
    table = golioth.warehouse.table("golioth_devices")
    with golioth.warehouse.engine.connect() as conn:
        rows = {r.device_id: r for r in conn.execute(table.select())}
    assert set(rows) == set(ids)  # the filter: outdoor devices only
    assert rows[ids[0]].firmware_version == "2.1.0"
    assert rows[ids[1]].enabled is False or rows[ids[1]].enabled == 0
    assert rows[ids[2]].deleted_at is not None and not rows[ids[2]].online
    assert all(r.deleted_at is None for i, r in rows.items() if i != ids[2])


def test_vendor_faults_are_retried_by_the_shared_http_layer_and_malformed_pages_fail_clearly(golioth):
    golioth.add("acme")
    golioth.sandbox.faults.add("status", vendor="golioth", status=503, retry_after=0, times=2, path="/stream")
    golioth.sandbox.faults.add("status", vendor="golioth", status=429, retry_after=0, times=1, path="/devices$")
    result = golioth.sync()
    assert result.success and golioth.rows()
    golioth.sandbox.faults.add("malformed", vendor="golioth", times=1, path="/devices$")
    broken = golioth.sync(raise_on_error=False)
    assert not broken.success and "malformed JSON body" in failure_text(broken)


def test_a_device_deleted_between_the_list_and_its_stream_is_skipped(golioth):
    golioth.add("acme")
    device = sorted(golioth.vendor.devices[PROJECT])[0]
    golioth.sandbox.faults.add("status", vendor="golioth", status=404, times=1, path=f"/devices/{device}/stream")
    result = golioth.sync()
    assert result.success
    assert golioth.rows() and not golioth.rows("device_id = :d", {"d": device})


def test_backfill_and_live_pull_share_the_golioth_pool_and_rate_limiter(golioth):
    from sync_pipelines.golioth.assets import golioth_live_pull, golioth_telemetry
    from sync_pipelines.golioth.client import GoliothClient

    assert golioth_live_pull.op.pool == golioth_telemetry.op.pool == "golioth"
    first = GoliothClient(project_id="a", api_key="k" * 20, api_key_env="A")
    second = GoliothClient(project_id="b", api_key="q" * 20, api_key_env="B")
    assert first.http.limiter is second.http.limiter


def test_a_vendor_outage_past_the_http_retries_retries_the_step(golioth):
    golioth.add("acme")
    # the HTTP layer's 6 attempts all get 503: the step fails transiently, is retried, then syncs
    golioth.sandbox.faults.add("status", vendor="golioth", status=503, retry_after=0, times=6, path="/devices$")
    result = golioth.sync()
    assert result.success and golioth.rows()
    assert any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)


def _live_meta(result) -> dict:
    [meta] = [m for m in result.asset_materializations_for_node("golioth_live_pull")
              if m.asset_key.path[-1] == "golioth_telemetry_live"]
    return {k: v.value for k, v in meta.metadata.items()}


def test_a_record_spoiled_once_is_healed_by_the_next_pull_one_always_spoiled_stays_open(golioth):
    golioth.add("acme")
    healed, spoiled = sorted(golioth.vendor.devices[PROJECT])[:2]
    since = utcnow() - dt.timedelta(days=1) + dt.timedelta(minutes=1)
    for device, times in ((healed, 1), (spoiled, None)):  # the first record of the answer(s): time unreadable
        golioth.sandbox.faults.add("wrong_type", vendor="golioth", field="time", times=times,
                                   path=f"/devices/{device}/stream$")
    assert golioth.sync().success
    first = {r["record_key"] for r in golioth.warehouse.rejects("golioth", "telemetry")}
    [once] = [k for k in first if k.startswith(f"{healed}@")]
    assert "not-a-number after" in once and any(k.startswith(f"{spoiled}@") for k in first)

    # the cursor moved past them; the next pull reads each reject's window again, not the day
    meta = _live_meta(golioth.sync())
    assert meta["rejects_reread"] == len(first) and meta["rejects_resolved"] == 1
    assert meta["points_pulled"] < 300
    still = {r["record_key"] for r in golioth.warehouse.rejects("golioth", "telemetry")}
    assert once not in still and first - {once} <= still  # the always-spoiled ones stay open
    landed = {k for k in golioth.keys() if k[0] == healed}
    assert landed >= {k for k in golioth.sandbox_keys(since=since) if k[0] == healed}


def test_the_live_cursor_is_the_newest_point_seen_and_a_pull_finding_nothing_new_writes_none(golioth, warehouse):
    golioth.add("acme")
    started = utcnow()
    golioth.sync()
    cursor = dt.datetime.fromisoformat(warehouse.get_cursor("golioth", cursor_entity("acme")))
    newest = max(ts if ts.tzinfo else ts.replace(tzinfo=dt.timezone.utc) for _, ts, _ in golioth.keys())
    assert cursor == newest or newest > cursor >= started  # (a clock ahead: capped at the pull's start)
    with warehouse.engine.connect() as conn:
        synced_before = conn.exec_driver_sql("SELECT synced_at FROM sync_state WHERE source = 'golioth'").scalar_one()
    assert golioth.sync().success  # nothing new: the cursor row is not written
    with warehouse.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT synced_at FROM sync_state WHERE source = 'golioth'").scalar_one() == synced_before
    assert warehouse.get_cursor("golioth", cursor_entity("acme")) == cursor.isoformat()
    golioth.control("emit", count=2, devices=2)  # new points: the bookmark follows them
    golioth.sync()
    moved = dt.datetime.fromisoformat(warehouse.get_cursor("golioth", cursor_entity("acme")))
    assert cursor < moved <= utcnow()
