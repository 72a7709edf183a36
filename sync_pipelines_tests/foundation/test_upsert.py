"""The bulk upsert helper on SQLite and Postgres: counts, no-op re-runs, transactions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from sync_pipelines.warehouse import Warehouse
from sync_pipelines.warehouse import upsert as upsert_module


@pytest.fixture(autouse=True, params=["one statement", "staged", "straight in"])
def postgres_merge(request, monkeypatch) -> str:
    """Every test with each Postgres path: small batches in one statement, larger ones staged,
    or, when their key range is free, COPYed straight into the table."""
    if request.param != "one statement":
        monkeypatch.setattr(upsert_module, "SMALL_BATCH_ROWS", 0)
    if request.param == "staged":
        monkeypatch.setattr(upsert_module, "_key_range_is_free", lambda *args: False)
    return request.param


@pytest.fixture
def items(warehouse: Warehouse) -> str:
    """A scratch table with the kinds of columns sources use."""
    from sync_pipelines.warehouse.types import JSONType, Money, Timestamp

    meta = sa.MetaData()
    sa.Table(
        "test_items",
        meta,
        sa.Column("source", sa.String(16), primary_key=True),
        sa.Column("source_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("price", Money),
        sa.Column("active", sa.Boolean),
        sa.Column("payload", JSONType),
        sa.Column("changed_at", Timestamp),
        sa.Column("first_seen_at", Timestamp),
        sa.Column("last_seen_at", Timestamp),
        sa.Column("synced_at", Timestamp, nullable=False),
    )
    meta.create_all(warehouse.engine)
    return "test_items"


def row(i: int, **over):
    base = {
        "source": "a",
        "source_id": str(i),
        "name": f"item {i}",
        "price": Decimal("10.50") + i,
        "active": i % 2 == 0,
        "payload": {"b": [1, 2], "a": "x", "n": None},
        "changed_at": dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))),
        "first_seen_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        "last_seen_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    }
    base.update(over)
    return base


def test_insert_update_unchanged_counts(warehouse: Warehouse, items: str):
    opts = {"insert_only": ("first_seen_at",), "compare_exclude": ("last_seen_at",)}
    with warehouse.transaction() as tx:
        counts = tx.upsert(items, [row(i) for i in range(10)], **opts)
    assert (counts.inserted, counts.updated, counts.unchanged) == (10, 0, 0)

    later = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
    changed = [row(i, last_seen_at=later, first_seen_at=later) for i in range(10)]
    changed[3]["name"] = "renamed"
    changed[4]["payload"] = {"a": "x", "b": [1, 2, 3], "n": None}
    changed[5]["price"] = None
    with warehouse.transaction() as tx:
        counts = tx.upsert(items, changed + [row(10)], **opts)
    assert (counts.inserted, counts.updated, counts.unchanged) == (1, 3, 7)

    with warehouse.engine.connect() as conn:
        rows = {r.source_id: r for r in conn.execute(sa.text("SELECT * FROM test_items"))}
    assert rows["3"].name == "renamed"
    assert rows["5"].price is None
    # insert_only column kept its first value; compare_exclude column written with the change only
    assert str(rows["3"].first_seen_at).startswith("2026-01-01")
    assert str(rows["3"].last_seen_at).startswith("2026-02-01")
    assert str(rows["2"].last_seen_at).startswith("2026-01-01")


def test_same_rows_again_change_nothing(warehouse: Warehouse, items: str):
    rows = [row(i) for i in range(500)]
    first = warehouse.upsert(items, rows, batch_size=200)
    assert first.inserted == 500
    with warehouse.engine.connect() as conn:
        stamps_before = dict(conn.execute(sa.text("SELECT source_id, synced_at FROM test_items")).all())
    again = warehouse.upsert(items, [row(i) for i in range(500)], batch_size=200)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 500)
    with warehouse.engine.connect() as conn:
        stamps_after = dict(conn.execute(sa.text("SELECT source_id, synced_at FROM test_items")).all())
    assert stamps_after == stamps_before  # nothing was written, not even synced_at


def test_duplicate_keys_in_one_batch_last_wins(warehouse: Warehouse, items: str):
    with warehouse.transaction() as tx:
        counts = tx.upsert(items, [row(1, name="first"), row(1, name="second")])
    assert counts.inserted == 1 and counts.total == 1
    with warehouse.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM test_items")).scalar_one() == "second"


def test_batch_rolls_back_with_its_cursor(warehouse: Warehouse, items: str):
    with pytest.raises(RuntimeError):
        with warehouse.transaction() as tx:
            tx.upsert(items, [row(1)])
            tx.set_cursor("test", "items", {"page": 1})
            raise RuntimeError("crash between batch and commit")
    assert warehouse.count(items) == 0
    assert warehouse.get_cursor("test", "items") is None

    with warehouse.transaction() as tx:
        tx.upsert(items, [row(1)])
        tx.set_cursor("test", "items", {"page": 1})
    assert warehouse.count(items) == 1
    assert warehouse.get_cursor("test", "items") == {"page": 1}


def test_unknown_column_and_missing_key_are_clear_errors(warehouse: Warehouse, items: str):
    with pytest.raises(ValueError, match="unknown column 'colour'"):
        with warehouse.transaction() as tx:
            tx.upsert(items, [row(1, colour="red")])
    with pytest.raises(ValueError, match="key column"):
        with warehouse.transaction() as tx:
            tx.upsert(items, [row(1, source_id=None)])


def test_rejects_are_idempotent_and_resolvable(warehouse: Warehouse):
    with warehouse.transaction() as tx:
        tx.reject("test", "items", 7, "price is not a number", {"price": "abc"})
        tx.reject("test", "items", 7, "price is not a number", {"price": "abc"})
        tx.reject("test", "items", 8, "token=supersecretvalue leaked", None)
    rejects = {r["record_key"]: r for r in warehouse.rejects("test", "items")}
    assert set(rejects) == {"7", "8"}
    assert rejects["7"]["payload"] == {"price": "abc"}
    assert "supersecretvalue" not in rejects["8"]["reason"]
    with warehouse.transaction() as tx:
        assert tx.resolve_rejects("test", "items", [7]) == 1
    assert [r["record_key"] for r in warehouse.rejects("test")] == ["8"]


def test_reject_payloads_of_any_json_shape_land_and_read_back_alike(warehouse: Warehouse):
    """A JSON column takes any document, scalars included, the same on SQLite and Postgres.

    Postgres' jsonb refuses NUL (``\\u0000``) and NaN: those are made storable (NUL dropped,
    NaN/Infinity as null) rather than aborting the batch the reject is part of.
    """
    payloads = {
        "str": ("not json at all", "not json at all"),
        "numeric-str": ("123", "123"),
        "number": (123, 123),
        "bool": (True, True),
        "list": ([1, "a", None], [1, "a", None]),
        "nul": ({"a": "x\x00y", "k\x00": ["\x00"]}, {"a": "xy", "k": [""]}),
        "nul-str": ("a\x00b", "ab"),
        "nan": ({"price": float("nan"), "inf": float("inf"), "ninf": float("-inf")},
                {"price": None, "inf": None, "ninf": None}),
        "bare-nan": (float("nan"), None),
        "none": (None, None),
    }
    with warehouse.transaction() as tx:
        for key, (payload, _) in payloads.items():
            tx.reject("test", "shapes", key, "bad record", payload)
    stored = {r["record_key"]: r["payload"] for r in warehouse.rejects("test", "shapes")}
    assert stored == {key: expected for key, (_, expected) in payloads.items()}
    assert isinstance(stored["numeric-str"], str)
    # None is SQL NULL on both dialects, not the JSON document null
    assert warehouse.count("sync_rejects", "payload IS NULL") == 1
    assert warehouse.count("sync_rejects", "payload IS NULL AND record_key = 'none'") == 1

    # the same payloads again are unchanged: the stored documents compare equal
    seen = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with warehouse.transaction() as tx:
        counts = tx.upsert(
            "sync_rejects",
            [
                {"source": "test", "entity": "shapes", "record_key": key, "reason": "bad record",
                 "payload": payload, "first_seen_at": seen, "last_seen_at": seen}
                for key, (payload, _) in payloads.items()
            ],
            insert_only=("first_seen_at",),
            compare_exclude=("last_seen_at",),
        )
    assert counts.unchanged == len(payloads)


def test_json_column_upsert_changes_only_when_the_document_does(warehouse: Warehouse, items: str):
    with warehouse.transaction() as tx:
        tx.upsert(items, [row(1, payload="123"), row(2, payload=None), row(3, payload={"v": float("nan")})])
    with warehouse.transaction() as tx:
        again = tx.upsert(items, [row(1, payload="123"), row(2, payload=None), row(3, payload={"v": None})])
        changed = tx.upsert(items, [row(1, payload=123)])
    assert again.unchanged == 3
    assert changed.updated == 1  # the number 123 is not the string "123"
    with warehouse.engine.connect() as conn:
        t = warehouse.table(items)
        got = dict(conn.execute(sa.select(t.c.source_id, t.c.payload)).all())
    assert got == {"1": 123, "2": None, "3": {"v": None}}


def test_values_compare_as_their_columns_store_them(warehouse: Warehouse, items: str):
    """A value the column rounds (numeric scale) is unchanged once stored; one longer than
    its varchar fails the batch (as COPY into the stage does), it is never cut."""
    with warehouse.transaction() as tx:
        assert tx.upsert(items, [row(1, price=Decimal("1.005")), row(2, price=0.1)]).inserted == 2
    with warehouse.transaction() as tx:
        assert tx.upsert(items, [row(1, price=Decimal("1.005")), row(2, price=0.1)]).unchanged == 2
    with warehouse.engine.connect() as conn:
        prices = dict(conn.execute(sa.text("SELECT source_id, price FROM test_items")).all())
    assert prices == {"1": Decimal("1.01"), "2": Decimal("0.10")} or warehouse.engine.dialect.name == "sqlite"
    if warehouse.engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="too long"):
            with warehouse.transaction() as tx:
                tx.upsert(items, [row(3, source_id="x" * 40)])


@pytest.mark.postgres
def test_postgres_upsert_outside_a_transaction_is_a_clear_error(pg_url: str):
    warehouse = Warehouse.for_url(pg_url)
    from sync_pipelines.warehouse.upsert import upsert_rows

    with warehouse.engine.connect() as conn:
        with pytest.raises(RuntimeError, match="not in a transaction"):
            upsert_rows(conn, warehouse.table("sync_state"), [{"source": "s", "entity": "e", "cursor": "1"}])
    assert warehouse.count("sync_state") == 0
    warehouse.dispose()


def test_reject_keys_longer_than_the_column_are_stored_under_a_stable_digest(warehouse: Warehouse):
    """record_key is varchar(512) (Postgres refuses more): a longer key becomes its first
    characters plus a digest of the whole, the same for the same record."""
    from sync_pipelines.warehouse.store import REJECT_KEY_MAX, stored_record_key

    long_key = "listing/" + "x" * 600
    other = "listing/" + "x" * 599 + "y"  # same first 512 characters, another record
    with warehouse.transaction() as tx:
        tx.reject("test", "long", long_key, "bad", {"n": 1})
        tx.reject("test", "long", long_key, "bad again", {"n": 2})  # same record: same row
        tx.reject("test", "long", other, "bad", None)
        tx.reject("test", "long", "short", "bad", None)
    stored = {r["record_key"]: r for r in warehouse.rejects("test", "long")}
    assert len(stored) == 3
    assert stored[stored_record_key(long_key)]["payload"] == {"n": 2}
    assert all(len(k) <= REJECT_KEY_MAX for k in stored)
    assert stored_record_key(long_key) != stored_record_key(other) and stored_record_key(long_key).startswith("listing/xxx")
    assert stored_record_key("short") == "short"
    with warehouse.transaction() as tx:
        assert tx.resolve_rejects("test", "long", [long_key, other]) == 2
    assert [r["record_key"] for r in warehouse.rejects("test", "long")] == ["short"]


def test_a_missing_table_on_sqlite_is_a_permanent_failure(sqlite_url: str):
    """SQLite says "no such table" with an OperationalError, as it says "database is locked":
    only the latter is worth a step retry."""
    from sync_pipelines.retries import is_transient
    from sync_pipelines.warehouse import WarehouseUnavailableError

    warehouse = Warehouse.for_url(sqlite_url)
    with pytest.raises(WarehouseUnavailableError, match="no such table") as err:
        with warehouse.transaction() as tx:
            tx.execute("SELECT * FROM table_nobody_made")
    assert err.value.transient is False and not is_transient(err.value)
    warehouse.dispose()


@pytest.mark.parametrize("count", [0, 1, 1_200])
def test_among_selects_exactly_the_keys_in_one_statement_or_in_chunks(warehouse: Warehouse, items: str, count: int):
    rows = [{"source": "s", "source_id": f"id-{i}", "name": str(i)} for i in range(3_000)]
    warehouse.upsert(items, rows)
    wanted = [f"id-{i}" for i in range(0, 2 * count, 2)]
    table = warehouse.table(items)
    with warehouse.transaction() as tx:
        conditions = list(tx.among(table.c.source_id, wanted))
        found = [sid for where in conditions for sid in tx.execute(sa.select(table.c.source_id).where(where)).scalars()]
    assert sorted(found) == sorted(wanted)
    on_postgres = warehouse.engine.dialect.name == "postgresql"
    assert len(conditions) == (min(count, 1) if on_postgres else -(-count // 500))


def test_among_matches_keys_with_quotes_backslashes_commas_and_braces(warehouse: Warehouse, items: str):
    """On Postgres the keys travel as one array literal: every character must arrive as itself."""
    odd = ['b"c', "d\\e", "f,g", "{h}", " i ", "", "NULL", "한국", "j'k", 'l\\"m', "x" * 32]
    warehouse.upsert(items, [{"source": "s", "source_id": k, "name": "odd"} for k in [*odd, "other"]])
    table = warehouse.table(items)
    with warehouse.transaction() as tx:
        found = [sid for where in tx.among(table.c.source_id, odd)
                 for sid in tx.execute(sa.select(table.c.source_id).where(where)).scalars()]
    assert sorted(found) == sorted(odd)
    with warehouse.transaction() as tx:  # longer than the column (varchar(32)): no key, not its prefix
        assert [sid for where in tx.among(table.c.source_id, ["x" * 40])
                for sid in tx.execute(sa.select(table.c.source_id).where(where)).scalars()] == []
