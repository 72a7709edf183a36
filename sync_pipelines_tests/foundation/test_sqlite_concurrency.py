"""SQLite as two processes of a multiprocess run use it: migrations and writes at once.

Real processes on a real file (no mocks): each child imports everything first, then waits
for a "go" file, so that both hit the fresh database at the same moment.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from sync_pipelines.warehouse import Warehouse, migrate
from sync_pipelines.warehouse.engine import create_warehouse_engine

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from sync_pipelines.warehouse import Warehouse
    url, go, increments = sys.argv[1], sys.argv[2], int(sys.argv[3])
    while not os.path.exists(go):
        time.sleep(0.002)
    warehouse = Warehouse.for_url(url)  # migrates the fresh file
    for _ in range(increments):
        # read, then write, in one transaction: what a source does with a cursor
        with warehouse.transaction() as tx:
            value = tx.get_cursor("test", "counter") or 0
            tx.set_cursor("test", "counter", value + 1)
    print("ok", " ".join(warehouse.migrate() or ()))
    """
)


def _race(tmp_path: Path, url: str, processes: int = 2, increments: int = 0) -> list[subprocess.CompletedProcess]:
    go = tmp_path / "go"
    go.unlink(missing_ok=True)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(go), str(increments)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(processes)
    ]
    time.sleep(2.5)  # long enough for both to have imported SQLAlchemy, Alembic and the package
    go.touch()
    results = []
    for child in children:
        out, err = child.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    return results


@pytest.mark.timeout(600)
def test_two_processes_migrating_a_fresh_file_at_once_both_succeed(tmp_path: Path):
    for attempt in range(4):
        url = f"sqlite:///{tmp_path / f'fresh_{attempt}.sqlite'}"
        for result in _race(tmp_path, url):
            assert result.returncode == 0, f"attempt {attempt}: {result.stderr[-3000:]}"
        engine = create_warehouse_engine(url)
        assert migrate.current_revisions(engine) == migrate.head_revisions()
        engine.dispose()


@pytest.mark.timeout(600)
def test_read_then_write_transactions_of_two_processes_serialise(tmp_path: Path):
    """No 'database is locked' (SQLITE_BUSY_SNAPSHOT) and no lost update: every increment counts."""
    url = f"sqlite:///{tmp_path / 'counter.sqlite'}"
    results = _race(tmp_path, url, processes=2, increments=60)
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    warehouse = Warehouse(url)
    assert warehouse.get_cursor("test", "counter") == 120
    warehouse.dispose()


def test_a_migration_failing_midway_leaves_no_half_made_tables(database_url: str):
    """All or nothing: on SQLite too, DDL runs inside the one migration transaction."""
    engine = create_warehouse_engine(database_url)
    with engine.begin() as conn:
        # 0002_cars creates ``cars`` and then ``cars_archive``: the second now fails
        conn.execute(sa.text("CREATE TABLE cars_archive (id integer PRIMARY KEY)"))
    with pytest.raises(sa.exc.DBAPIError, match="cars_archive"):
        migrate.upgrade(engine)
    assert set(sa.inspect(engine).get_table_names()) == {"cars_archive"}
    assert migrate.current_revisions(engine) == ()
    engine.dispose()


def test_switching_a_fresh_file_to_wal_waits_for_a_writer_instead_of_failing(tmp_path: Path):
    """The race behind 'database is locked' when runs open a fresh file at once, made certain.

    A fresh file is in rollback-journal mode; while another connection holds its write lock,
    ``PRAGMA journal_mode=WAL`` fails at once (SQLite calls no busy handler for it). The
    engine's connections wait for the lock and switch the file once it is free.
    """
    path = tmp_path / "fresh.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x integer)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # the bare race, as SQLite has it
        sqlite3.connect(path, timeout=60).execute("PRAGMA journal_mode=WAL")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    engine = create_warehouse_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
    finally:
        release.join()
        engine.dispose()
        other.close()
