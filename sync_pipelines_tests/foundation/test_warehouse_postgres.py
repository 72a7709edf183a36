"""Postgres-specific promises of the warehouse: no-op re-upserts and clear outage errors."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

import pytest
import sqlalchemy as sa

from sync_pipelines.warehouse import Warehouse, WarehouseUnavailableError

pytestmark = pytest.mark.postgres

ROWS = 50_000


def _stat_updates(warehouse: Warehouse, table: str, expect: int | None = None) -> tuple[int, int]:
    """(n_tup_ins, n_tup_upd) of ``table`` once every write so far is counted.

    Postgres backends report their counts asynchronously (at most once a second, or when
    they exit). So the warehouse's pooled connections are closed first (their backends
    flush as they exit), then the view is read until it holds ``expect`` updates or stays
    the same for a second.
    """
    warehouse.engine.dispose()
    deadline = time.monotonic() + 15
    last = None
    stable_since = time.monotonic()
    while True:
        with warehouse.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            row = conn.execute(
                sa.text("SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relname = :t"), {"t": table}
            ).one()
        warehouse.engine.dispose()
        current = (int(row.n_tup_ins), int(row.n_tup_upd))
        if current != last:
            last, stable_since = current, time.monotonic()
        if expect is not None and current[1] == expect:
            return current
        if expect is None and time.monotonic() - stable_since >= 1.5:
            return current
        if time.monotonic() > deadline:
            return current
        time.sleep(0.25)


def test_50k_rows_again_are_all_unchanged_and_n_tup_upd_does_not_move(pg_url: str):
    warehouse = Warehouse.for_url(pg_url)
    with warehouse.engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE bench_items (id bigint PRIMARY KEY, name text, price numeric(18,2), "
                "payload jsonb, updated_at timestamptz, synced_at timestamptz NOT NULL)"
            )
        )
    rows = [
        {"id": i, "name": f"item {i}", "price": i / 4, "payload": {"i": i, "tags": ["a", "b"]},
         "updated_at": "2026-01-01T00:00:00+00:00"}
        for i in range(ROWS)
    ]
    first = warehouse.upsert("bench_items", rows)
    assert (first.inserted, first.updated, first.unchanged) == (ROWS, 0, 0)
    _, updates_before = _stat_updates(warehouse, "bench_items")

    second = warehouse.upsert("bench_items", rows)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, ROWS)
    _, updates_after = _stat_updates(warehouse, "bench_items")
    assert updates_after == updates_before

    rows[7]["name"] = "changed"
    third = warehouse.upsert("bench_items", rows)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, ROWS - 1)
    assert _stat_updates(warehouse, "bench_items", expect=updates_before + 1)[1] == updates_before + 1
    warehouse.dispose()


def test_database_outage_is_a_clear_redacted_error():
    # Nothing listens on port 1: the error must say which database (no password) and why.
    warehouse = Warehouse("postgresql://sync:hunter2secret@127.0.0.1:1/sync")
    with pytest.raises(WarehouseUnavailableError) as err:
        warehouse.migrate()
    message = str(err.value)
    assert "127.0.0.1:1/sync" in message and "unavailable while migrating" in message
    assert "hunter2secret" not in message
    warehouse.dispose()


def test_server_restart_mid_run_recovers_on_next_transaction(pg_url: str):
    """pool_pre_ping: connections killed by a restart are replaced, not reused."""
    warehouse = Warehouse.for_url(pg_url)
    with warehouse.transaction() as tx:
        tx.set_cursor("s", "e", 1)
    with warehouse.engine.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    with warehouse.transaction() as tx:
        tx.set_cursor("s", "e", 2)
    assert warehouse.get_cursor("s", "e") == 2
    warehouse.dispose()


def test_small_batches_again_write_nothing_at_all(pg_url: str):
    """A batch under SMALL_BATCH_ROWS merges in one statement: unchanged, it neither updates
    nor locks a row, so its transaction never gets an id (nothing to commit to the WAL)."""
    warehouse = Warehouse.for_url(pg_url)
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE small_items (id bigint PRIMARY KEY, name varchar(20), "
                             "price numeric(18,2), payload jsonb, synced_at timestamptz NOT NULL)"))
    rows = [{"id": i, "name": f"item {i}", "price": i / 3, "payload": {"i": i}} for i in range(300)]
    assert warehouse.upsert("small_items", rows, batch_size=100).inserted == 300
    _, updates_before = _stat_updates(warehouse, "small_items")
    with warehouse.transaction() as tx:
        for start in range(0, 300, 100):
            assert tx.upsert("small_items", rows[start:start + 100]).unchanged == 100
        assert tx.execute("SELECT txid_current_if_assigned()").scalar() is None
    assert _stat_updates(warehouse, "small_items")[1] == updates_before
    rows[5]["payload"] = {"i": "changed"}
    with warehouse.transaction() as tx:
        counts = tx.upsert("small_items", rows[:100])
    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 1, 99)
    assert _stat_updates(warehouse, "small_items", expect=updates_before + 1)[1] == updates_before + 1
    warehouse.dispose()


def _points_table(warehouse: Warehouse) -> None:
    """A keyed append-only table whose INSERT statements (a COPY's too) are logged by a trigger."""
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE points (device text, ts timestamptz, path text, value int, "
                             "synced_at timestamptz NOT NULL, PRIMARY KEY (device, ts, path))"))
        conn.execute(sa.text("CREATE TABLE statements (query text)"))
        conn.execute(sa.text(
            "CREATE FUNCTION log_statement() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO statements VALUES (current_query()); RETURN NULL; END $$"))
        conn.execute(sa.text("CREATE TRIGGER log_inserts BEFORE INSERT ON points "
                             "FOR EACH STATEMENT EXECUTE FUNCTION log_statement()"))


def _points(device: str, start: int, count: int, value: int = 0) -> list[dict]:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    return [{"device": device, "ts": base + dt.timedelta(seconds=s), "path": "temp", "value": value}
            for s in range(start, start + count)]


def _statements(warehouse: Warehouse) -> list[str]:
    with warehouse.engine.begin() as conn:
        found = [q.split()[0] for q in conn.execute(sa.text("SELECT query FROM statements")).scalars()]
        conn.execute(sa.text("DELETE FROM statements"))
    return found


INSERT_ONLY = {"insert_only": ("value",)}


def test_a_batch_of_new_keys_is_copied_straight_in_and_known_keys_go_through_the_merge(pg_url: str):
    """Batches whose key range the table does not hold skip the stage and the lookups; any
    overlap takes the merge, which counts and skips (or updates) the stored keys."""
    warehouse = Warehouse.for_url(pg_url)
    _points_table(warehouse)
    first = warehouse.upsert("points", _points("d1", 0, 1000), **INSERT_ONLY)
    assert (first.inserted, first.updated, first.unchanged) == (1000, 0, 0)
    assert _statements(warehouse) == ["COPY"]

    again = warehouse.upsert("points", _points("d1", 0, 1000, value=9), **INSERT_ONLY)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 1000)
    overlapping = warehouse.upsert("points", _points("d1", 900, 1000), **INSERT_ONLY)
    assert (overlapping.inserted, overlapping.unchanged) == (900, 100)
    assert _statements(warehouse) == ["WITH", "WITH"]

    other_device = warehouse.upsert("points", _points("d2", 0, 1000), **INSERT_ONLY)
    assert other_device.inserted == 1000 and _statements(warehouse) == ["COPY"]
    # Rows that may change (a column to compare): new keys go straight in alike, and a batch
    # touching stored keys merges, updating the changed ones.
    fresh = warehouse.upsert("points", _points("d3", 0, 1000))
    changed = warehouse.upsert("points", _points("d3", 500, 1000, value=1))
    assert (fresh.inserted, changed.inserted, changed.updated) == (1000, 500, 500)
    assert _statements(warehouse) == ["COPY", "WITH"]
    with warehouse.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*), sum(value) FROM points")).one() == (4400, 1000)
    warehouse.dispose()


def test_a_key_written_concurrently_after_the_range_check_falls_back_to_the_merge(pg_url: str):
    """Another writer's uncommitted row is not seen by the range check; the COPY then waits
    for it and fails on its key once it commits: rolled back to the savepoint, the batch merges."""
    warehouse = Warehouse.for_url(pg_url)
    _points_table(warehouse)
    other = sa.create_engine(pg_url)
    inserted, committed = threading.Event(), threading.Event()

    def other_writer():
        with other.begin() as conn:
            conn.execute(sa.text("INSERT INTO points VALUES ('d1', '2026-01-01T00:08:20+00', 'temp', 7, now())"))
            inserted.set()
            time.sleep(1.0)
        committed.set()

    writer = threading.Thread(target=other_writer)
    writer.start()
    assert inserted.wait(10)
    counts = warehouse.upsert("points", _points("d1", 0, 1000), **INSERT_ONLY)
    writer.join()
    assert committed.is_set()
    assert (counts.inserted, counts.unchanged) == (999, 1)
    # The COPY's trigger row went with its savepoint; Postgres counts its attempted rows.
    assert _statements(warehouse) == ["INSERT", "WITH"]
    assert _stat_updates(warehouse, "points")[0] >= 1 + 500 + 999
    with warehouse.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*), sum(value) FROM points")).one() == (1000, 7)
    other.dispose()
    warehouse.dispose()


def test_a_table_filled_from_empty_is_analyzed_once_so_lookups_are_planned_for_what_they_match(pg_url: str):
    """Never analyzed, Postgres takes `name = ANY(...)` for most of the table (a scan per
    batch that grows with the load); analyzed after its first committed batch, and only then."""
    warehouse = Warehouse.for_url(pg_url)
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE named_items (id bigint PRIMARY KEY, name text, synced_at timestamptz)"))
        conn.execute(sa.text("CREATE INDEX ix_named_items_name ON named_items (name)"))

    def reltuples() -> float:
        with warehouse.engine.connect() as conn:
            return conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE relname = 'named_items'")).scalar()

    assert reltuples() < 0
    for batch in range(20):
        with warehouse.transaction() as tx:
            tx.upsert("named_items", [{"id": i, "name": f"n{i}"} for i in range(batch * 1000, batch * 1000 + 1000)])
        assert reltuples() == 1000  # analyzed after the first batch, never again
    with warehouse.engine.connect() as conn:
        plan = conn.execute(sa.text("EXPLAIN SELECT id FROM named_items WHERE name = ANY(:names)"),
                            {"names": [f"n{i}" for i in range(5000, 5800)]}).scalars().all()
    estimate = int(re.search(r"rows=(\d+)", plan[0])[1])
    assert estimate < 2000, plan  # about the 800 names asked for (unanalyzed: the whole table)
    warehouse.dispose()
