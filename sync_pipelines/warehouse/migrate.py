"""Versioned schema migrations (Alembic), applied programmatically and idempotently."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from sync_pipelines.warehouse.engine import write_engine

VERSION_TABLE = "sync_alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any constant: serialises concurrent upgrades (two runs starting at once) on Postgres.
_PG_ADVISORY_LOCK_ID = 0x5E11C


def alembic_config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


# ``0001_foundation`` holds the shared tables; each source adds its own branch off it
# (``branch_labels``), so sources evolve independently and ``upgrade`` applies every head.


def head_revisions() -> tuple[str, ...]:
    return tuple(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))


def _current_heads(conn: sa.Connection) -> tuple[str, ...]:
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return tuple(sorted(context.get_current_heads()))


def current_revisions(engine: sa.Engine) -> tuple[str, ...]:
    with engine.connect() as conn:
        return _current_heads(conn)


@contextmanager
def _locked_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction holding the schema lock, so that concurrent migrations queue up.

    Two runs starting at once on a fresh database must not both create the tables: the
    second waits for the first to commit and then finds the schema current. Postgres: an
    advisory lock. SQLite: BEGIN IMMEDIATE (the write lock, waited for up to busy_timeout),
    and since the engine BEGINs before DDL too, a migration failing midway rolls back whole.
    """
    with write_engine(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_ADVISORY_LOCK_ID})")
        yield conn


def upgrade(engine: sa.Engine, revision: str = "heads") -> tuple[str, ...]:
    """Bring the schema to ``revision`` (every branch head by default); idempotent, all or nothing.

    Every process calls this on start-up and the schema is nearly always current, so a plain
    read checks first: queueing behind SQLite's write lock (a long archive may hold it) only
    to learn nothing changed could fail "database is locked". The lock is taken only when an
    upgrade is needed, and the schema read again under it.
    """
    # Only the default target is checked up front; any other goes to Alembic, under the lock.
    target = head_revisions() if revision == "heads" else None
    current = current_revisions(engine)
    if current == target:
        return current
    with _locked_transaction(engine) as conn:
        if _current_heads(conn) != target:
            command.upgrade(alembic_config(conn), revision)
    return current_revisions(engine)


def downgrade(engine: sa.Engine, revision: str) -> tuple[str, ...]:
    with _locked_transaction(engine) as conn:
        command.downgrade(alembic_config(conn), revision)
    return current_revisions(engine)
