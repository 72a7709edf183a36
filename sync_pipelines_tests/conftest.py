"""Shared fixtures: a real Postgres database per test, the embedded SQLite, the sandbox.

Postgres tests use the server at ``SYNC_TEST_PG_URL`` (default: the machine's
127.0.0.1:5432, user postgres). Each test gets a database of its own, dropped after. When
the server is missing, Postgres tests FAIL, so that no CI can pass without them whether or
not it sets ``CI``; a developer without a server opts into skipping them with
``SYNC_TEST_SKIP_POSTGRES=1`` (never honoured when ``CI`` is set).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from sync_pipelines.sandbox import Sandbox
from sync_pipelines.warehouse import Warehouse

PG_ADMIN_URL = os.environ.get("SYNC_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a test marked ``slow`` first: xdist hands out files in this order, so
    the long ones start at once and the short ones fill the end (a stable sort)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def _admin_engine() -> sa.Engine:
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of a reachable Postgres server, or a loud failure."""
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc.orig).strip()}"
        if os.environ.get("SYNC_TEST_SKIP_POSTGRES") == "1" and not os.environ.get("CI"):
            pytest.skip(message + " (SYNC_TEST_SKIP_POSTGRES=1)")
        pytest.fail(message + " (set SYNC_TEST_SKIP_POSTGRES=1 to skip Postgres tests locally)", pytrace=False)
    finally:
        engine.dispose()
    return PG_ADMIN_URL


def create_pg_database(admin_url: str, prefix: str = "sync_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return name


def drop_pg_database(name: str) -> None:
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def pg_url_for(admin_url: str, database: str) -> str:
    return sa.engine.make_url(admin_url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty Postgres database for this test (dropped afterwards)."""
    name = create_pg_database(pg_server)
    url = pg_url_for(pg_server, name)
    try:
        yield url
    finally:
        for warehouse in list(Warehouse._instances.values()):
            if warehouse.url.endswith(f"/{name}"):
                warehouse.dispose()
        drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    """Run the test once on the embedded SQLite and once on a fresh Postgres database."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


class CountingWarehouse(Warehouse):
    """A test's view of a Warehouse (same engine, tables and lock) whose ``count`` also takes
    a SQL condition, as tests write it: ``count("cars", "source = 'encar'")``."""

    def __init__(self, warehouse: Warehouse):
        self.__dict__.update(warehouse.__dict__)

    def count(self, table: str, where: str | None = None, **equal_to: Any) -> int:
        if where is None:
            return super().count(table, **equal_to)
        with self.engine.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(table)
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {quoted} WHERE {where}")).scalar_one())


@pytest.fixture
def warehouse(database_url: str, monkeypatch) -> Iterator[Warehouse]:
    """A migrated Warehouse on SQLite and on Postgres; ``SYNC_DATABASE_URL`` points at it."""
    monkeypatch.setenv("SYNC_DATABASE_URL", database_url)
    wh = Warehouse.for_url(database_url)
    try:
        yield CountingWarehouse(wh)
    finally:
        wh.dispose()


@pytest.fixture
def sandbox(monkeypatch) -> Iterator[Sandbox]:
    """Every sandboxed vendor on a loopback port; the vendor URL variables point at it."""
    with Sandbox(seed=42) as sb:
        for key, value in sb.env().items():
            monkeypatch.setenv(key, value)
        yield sb


@pytest.fixture
def secret_key(monkeypatch) -> str:
    """A fresh ``SYNC_SECRET_KEY`` (Fernet) for tests that store Procore tokens."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("SYNC_SECRET_KEY", key)
    return key


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch) -> None:
    """Never write the developer's .sync_data from a test; short step-retry waits."""
    monkeypatch.setenv("SYNC_DATA_DIR", str(tmp_path / "sync_data"))
    # Step retries wait 30 s, 1 min, 2 min in production; tests keep their count, not their wait.
    monkeypatch.setenv("SYNC_STEP_RETRY_SECONDS", "0.01")
