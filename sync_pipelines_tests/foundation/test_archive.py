"""The shared archive move: copy then delete, a whole run in one transaction, idempotent, nothing lost."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from sync_pipelines.archive import archive_rows, parse_as_of
from sync_pipelines.warehouse import Warehouse
from sync_pipelines.warehouse.types import Timestamp

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)


@pytest.fixture
def tables(warehouse: Warehouse) -> Warehouse:
    meta = sa.MetaData()
    cols = lambda: [  # noqa: E731
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(16)),
        sa.Column("ended_at", Timestamp),
        sa.Column("synced_at", Timestamp, nullable=False),
    ]
    for name in ("things", "more_things"):  # two tables, as Odoo moves orders and their lines
        sa.Table(name, meta, *cols())
        sa.Table(f"{name}_archive", meta, *cols(), sa.Column("archived_at", Timestamp, nullable=False))
    meta.create_all(warehouse.engine)
    rows = [
        {"id": i, "status": "ended" if i % 2 else "live", "ended_at": NOW - dt.timedelta(days=i) if i % 2 else None}
        for i in range(1, 21)
    ]
    warehouse.upsert("things", rows)
    warehouse.upsert("more_things", rows)
    return warehouse


def old_ended(days: int):
    return lambda t: sa.and_(t.c.status == "ended", t.c.ended_at < NOW - dt.timedelta(days=days))


MOVED_IDS = {i for i in range(1, 21) if i % 2 and i > 7}  # ended more than 7 days ago: 9, 11, ... 19


def archive(wh: Warehouse, **options):
    """One archive run: one transaction."""
    with wh.transaction() as tx:
        return archive_rows(tx, table="things", archive_table="things_archive", where=old_ended(7), **options)


def ids_in(wh: Warehouse, table: str) -> list[int]:
    with wh.engine.connect() as conn:
        return sorted(r.id for r in conn.execute(sa.text(f"SELECT id FROM {table}")))


def recreate_archive(wh: Warehouse, check: str | None) -> None:
    with wh.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE things_archive"))
        conn.execute(
            sa.text("CREATE TABLE things_archive (id INTEGER PRIMARY KEY, status VARCHAR(16), "
                    "ended_at TIMESTAMP, synced_at TIMESTAMP NOT NULL, archived_at TIMESTAMP NOT NULL"
                    + (f", CHECK ({check})" if check else "") + ")")
        )
    wh._tables.clear()


def test_moves_exactly_the_rows_past_retention_and_is_idempotent(tables: Warehouse):
    result = archive(tables, batch_size=3)
    assert result.moved == len(MOVED_IDS) and result.batches == 2
    assert set(ids_in(tables, "things_archive")) == MOVED_IDS
    assert set(ids_in(tables, "things")) == set(range(1, 21)) - MOVED_IDS
    again = archive(tables)
    assert again.moved == 0


def test_a_failure_mid_batch_loses_and_duplicates_nothing(tables: Warehouse):
    """Break the archive table's insert: the run rolls back and every row stays live."""
    recreate_archive(tables, "id < 0")
    with pytest.raises(sa.exc.IntegrityError):
        archive(tables)
    assert tables.count("things") == 20
    assert tables.count("things_archive") == 0


def test_a_failure_after_the_first_batch_rolls_the_whole_run_back(tables: Warehouse):
    """Batches of 3: the first (9, 11, 13) copies and deletes fine, the second (15, ...)
    breaks the archive's CHECK. Everything rolls back: nothing moved, nothing duplicated;
    once the archive is fixed, a re-run moves every row exactly once."""
    recreate_archive(tables, "id < 15")
    with pytest.raises(sa.exc.IntegrityError):
        archive(tables, batch_size=3)
    assert ids_in(tables, "things") == list(range(1, 21))
    assert ids_in(tables, "things_archive") == []

    recreate_archive(tables, None)
    result = archive(tables, batch_size=3)
    assert result.moved == len(MOVED_IDS) and result.batches == 2
    assert ids_in(tables, "things_archive") == sorted(MOVED_IDS)
    assert ids_in(tables, "things") == sorted(set(range(1, 21)) - MOVED_IDS)


def test_a_crash_in_the_caller_after_a_batch_rolls_back_every_table_of_the_run(tables: Warehouse):
    """The caller's transaction holds the whole run: two tables moved in it (as Odoo moves
    orders and their lines) and a crash after the first batch of the second leaves both
    tables as they were."""
    calls = []

    def ended_then_crash(t: sa.Table):
        calls.append(t.name)
        if len(calls) == 4:  # 2 selects for "things" (a batch, then empty), 1 batch of the second
            raise RuntimeError("worker killed")
        return old_ended(7)(t)

    with pytest.raises(RuntimeError, match="worker killed"):
        with tables.transaction() as tx:
            first = archive_rows(tx, table="things", archive_table="things_archive", where=ended_then_crash,
                                 batch_size=100)
            assert first.moved == len(MOVED_IDS)
            archive_rows(tx, table="more_things", archive_table="more_things_archive", where=ended_then_crash,
                         batch_size=3)
    assert calls == ["things", "things", "more_things", "more_things"]
    assert ids_in(tables, "things") == ids_in(tables, "more_things") == list(range(1, 21))
    assert ids_in(tables, "things_archive") == ids_in(tables, "more_things_archive") == []


def test_as_of_is_read_as_utc_whatever_zone_it_names():
    # SQLite compares timestamps as text, so an as_of kept at +09:00 would be
    # compared against stored UTC values by string: it must come back in UTC.
    kst = parse_as_of("2026-11-24T09:00:00+09:00")
    assert kst == dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)
    assert kst.utcoffset() == dt.timedelta(0)
    assert parse_as_of("2026-11-24") == dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)
    with pytest.raises(ValueError, match="as_of must be an ISO date"):
        parse_as_of("next tuesday")
