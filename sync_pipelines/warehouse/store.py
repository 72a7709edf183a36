"""The destination database as the sources use it: transactions, upserts, cursors, rejects."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from sync_pipelines.redaction import redact, redact_url, redact_value
from sync_pipelines.warehouse import migrate
from sync_pipelines.warehouse.engine import (
    DATABASE_URL_VARIABLE,
    create_warehouse_engine,
    dumps,
    normalize_url,
    permanent_database_error,
    write_engine,
)
from sync_pipelines.warehouse.upsert import UpsertCounts, upsert_rows


class WarehouseUnavailableError(RuntimeError):
    """The destination database cannot be reached or refused the work (message redacted).

    ``transient`` says whether trying again later may help (a server restarting, a lock
    timeout) or not (a missing table): :mod:`sync_pipelines.retries` retries only the former.
    """

    def __init__(self, message: str, *, transient: bool = True):
        super().__init__(message)
        self.transient = transient


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# sync_rejects.record_key is varchar(512) (Postgres refuses more): a longer key is stored as
# a prefix plus a digest of the whole, stable per record, so rejects stay idempotent.
REJECT_KEY_MAX = 512
_DIGEST_MARK = "#sha256="


def stored_record_key(record_key: Any) -> str:
    """The ``sync_rejects.record_key`` of a record key (its text, shortened when too long)."""
    key = str(record_key)
    if len(key) <= REJECT_KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key[: REJECT_KEY_MAX - len(_DIGEST_MARK) - len(digest)] + _DIGEST_MARK + digest


T = TypeVar("T")

# Keys per ``IN (...)`` list: well under SQLite's bound-parameter limit (999 before 3.32)
# and Postgres' statement size; every key lookup and bulk update goes through :func:`chunked`.
IN_LIST_CHUNK = 500


def chunked(items: Sequence[T], size: int = IN_LIST_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _array_literal(keys: Sequence[Any]) -> tuple[str, type[sa.types.TypeEngine]] | None:
    """Integer or text keys as one Postgres array literal (``{1,2}``, ``{"a","b\\"c"}``) and
    its element type: one text parameter is cheaper to send and parse than an ``ARRAY[..]``
    of as many parameters as keys (0.3 against 1 ms for 1,000). The type is bigint or text,
    never the column's own (a cast to ``varchar(32)[]`` would cut a longer key to a prefix
    that may match). None for keys of other types."""
    if all(type(k) is int for k in keys):
        return "{" + ",".join(map(str, keys)) + "}", sa.BigInteger
    if all(type(k) is str for k in keys):
        return "{" + ",".join('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in keys) + "}", sa.Text
    return None


class WarehouseTransaction:
    """One database transaction: everything done through it commits or rolls back together."""

    def __init__(self, warehouse: Warehouse, conn: sa.Connection):
        self.warehouse = warehouse
        self.conn = conn
        self.unanalyzed: set[str] = set()  # tables to ANALYZE once this transaction committed

    def among(self, column: sa.ColumnElement, keys: Sequence[Any]) -> Iterator[sa.ColumnElement]:
        """Conditions that together select ``column`` in ``keys``: one ``= ANY(array)`` on
        Postgres (one statement, one plan, one parameter whatever the count), else ``IN``
        lists of at most :data:`IN_LIST_CHUNK` keys. No key, no condition."""
        if self.conn.dialect.name == "postgresql":
            if keys:
                literal = _array_literal(keys)
                array = (sa.cast(sa.literal(literal[0], sa.Text), postgresql.ARRAY(literal[1])) if literal
                         else sa.literal(list(keys), postgresql.ARRAY(column.type)))
                yield column == sa.any_(array)
            return
        for chunk in chunked(keys):
            yield column.in_(chunk)

    def table(self, name: str) -> sa.Table:
        return self.warehouse.table(name)

    def execute(self, statement: Any, params: Any = None) -> sa.CursorResult:
        if isinstance(statement, str):
            statement = sa.text(statement)
        return self.conn.execute(statement, params) if params is not None else self.conn.execute(statement)

    def upsert(
        self,
        table: str,
        rows: Iterable[Mapping[str, Any]],
        *,
        key: Sequence[str] | None = None,
        compare_exclude: Iterable[str] = (),
        insert_only: Iterable[str] = (),
        stamp_column: str | None = "synced_at",
        now: dt.datetime | None = None,
    ) -> UpsertCounts:
        """Upsert rows in this transaction; see :func:`sync_pipelines.warehouse.upsert.upsert_rows`."""
        counts = upsert_rows(
            self.conn,
            self.table(table),
            rows,
            key=key,
            compare_exclude=compare_exclude,
            insert_only=insert_only,
            stamp_column=stamp_column,
            now=now,
        )
        if counts.inserted:
            self._note_inserts(table)
        return counts

    def _note_inserts(self, table: str) -> None:
        """A Postgres table never analyzed (created empty, filled in this run) has no
        statistics: the planner takes a lookup on a non-unique column for most of the table
        and scans all of it, batch after batch, until autovacuum gets to it. Such a table is
        analyzed once its first rows are committed."""
        known = self.warehouse.analyzed_tables
        if self.conn.dialect.name != "postgresql" or table in known or table in self.unanalyzed:
            return
        never = self.conn.execute(sa.text("SELECT reltuples < 0 FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                                  {"t": self.conn.dialect.identifier_preparer.quote(table)}).scalar()
        if never:
            self.unanalyzed.add(table)
        else:
            known.add(table)

    # -- cursors ------------------------------------------------------------------------

    def get_cursor(self, source: str, entity: str) -> Any:
        state = self.table("sync_state")
        raw = self.conn.execute(
            sa.select(state.c.cursor).where(state.c.source == source, state.c.entity == entity)
        ).scalar_one_or_none()
        return json.loads(raw) if raw is not None else None

    def set_cursor(self, source: str, entity: str, value: Any, run_id: str | None = None) -> None:
        """Advance a cursor in this transaction, so it commits with the batch it covers."""
        self.set_cursors(source, {entity: value}, run_id=run_id)

    def set_cursors(self, source: str, values: dict[str, Any], run_id: str | None = None) -> None:
        """Several cursors of ``source`` (entity -> value) in one upsert, in this transaction."""
        if values:
            rows = [{"source": source, "entity": e, "cursor": dumps(values[e]), "run_id": run_id} for e in sorted(values)]
            self.upsert("sync_state", rows, compare_exclude=("run_id",))

    # -- rejects ------------------------------------------------------------------------

    def reject(
        self,
        source: str,
        entity: str,
        record_key: Any,
        reason: str,
        payload: Any = None,
        run_id: str | None = None,
    ) -> None:
        """Set a bad record aside with its reason (idempotent: one row per record key).

        The payload is what the vendor sent, so it may carry a secret (an echoed key, a
        session cookie): values of secret-looking keys are masked and string leaves redacted
        before it is stored, like the reason.
        """
        now = utcnow()
        self.upsert(
            "sync_rejects",
            [
                {
                    "source": source,
                    "entity": entity,
                    "record_key": stored_record_key(record_key),
                    "reason": redact(reason)[:4000],
                    "payload": redact_value(payload),
                    "run_id": run_id,
                    "first_seen_at": now,
                    "last_seen_at": now,
                }
            ],
            insert_only=("first_seen_at",),
            now=now,
        )

    def resolve_rejects(self, source: str, entity: str, record_keys: Iterable[Any]) -> int:
        """Forget rejects of records that have since landed cleanly; returns how many."""
        keys = [stored_record_key(k) for k in record_keys]
        if not keys:
            return 0
        rejects = self.table("sync_rejects")
        removed = 0
        for matching in self.among(rejects.c.record_key, keys):
            removed += self.conn.execute(
                rejects.delete().where(rejects.c.source == source, rejects.c.entity == entity, matching)
            ).rowcount
        return removed


# SQLite reports a missing table or a bad statement as an OperationalError, like a lock
# timeout; Postgres raises ProgrammingError for those. They do not go away by waiting.
_SQLITE_SCHEMA_ERRORS = ("no such table", "no such column", "has no column named", "already exists", "syntax error")


def _is_schema_error(reason: str) -> bool:
    lowered = reason.lower()
    return any(marker in lowered for marker in _SQLITE_SCHEMA_ERRORS)


class Warehouse:
    """The destination database behind ``SYNC_DATABASE_URL`` (SQLite or Postgres)."""

    _instances: dict[str, Warehouse] = {}
    _instances_lock = threading.Lock()

    def __init__(self, url: str):
        self.url = normalize_url(url)
        self.safe_url = redact_url(self.url)
        self.engine = create_warehouse_engine(self.url)
        self._write_engine = write_engine(self.engine)
        self._tables: dict[str, sa.Table] = {}
        self._metadata = sa.MetaData()
        self._migrated = False
        self._lock = threading.Lock()
        self.analyzed_tables: set[str] = set()  # Postgres tables known to have planner statistics

    @classmethod
    def for_url(cls, url: str, *, migrate_schema: bool = True) -> Warehouse:
        """One Warehouse (and connection pool) per URL per process, migrated on first use."""
        url = normalize_url(url)
        with cls._instances_lock:
            warehouse = cls._instances.get(url)
            if warehouse is None:
                warehouse = cls._instances[url] = cls(url)
        if migrate_schema:
            warehouse.migrate()
        return warehouse

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def location(self) -> str:
        """Where the data is, for people: a file path for SQLite, a redacted URL otherwise."""
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite":
            return str(parsed.database)
        return self.safe_url

    def migrate(self) -> tuple[str, ...] | None:
        with self._lock:
            if self._migrated:
                return None
            with self._wrap_errors("migrating the schema"):
                revision = migrate.upgrade(self.engine)
            self._tables.clear()
            self.analyzed_tables.clear()
            self._metadata = sa.MetaData()
            self._migrated = True
            return revision

    def table(self, name: str) -> sa.Table:
        with self._lock:
            table = self._tables.get(name)
            if table is None:
                try:
                    table = sa.Table(name, self._metadata, autoload_with=self.engine)
                except sa.exc.NoSuchTableError:
                    raise WarehouseUnavailableError(
                        f"table {name!r} does not exist in {self.safe_url}: run the migrations "
                        "(python -m sync_pipelines.warehouse upgrade)",
                        transient=False,
                    ) from None
                self._tables[name] = table
            return table

    @contextmanager
    def transaction(self) -> Iterator[WarehouseTransaction]:
        """A write transaction. On SQLite it takes the write lock at BEGIN (IMMEDIATE).

        Sources read and then write in one transaction (a cursor, then the batch it covers);
        with two processes writing one SQLite file, a deferred transaction's first write
        fails outright if the other committed since its first read. Taking the lock first
        makes the second writer wait its turn instead. Plain reads (``engine.connect()``)
        stay deferred and never wait.
        """
        with self._wrap_errors("writing"):
            with self._write_engine.begin() as conn:
                tx = WarehouseTransaction(self, conn)
                yield tx
            if tx.unanalyzed:
                self._analyze(sorted(tx.unanalyzed))

    def _analyze(self, tables: list[str]) -> None:
        """ANALYZE on a connection of its own, after the commit: the batch's transaction
        never holds the lock ANALYZE takes (two first loads at once cannot deadlock on it)."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.quote(table)}")
                self.analyzed_tables.add(table)

    @contextmanager
    def _wrap_errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sa.exc.OperationalError as exc:
            # Connection refused, server gone, disk full, lock timeout: say which database
            # (without its password) and keep the driver's reason, redacted.
            reason = redact(str(exc.orig) if exc.orig else str(exc)).strip().splitlines()[0]
            refused = permanent_database_error(reason)
            if refused:  # a configuration error: fails at once, never retried
                raise WarehouseUnavailableError(
                    f"{DATABASE_URL_VARIABLE}: destination database {self.safe_url} {refused}: {reason}",
                    transient=False,
                ) from None
            raise WarehouseUnavailableError(
                f"destination database {self.safe_url} ({DATABASE_URL_VARIABLE}) unavailable while {doing}: {reason}",
                transient=not _is_schema_error(reason),
            ) from None

    # -- conveniences (each its own transaction) -------------------------------------------

    def upsert(
        self,
        table: str,
        rows: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 10_000,
        **options: Any,
    ) -> UpsertCounts:
        """Upsert in batches, one transaction per batch."""
        total = UpsertCounts()
        batch: list[Mapping[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_size:
                with self.transaction() as tx:
                    total += tx.upsert(table, batch, **options)
                batch = []
        if batch:
            with self.transaction() as tx:
                total += tx.upsert(table, batch, **options)
        return total

    def get_cursor(self, source: str, entity: str) -> Any:
        """A cursor as last committed (a read: it takes no write lock)."""
        with self._wrap_errors("reading"):
            with self.engine.connect() as conn:
                return WarehouseTransaction(self, conn).get_cursor(source, entity)

    def get_cursors(self, source: str, entities: list[str]) -> dict[str, Any]:
        """Cursors of ``entities`` as last committed (absent ones left out), a query per chunk."""
        state = self.table("sync_state")
        found: dict[str, Any] = {}
        with self._wrap_errors("reading"), self.engine.connect() as conn:
            for chunk in chunked(entities):
                query = sa.select(state.c.entity, state.c.cursor).where(
                    state.c.source == source, state.c.entity.in_(chunk)
                )
                found.update((entity, json.loads(raw)) for entity, raw in conn.execute(query) if raw is not None)
        return found

    def count(self, table: str, **equal_to: Any) -> int:
        """Rows of ``table`` whose columns equal ``equal_to`` (all rows when none is given)."""
        t = self.table(table)
        query = sa.select(sa.func.count()).select_from(t).where(*(t.c[name] == v for name, v in equal_to.items()))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def rejects(self, source: str | None = None, entity: str | None = None) -> list[dict[str, Any]]:
        rejects = self.table("sync_rejects")
        query = sa.select(rejects)
        if source:
            query = query.where(rejects.c.source == source)
        if entity:
            query = query.where(rejects.c.entity == entity)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def dispose(self) -> None:
        self.engine.dispose()
        with self._instances_lock:
            if self._instances.get(self.url) is self:
                del self._instances[self.url]
