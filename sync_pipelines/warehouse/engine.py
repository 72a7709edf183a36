"""Engines for the destination database: SQLite (embedded default) and Postgres alike."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url


def json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, so equal documents compare equal as text (SQLite)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=json_default, separators=(",", ":"))


def normalize_url(url: str) -> str:
    """Pin Postgres URLs to psycopg2.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which this project does not
    install; ``postgres://`` (Heroku/Supabase style) is not accepted at all.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def create_warehouse_engine(url: str) -> sa.Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            json_serializer=dumps,
            connect_args={"timeout": 60},
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the UI/readers see data while a run writes; busy_timeout makes two
            # processes of a multiprocess run wait for each other instead of failing.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(
        url,
        json_serializer=dumps,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 10, "application_name": "sync_pipelines"},
    )
