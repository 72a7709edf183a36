"""Versioned migrations: a fresh database reaches every head; an old one upgrades keeping data."""

from __future__ import annotations

import sqlalchemy as sa

from sync_pipelines.warehouse import Warehouse, migrate
from sync_pipelines.warehouse.engine import create_warehouse_engine


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
