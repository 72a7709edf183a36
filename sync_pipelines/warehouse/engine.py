"""Engines for the destination database: SQLite (embedded default) and Postgres alike."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from sync_pipelines.redaction import register_secret
from sync_pipelines.settings import ConfigurationError


def json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_safe(value: Any) -> Any:
    """``value`` with what Postgres' jsonb refuses made storable, the same on both dialects.

    jsonb rejects the escape ``\\u0000`` (so NULs are dropped from strings and keys) and has
    no NaN or Infinity (so those become null). SQLite would take both, but a document must
    read back the same whichever database holds it.
    """
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {(k.replace("\x00", "") if isinstance(k, str) else k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return json_safe(json_default(value))
    return value


def _encode(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, default=json_default, separators=(",", ":"), allow_nan=False
    )


def dumps(value: Any) -> str:
    """Canonical JSON (sorted keys: equal documents compare equal as text, SQLite), jsonb-safe.

    Most documents hold neither NaN nor NUL: they are encoded once; only the others are
    walked by :func:`json_safe` (a NUL always shows in the output as the escape ``\\u0000``).
    """
    try:
        text = _encode(value)
    except ValueError:  # NaN or Infinity somewhere
        return _encode(json_safe(value))
    return _encode(json_safe(value)) if "\\u0000" in text else text


DATABASE_URL_VARIABLE = "SYNC_DATABASE_URL"
SUPPORTED_URLS = "sqlite:///path/to/file.sqlite or postgresql://user:password@host:5432/database"
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
# A "%" that does not start a percent-encoded byte
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class DatabaseConfigurationError(ConfigurationError):
    """A database URL refused before anything connects (its text never shown: it may hold a password)."""


def check_database_url(url: str, variable: str = DATABASE_URL_VARIABLE) -> str:
    """``url`` pinned to psycopg2 once it is sure to mean one database; else a clear refusal.

    Refused before connecting, naming ``variable`` and never quoting the URL: an unknown
    scheme (``mysql://``: list the supported ones), text that is no URL, and user-info with
    an unencoded ``@ # / ?`` or a stray ``%``, which parsers split in different places (the
    rest of a password then became a host name sent to DNS, and was printed). A usable
    URL's password is registered for redaction, decoded and as written.
    """
    match = _SCHEME.match(url.strip())
    if match is None:
        raise DatabaseConfigurationError(f"{variable} is not a database URL; expected {SUPPORTED_URLS}")
    scheme = match.group(1).lower()
    if scheme == "sqlite":
        return url
    if scheme not in _POSTGRES_SCHEMES:
        shown = scheme if len(scheme) <= 30 else scheme[:30] + "..."
        raise DatabaseConfigurationError(
            f"{variable}: unsupported database URL scheme {shown!r}; supported: sqlite:// (embedded) "
            "and postgresql:// (also written postgres:// or postgresql+psycopg2://)"
        )
    rest = url.strip()[match.end():]
    before_query = rest.split("?", 1)[0]
    userinfo = before_query.rsplit("@", 1)[0] if "@" in before_query else ""
    if "#" in rest or any(c in userinfo for c in "@/?") or _STRAY_PERCENT.search(userinfo):
        raise DatabaseConfigurationError(
            f"{variable} is malformed: its user name or password holds a character that must be "
            "percent-encoded (@ as %40, # as %23, / as %2F, ? as %3F, % as %25, : in the user name as %3A); "
            "encode it with: python -c \"import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=''))\" "
            "'<password>'"
        )
    raw_password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
    register_secret(raw_password)
    register_secret(unquote(raw_password))
    normalized = normalize_url(url.strip())
    try:
        parsed = make_url(normalized)
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise ValueError("port out of range")
    except Exception:
        raise DatabaseConfigurationError(
            f"{variable} cannot be parsed as a database URL (check host, port and database name); "
            f"expected {SUPPORTED_URLS}"
        ) from None
    return normalized


# The server said no for good: retrying the same URL cannot help (psycopg2's texts).
_PERMANENT_DATABASE_ERRORS = (
    ("password authentication failed", "refused the credentials"),
    ("authentication failed", "refused the credentials"),
    ("no password supplied", "asks for a password the URL does not give"),
    ("role \"", "does not know the user"),
    ("database \"", "has no such database"),
    ("server does not support ssl", "refused SSL (sslmode asks for it)"),
    ("ssl was required", "refused SSL (sslmode asks for it)"),
    ("no pg_hba.conf entry", "refused this client (pg_hba.conf)"),
    ("invalid sslmode", "was given an invalid sslmode"),
    ("invalid connection option", "was given an invalid connection option"),
    ("invalid dsn", "was given an invalid connection string"),
)


def permanent_database_error(reason: str) -> str | None:
    """What a driver message says went wrong for good (bad credentials, no such database,
    SSL refused), or None when waiting may help (server down, restarting, unreachable)."""
    lowered = reason.lower()
    for marker, meaning in _PERMANENT_DATABASE_ERRORS:
        if marker in lowered and (marker not in ('role "', 'database "') or "does not exist" in lowered):
            return meaning
    return None


def normalize_url(url: str) -> str:
    """Pin Postgres URLs to psycopg2.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which this project does not
    install; ``postgres://`` (Heroku/Supabase style) is not accepted at all.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


# Execution option naming how a SQLite transaction begins: "DEFERRED" (the default, for
# reads) or "IMMEDIATE" (takes the write lock at BEGIN, see :func:`write_engine`).
SQLITE_BEGIN = "sqlite_begin"
_SQLITE_BEGIN_MODES = ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")


SQLITE_BUSY_TIMEOUT_S = 60


def _enable_wal(cursor: Any, timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> None:
    """Switch the file to WAL, waiting for other processes doing the same.

    The journal mode is stored in the file, so only the first connection to a fresh file
    changes it; but when several processes open a fresh file at once, the switch (it needs
    the exclusive lock) fails at once with "database is locked" for the losers: SQLite does
    not call the busy handler for it (measured: 7 of 300 processes, six at a time). They
    wait and try again; by then the winner has usually switched it and the PRAGMA is a no-op.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def create_warehouse_engine(url: str) -> sa.Engine:
    url = check_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            json_serializer=dumps,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S},  # sqlite3's busy timeout, in seconds
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # SQLAlchemy's documented recipe for real SQLite transactions: pysqlite's legacy
            # transaction control never BEGINs before DDL (CREATE TABLE autocommits, so a
            # failed migration left half its tables) nor before SELECT; SQLAlchemy emits
            # BEGIN itself instead (``_sqlite_begin``).
            dbapi_conn.isolation_level = None
            # WAL lets the UI/readers see data while a run writes; the busy timeout (the
            # ``timeout`` connect argument, set before any statement) makes two processes of
            # a multiprocess run wait for each other instead of failing.
            cur = dbapi_conn.cursor()
            _enable_wal(cur)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            mode = str(conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")).upper()
            if mode not in _SQLITE_BEGIN_MODES:
                raise ValueError(f"{SQLITE_BEGIN} must be one of {_SQLITE_BEGIN_MODES}, got {mode!r}")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return sa.create_engine(
        url,
        json_serializer=dumps,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 10, "application_name": "sync_pipelines"},
    )


def write_engine(engine: sa.Engine) -> sa.Engine:
    """``engine`` (same pool) whose transactions take SQLite's write lock at BEGIN.

    A deferred SQLite transaction that reads and then writes cannot wait for the lock: in
    WAL mode, if another process committed since its read, the write fails at once
    (SQLITE_BUSY_SNAPSHOT) whatever the busy timeout. BEGIN IMMEDIATE waits (busy_timeout)
    for the writer ahead and then reads the latest data. Postgres ignores the option.
    """
    return engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
