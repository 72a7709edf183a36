"""The shared archive move: copy then delete in one transaction, idempotent, nothing lost."""

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
    sa.Table("things", meta, *cols())
    sa.Table("things_archive", meta, *cols(), sa.Column("archived_at", Timestamp, nullable=False))
    meta.create_all(warehouse.engine)
    rows = [
        {"id": i, "status": "ended" if i % 2 else "live", "ended_at": NOW - dt.timedelta(days=i) if i % 2 else None}
        for i in range(1, 21)
    ]
    warehouse.upsert("things", rows)
    return warehouse


def old_ended(days: int):
    return lambda t: sa.and_(t.c.status == "ended", t.c.ended_at < NOW - dt.timedelta(days=days))


def test_moves_exactly_the_rows_past_retention_and_is_idempotent(tables: Warehouse):
    result = archive_rows(tables, table="things", archive_table="things_archive", where=old_ended(7), batch_size=3)
    moved_ids = {i for i in range(1, 21) if i % 2 and i > 7}
    assert result.moved == len(moved_ids) and result.batches == 2
    with tables.engine.connect() as conn:
        archived = {r.id for r in conn.execute(sa.text("SELECT id FROM things_archive"))}
        live = {r.id for r in conn.execute(sa.text("SELECT id FROM things"))}
    assert archived == moved_ids
    assert live == set(range(1, 21)) - moved_ids
    again = archive_rows(tables, table="things", archive_table="things_archive", where=old_ended(7))
    assert again.moved == 0


def test_a_failure_mid_batch_loses_and_duplicates_nothing(tables: Warehouse):
    """Break the archive table's insert: the batch rolls back and every row stays live."""
    with tables.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE things_archive"))
        conn.execute(
            sa.text("CREATE TABLE things_archive (id INTEGER PRIMARY KEY, status VARCHAR(16), "
                    "ended_at TIMESTAMP, synced_at TIMESTAMP NOT NULL, archived_at TIMESTAMP NOT NULL, "
                    "CHECK (id < 0))")
        )
    tables._tables.clear()
    with pytest.raises(sa.exc.IntegrityError):
        archive_rows(tables, table="things", archive_table="things_archive", where=old_ended(7))
    assert tables.count("things") == 20
    assert tables.count("things_archive") == 0


def test_as_of_is_read_as_utc_whatever_zone_it_names():
    # SQLite compares timestamps as text, so an as_of kept at +09:00 would be
    # compared against stored UTC values by string: it must come back in UTC.
    kst = parse_as_of("2026-11-24T09:00:00+09:00")
    assert kst == dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)
    assert kst.utcoffset() == dt.timedelta(0)
    assert parse_as_of("2026-11-24") == dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)
    with pytest.raises(ValueError, match="as_of must be an ISO date"):
        parse_as_of("next tuesday")
