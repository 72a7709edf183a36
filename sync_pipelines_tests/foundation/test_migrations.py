"""Versioned migrations: a fresh database reaches every head; an old one upgrades keeping data."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from sync_pipelines.warehouse import Warehouse, migrate
from sync_pipelines.warehouse.engine import create_warehouse_engine, write_engine


def test_fresh_database_reaches_every_head(database_url: str):
    engine = create_warehouse_engine(database_url)
    assert migrate.current_revisions(engine) == ()
    assert migrate.upgrade(engine) == migrate.head_revisions()
    tables = set(sa.inspect(engine).get_table_names())
    assert {"sync_state", "sync_rejects", migrate.VERSION_TABLE} <= tables
    # idempotent: a second upgrade is a no-op
    assert migrate.upgrade(engine) == migrate.head_revisions()
    engine.dispose()


def test_upgrade_from_foundation_keeps_data(database_url: str):
    engine = create_warehouse_engine(database_url)
    migrate.upgrade(engine, "0001_foundation")
    assert migrate.current_revisions(engine) == ("0001_foundation",)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO sync_state (source, entity, cursor, synced_at) VALUES ('s', 'e', '\"c\"', :now)"),
            {"now": "2026-01-01 00:00:00"},
        )
    migrate.upgrade(engine)
    assert migrate.current_revisions(engine) == migrate.head_revisions()
    engine.dispose()
    warehouse = Warehouse(database_url)
    assert warehouse.get_cursor("s", "e") == "c"
    warehouse.dispose()


def test_every_migration_downgrades_and_upgrades_again(database_url: str):
    engine = create_warehouse_engine(database_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert migrate.current_revisions(engine) == ()
    assert set(sa.inspect(engine).get_table_names()) <= {migrate.VERSION_TABLE}
    assert migrate.upgrade(engine) == migrate.head_revisions()
    engine.dispose()


def test_destination_can_share_a_database_with_dagster_storage(database_url: str):
    """Our version table is not Dagster's ``alembic_version``: both can live in one Postgres."""
    engine = create_warehouse_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('dagster_rev')"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "dagster_rev"
    engine.dispose()


def _hold_schema_lock(database_url: str):
    """Another process's long write transaction (SQLite: the write lock) or migration (Postgres:
    the schema's advisory lock), on a connection of its own; returns (connection, engine)."""
    engine = create_warehouse_engine(database_url)
    conn = write_engine(engine).connect()
    conn.begin()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({migrate._PG_ADVISORY_LOCK_ID})")
    else:
        conn.execute(sa.text("UPDATE sync_state SET cursor = cursor"))  # a write, as an archive run's
    return conn, engine


def _upgrade_in_thread(engine: sa.Engine, result: dict) -> threading.Thread:
    def run() -> None:
        result["revisions"] = migrate.upgrade(engine)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_current_schema_is_not_locked_to_be_found_current(database_url: str):
    """Every step starts with upgrade(): at head it must not wait behind a long write."""
    engine = create_warehouse_engine(database_url)
    migrate.upgrade(engine)
    holder, holder_engine = _hold_schema_lock(database_url)
    try:
        result: dict = {}
        thread = _upgrade_in_thread(engine, result)
        thread.join(timeout=10)
        assert not thread.is_alive(), "upgrade() of a current schema waited for the schema lock"
        assert result["revisions"] == migrate.head_revisions()
        warehouse = Warehouse(database_url)  # what a step does on start-up
        started = time.monotonic()
        assert warehouse.migrate() == migrate.head_revisions()
        assert time.monotonic() - started < 10
        warehouse.dispose()
    finally:
        holder.rollback()
        holder.close()
        holder_engine.dispose()
    engine.dispose()


def test_an_outdated_schema_still_waits_for_the_lock_and_then_upgrades(database_url: str):
    engine = create_warehouse_engine(database_url)
    migrate.upgrade(engine, "0001_foundation")
    holder, holder_engine = _hold_schema_lock(database_url)
    try:
        result: dict = {}
        thread = _upgrade_in_thread(engine, result)
        thread.join(timeout=1.5)
        assert thread.is_alive()  # queued behind the lock, not migrating beside it
        assert migrate.current_revisions(engine) == ("0001_foundation",)
    finally:
        holder.rollback()
        holder.close()
        holder_engine.dispose()
    thread.join(timeout=60)
    assert not thread.is_alive() and result["revisions"] == migrate.head_revisions()
    assert migrate.current_revisions(engine) == migrate.head_revisions()
    engine.dispose()
