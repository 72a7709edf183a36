"""Bulk upsert: keyed on the contract's keys, counts what it did, writes nothing for unchanged rows.

Both dialects stage the batch in a temporary table, then merge with set-based SQL (the SQL
per dialect: README "The destination database layer"); a small Postgres batch is merged in
one statement from a JSON parameter instead, and a large one of new keys only is COPYed
straight into the target. The caller owns the transaction, so a batch and the cursor that
covers it commit together.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import gc
import io
import itertools
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from sync_pipelines.warehouse.engine import dumps, json_default
from sync_pipelines.warehouse.types import as_utc

_stage_ids = itertools.count(1)


@dataclass
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged

    @property
    def written(self) -> int:
        return self.inserted + self.updated

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            self.inserted + other.inserted, self.updated + other.updated, self.unchanged + other.unchanged
        )

    def as_metadata(self, prefix: str = "") -> dict[str, int]:
        p = f"{prefix}_" if prefix else ""
        return {f"{p}inserted": self.inserted, f"{p}updated": self.updated, f"{p}unchanged": self.unchanged}


def prepare_rows(
    table: sa.Table,
    rows: Iterable[Mapping[str, Any]],
    key: Sequence[str],
    stamp: Mapping[str, Any],
) -> tuple[list[str], list[dict[str, Any]]]:
    """Validate column names, stamp ``synced_at``, normalise datetimes, de-duplicate keys (last wins)."""
    table_cols = set(table.c.keys())
    stamp = {k: as_utc(v) for k, v in stamp.items() if k in table_cols}
    key_of = operator.itemgetter(*key)
    by_key: dict[Any, dict[str, Any]] = {}
    columns: list[str] = []
    seen: set[str] = set()
    for row in rows:
        record = {**row, **stamp}
        if not seen.issuperset(record):
            for name in record:
                if name not in seen:
                    if name not in table_cols:
                        raise ValueError(f"upsert into {table.name}: unknown column {name!r}")
                    seen.add(name)
                    columns.append(name)
        try:
            key_values = key_of(record)
        except KeyError:
            key_values = None
        if key_values is None or (len(key) > 1 and None in key_values):
            missing = [k for k in key if record.get(k) is None]
            raise ValueError(f"upsert into {table.name}: key column(s) {missing} missing or null")
        by_key[key_values] = record
    # Every row gets every column: a column absent from one row is written as NULL only if
    # no row has it, otherwise each row must carry it (a partial row would null it out).
    width = len(columns)
    records = list(by_key.values())
    for record in records:
        if len(record) != width:
            absent = [c for c in columns if c not in record]
            raise ValueError(f"upsert into {table.name}: rows disagree on columns, one lacks {absent}")
    for name in columns:
        if name not in stamp:
            _datetimes_to_utc(records, name)
    return columns, records


def _datetimes_to_utc(records: list[dict[str, Any]], name: str) -> None:
    # The types of a column's values are collected in C; only a column holding datetimes
    # is walked in Python, and only its values not already in UTC are replaced.
    if not any(issubclass(t, dt.datetime) for t in set(map(type, map(operator.itemgetter(name), records)))):
        return
    utc = dt.timezone.utc
    for record in records:
        value = record[name]
        if isinstance(value, dt.datetime) and value.tzinfo is not utc:
            record[name] = as_utc(value)


def upsert_rows(
    conn: sa.Connection,
    table: sa.Table,
    rows: Iterable[Mapping[str, Any]],
    *,
    key: Sequence[str] | None = None,
    compare_exclude: Iterable[str] = (),
    insert_only: Iterable[str] = (),
    stamp_column: str | None = "synced_at",
    now: dt.datetime | None = None,
) -> UpsertCounts:
    """Upsert ``rows`` into ``table`` inside the caller's transaction.

    ``key`` defaults to the table's primary key. ``insert_only`` columns are written on
    insert and never overwritten (e.g. ``first_seen_at``). ``compare_exclude`` columns are
    written when a row changes but do not by themselves make a row "changed" (e.g.
    ``last_seen_at``); ``synced_at`` is always excluded from the comparison.
    """
    key = list(key or [c.name for c in table.primary_key.columns])
    if not key:
        raise ValueError(f"upsert into {table.name}: no key given and the table has no primary key")
    stamp = {stamp_column: now or dt.datetime.now(dt.timezone.utc)} if stamp_column else {}
    with _gc_paused():
        columns, records = prepare_rows(table, rows, key, stamp)
    if not records:
        return UpsertCounts()
    insert_only_set = set(insert_only)
    no_compare = set(key) | insert_only_set | set(compare_exclude) | ({stamp_column} if stamp_column else set())
    compare = [c for c in columns if c not in no_compare]
    update = [c for c in columns if c not in set(key) | insert_only_set]
    if conn.dialect.name == "postgresql":
        return _upsert_postgres(conn, table, columns, records, key, compare, update)
    return _upsert_generic(conn, table, columns, records, key, compare, update)


def _q(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _table_ref(conn: sa.Connection, table: sa.Table) -> str:
    return conn.dialect.identifier_preparer.format_table(table)


# -- Postgres ---------------------------------------------------------------------------


def json_columns(table: sa.Table, columns: Iterable[str]) -> frozenset[str]:
    """The columns of ``table`` among ``columns`` that hold JSON (json/jsonb on Postgres, JSON on SQLite)."""
    return frozenset(c for c in columns if isinstance(table.c[c].type, sa.JSON))


def _copy_value(value: Any, is_json: bool = False) -> str | None:
    if value is None:
        # SQL NULL on both dialects (SQLite's stage is typed JSON(none_as_null=True) to match).
        return None
    if is_json:
        # Every value of a JSON column is a JSON document, scalars included: "123" stays a
        # string (not the number 123), a bare str is quoted (not "invalid input syntax").
        return dumps(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dict, list)):
        return dumps(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (int, float, decimal.Decimal)):
        return str(value)
    return str(value).replace("\x00", "")  # Postgres text cannot hold NUL


# COPY text format: backslash, tab, newline and CR are escaped; NUL cannot be stored at all.
_COPY_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})
_COPY_NULL = "\\N"


def _copy_escape(text: str) -> str:
    # Two C scans settle almost every value; only the rare text with a special char is rewritten.
    if text.isprintable() and "\\" not in text:
        return text
    return text.translate(_COPY_TEXT_ESCAPES)


def _copy_field(value: Any) -> str:
    text = _copy_value(value)
    return _COPY_NULL if text is None else _copy_escape(text)


# Column encoders: a column's values in, its COPY fields out. Each keeps the expected Python
# type on an inline fast path and sends any other value through _copy_field, so a value
# encodes the same whatever its column's type says.


# dumps' canonical form from one encoder built once (json.dumps builds one per call: half its
# time on small documents); anything it cannot take as is (NaN, NUL) goes through dumps.
_canonical_json = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, default=json_default, separators=(",", ":"), allow_nan=False
).encode


def _json_document(value: Any) -> str:
    try:
        text = _canonical_json(value)
    except ValueError:
        return dumps(value)
    return dumps(value) if "\\u0000" in text else text


def _encode_json_column(values: list[Any]) -> list[str]:
    return [_COPY_NULL if v is None else _copy_escape(_json_document(v)) for v in values]


def _encode_int_column(values: list[Any]) -> list[str]:
    return [str(v) if type(v) is int else _copy_field(v) for v in values]


def _encode_str_column(values: list[Any]) -> list[str]:
    return [v if type(v) is str and v.isprintable() and "\\" not in v else _copy_field(v) for v in values]


def _encode_datetime_column(values: list[Any]) -> list[str]:
    # prepare_rows made every datetime aware UTC; an isoformat holds no COPY special char.
    first = values[0] if values else None
    if type(first) is dt.datetime and values.count(first) == len(values):
        return [first.isoformat()] * len(values)  # a stamp (synced_at): formatted once, not per row
    return [v.isoformat() if type(v) is dt.datetime else _copy_field(v) for v in values]


def _encode_decimal_column(values: list[Any]) -> list[str]:
    return [str(v) if type(v) is decimal.Decimal else _copy_field(v) for v in values]


def _encode_date_column(values: list[Any]) -> list[str]:
    return [v.isoformat() if type(v) is dt.date else _copy_field(v) for v in values]


def _encode_bool_column(values: list[Any]) -> list[str]:
    return [("t" if v else "f") if type(v) is bool else _copy_field(v) for v in values]


def _encode_any_column(values: list[Any]) -> list[str]:
    return list(map(_copy_field, values))


def copy_encoders(table: sa.Table, columns: Sequence[str]) -> list[Callable[[list[Any]], list[str]]]:
    """One COPY text-format column encoder per column, chosen once from the column's type."""
    encoders = []
    for name in columns:
        col_type = table.c[name].type
        if isinstance(col_type, sa.JSON):
            encoders.append(_encode_json_column)
        elif isinstance(col_type, sa.Integer):
            encoders.append(_encode_int_column)
        elif isinstance(col_type, sa.String):
            encoders.append(_encode_str_column)
        elif isinstance(col_type, sa.DateTime):
            encoders.append(_encode_datetime_column)
        elif isinstance(col_type, sa.Numeric) and col_type.asdecimal:
            encoders.append(_encode_decimal_column)
        elif isinstance(col_type, sa.Date):
            encoders.append(_encode_date_column)
        elif isinstance(col_type, sa.Boolean):
            encoders.append(_encode_bool_column)
        else:
            encoders.append(_encode_any_column)
    return encoders


def _copy_text(table: sa.Table, columns: Sequence[str], records: Sequence[Mapping[str, Any]]) -> io.StringIO:
    # Column by column, so the per-value work is an inline expression, not a function call.
    fields = [
        encode(list(map(operator.itemgetter(c), records)))
        for encode, c in zip(copy_encoders(table, columns), columns, strict=True)
    ]
    lines = list(map("\t".join, zip(*fields, strict=True)))
    lines.append("")
    return io.StringIO("\n".join(lines))


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # Building a batch allocates a container per row and field; each allocation burst would
    # otherwise set off collections that walk every live row again (measured: up to 2x).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _upsert_postgres(conn, table, columns, records, key, compare, update) -> UpsertCounts:
    if not conn.in_transaction():
        # The merge runs on the raw DBAPI connection: outside a SQLAlchemy transaction the
        # batch would sit in a driver transaction nobody commits, lost back in the pool.
        raise RuntimeError(
            f"upsert into {table.name}: the connection is not in a transaction; "
            "use Warehouse.transaction() or engine.begin()"
        )
    merge = _upsert_postgres_small if _is_small_batch(table, columns, records) else _upsert_postgres_raw
    try:
        return merge(conn, table, columns, records, key, compare, update)
    except conn.dialect.dbapi.Error as exc:
        # The raw cursor bypasses SQLAlchemy's error translation: restore it, so callers see
        # sa.exc.IntegrityError / OperationalError on both dialects alike.
        raise sa.exc.DBAPIError.instance(
            f"upsert into {table.name}", None, exc, conn.dialect.dbapi.Error
        ) from exc


def _merge_sql(conn, target, stage, columns, key, compare, update, *, lateral: bool = False) -> str:
    """INSERT .. ON CONFLICT of the staged rows that are new or differ from the target's.

    Unchanged rows are filtered out by a join first (index lookups, see the caller): ON
    CONFLICT DO UPDATE would look up and lock every one of them (a write to each row's
    page) only for its WHERE to skip it. ``lateral``: the lookup is a LATERAL subquery per
    staged row, an index probe whatever the planner thinks of the target's size.
    """
    cols = ", ".join(_q(conn, c) for c in columns)
    conflict = ", ".join(_q(conn, k) for k in key)
    if lateral:
        looked_up = ", ".join(f"c.{_q(conn, c)}" for c in dict.fromkeys([key[0], *compare]))
        probe = " AND ".join(f"c.{_q(conn, k)} = s.{_q(conn, k)}" for k in key)
        join = f"LEFT JOIN LATERAL (SELECT {looked_up} FROM {target} AS c WHERE {probe} LIMIT 1) AS t ON true"
    else:
        join = f"LEFT JOIN {target} AS t ON " + " AND ".join(f"t.{_q(conn, k)} = s.{_q(conn, k)}" for k in key)
    # Staged keys are never NULL (prepare_rows), so a NULL t key means no target row.
    wanted = f"t.{_q(conn, key[0])} IS NULL"
    if update and compare:
        lhs = ", ".join(f"t.{_q(conn, c)}" for c in compare)
        rhs = ", ".join(f"EXCLUDED.{_q(conn, c)}" for c in compare)
        assignments = ", ".join(f"{_q(conn, c)} = EXCLUDED.{_q(conn, c)}" for c in update)
        action = f"DO UPDATE SET {assignments} WHERE ROW({lhs}) IS DISTINCT FROM ROW({rhs})"
        wanted += f" OR ROW({lhs}) IS DISTINCT FROM ROW({rhs.replace('EXCLUDED.', 's.')})"
    else:
        # No column to compare: an existing row is never "changed", so conflicts do nothing.
        action = "DO NOTHING"
    selected = ", ".join(f"s.{_q(conn, c)}" for c in columns)
    return (
        f"WITH merged AS (INSERT INTO {target} AS t ({cols}) "
        f"SELECT {selected} FROM {stage} AS s {join} WHERE {wanted} "
        f"ON CONFLICT ({conflict}) {action} RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged"
    )


# Postgres batches up to this many rows merge in one statement from a JSON parameter: the
# temp-table stage's five more round trips and catalog writes (create, drop) dominate them.
SMALL_BATCH_ROWS = 500
# Column types whose values that statement hands to their input functions as COPY's text.
_SMALL_BATCH_TYPES = (sa.JSON, sa.Integer, sa.String, sa.DateTime, sa.Numeric, sa.Date, sa.Boolean)
_json_string = json.encoder.encode_basestring  # a str as a JSON string literal (C)


def _is_small_batch(table: sa.Table, columns: Sequence[str], records: Sequence[Mapping[str, Any]]) -> bool:
    return len(records) <= SMALL_BATCH_ROWS and all(isinstance(table.c[c].type, _SMALL_BATCH_TYPES) for c in columns)


def _json_rows(table: sa.Table, columns: Sequence[str], records: Sequence[Mapping[str, Any]]) -> str:
    """The batch as a JSON array of objects: a value is its COPY text as a JSON string, a JSON
    column's value the document itself; NULL is null, or for a JSON column no key at all."""
    fields = []
    for name in columns:
        values = map(operator.itemgetter(name), records)
        prefix = _json_string(name) + ":"
        if isinstance(table.c[name].type, sa.JSON):
            fields.append(["" if v is None else prefix + _json_document(v) for v in values])
        else:
            texts = map(_copy_value, values)
            fields.append([prefix + ("null" if t is None else _json_string(t)) for t in texts])
    return "[" + ",".join("{" + ",".join(filter(None, row)) + "}" for row in zip(*fields, strict=True)) + "]"


def _json_stage(conn, table: sa.Table, columns: Sequence[str]) -> str:
    """The rows of ``_json_rows`` typed as the target's columns (typmods included), as the stage.

    json_populate_record reads a JSON null as SQL NULL, also for a JSON column: a document
    that is the JSON null would be lost, so JSON columns are taken with ``->`` (no key: NULL).
    """
    target = _table_ref(conn, table)
    selected = []
    for name in columns:
        col_type = table.c[name].type
        if isinstance(col_type, sa.JSON):
            json_type = "jsonb" if isinstance(col_type, postgresql.JSONB) else "json"
            literal = "'" + name.replace("'", "''") + "'"
            selected.append(f"CAST(e.value -> {literal} AS {json_type}) AS {_q(conn, name)}")
        else:
            selected.append(f"p.{_q(conn, name)}")
    return (f"(SELECT {', '.join(selected)} FROM json_array_elements(%s::json) AS e, "
            f"json_populate_record(NULL::{target}, e.value) AS p)")


def _upsert_postgres_small(conn, table, columns, records, key, compare, update) -> UpsertCounts:
    target = _table_ref(conn, table)
    merge = _merge_sql(conn, target, _json_stage(conn, table, columns), columns, key, compare, update, lateral=True)
    with conn.connection.dbapi_connection.cursor() as cur:
        cur.execute(merge, (_json_rows(table, columns, records),))
        inserted, updated = cur.fetchone()
    return UpsertCounts(inserted, updated, len(records) - inserted - updated)


def _key_range_is_free(cur, conn, table, target, key, records) -> bool:
    """Whether the target holds no row between the batch's least and greatest key: one index
    descent. Only a hint (Python orders strings by code point, the database by its collation)."""
    if key != [c.name for c in table.primary_key.columns]:
        return False  # the row comparison below is an index range scan only in the index's order
    keys = list(map(operator.itemgetter(*key), records))  # tuples (a scalar for a one-column key), in C
    try:
        low, high = min(keys), max(keys)
    except TypeError:  # mixed types in a key column: no cheap range
        return False
    if len(key) == 1:
        low, high = (low,), (high,)
    row = f"({', '.join(_q(conn, k) for k in key)})"
    params = ", ".join(["%s"] * len(key))
    cur.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {target} WHERE {row} >= ({params}) AND {row} <= ({params}))",
                (*low, *high))
    return cur.fetchone()[0]


def _append_directly(cur, conn, table, *, target, cols, key, records, text) -> bool:
    """COPY a batch of new keys straight into the target, under a savepoint; False (and
    nothing written) when a key was there after all, or came twice in the batch."""
    if not _key_range_is_free(cur, conn, table, target, key, records):
        return False
    cur.execute("SAVEPOINT _sync_append")
    try:
        cur.copy_expert(f"COPY {target} ({cols}) FROM STDIN", text, size=1 << 20)
    except conn.dialect.dbapi.IntegrityError:
        # Mostly a unique violation (a concurrent writer); any other the merge raises again.
        cur.execute("ROLLBACK TO SAVEPOINT _sync_append")
        cur.execute("RELEASE SAVEPOINT _sync_append")
        text.seek(0)
        return False
    cur.execute("RELEASE SAVEPOINT _sync_append")
    return True


def _upsert_postgres_raw(conn, table, columns, records, key, compare, update) -> UpsertCounts:
    target = _table_ref(conn, table)
    stage = f"_sync_stage_{next(_stage_ids)}"
    cols = ", ".join(_q(conn, c) for c in columns)
    dbapi = conn.connection.dbapi_connection
    with dbapi.cursor() as cur:
        with _gc_paused():
            text = _copy_text(table, columns, records)
        # A batch whose keys are all new (a first load, a backfill of an append-only stream)
        # needs no stage and no lookups: every row would be inserted.
        if _append_directly(cur, conn, table, target=target, cols=cols, key=key, records=records, text=text):
            return UpsertCounts(len(records), 0, 0)
        # Same column types as the target, no constraints: the merge below enforces them.
        cur.execute(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA")
        cur.copy_expert(f"COPY {stage} ({cols}) FROM STDIN", text, size=1 << 20)
        # Index lookups into the target whatever its statistics say: a table filling up in
        # one load has stale ones, and a hash join would scan all of it for every batch.
        cur.execute(
            "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin'), "
            "set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"
        )
        hashjoin, mergejoin = cur.fetchone()[:2]
        cur.execute(_merge_sql(conn, target, stage, columns, key, compare, update))
        inserted, updated = cur.fetchone()
        cur.execute("SELECT set_config('enable_hashjoin', %s, true), set_config('enable_mergejoin', %s, true)",
                    (hashjoin, mergejoin))
        cur.execute(f"DROP TABLE {stage}")
    return UpsertCounts(inserted, updated, len(records) - inserted - updated)


# -- SQLite (and any other dialect with UPDATE .. FROM) --------------------------------


def _upsert_generic(conn, table, columns, records, key, compare, update) -> UpsertCounts:
    target = _table_ref(conn, table)
    json_cols = json_columns(table, columns)
    stage_table = sa.Table(
        f"_sync_stage_{next(_stage_ids)}",
        sa.MetaData(),
        # A JSON column's None is SQL NULL, as on Postgres (SQLAlchemy's default writes the
        # JSON text 'null'); the engine's serializer makes the documents jsonb-safe alike.
        *[sa.Column(c, sa.JSON(none_as_null=True) if c in json_cols else table.c[c].type) for c in columns],
        prefixes=["TEMPORARY"],
    )
    stage_table.create(conn)
    try:
        conn.execute(stage_table.insert(), records)
        stage = _q(conn, stage_table.name)
        match = " AND ".join(f"{target}.{_q(conn, k)} = s.{_q(conn, k)}" for k in key)
        updated = 0
        if update and compare:
            assignments = ", ".join(f"{_q(conn, c)} = s.{_q(conn, c)}" for c in update)
            differs = " OR ".join(f"{target}.{_q(conn, c)} IS NOT s.{_q(conn, c)}" for c in compare)
            updated = conn.exec_driver_sql(
                f"UPDATE {target} SET {assignments} FROM {stage} AS s WHERE {match} AND ({differs})"
            ).rowcount
        cols = ", ".join(_q(conn, c) for c in columns)
        exists = " AND ".join(f"t.{_q(conn, k)} = s.{_q(conn, k)}" for k in key)
        inserted = conn.exec_driver_sql(
            f"INSERT INTO {target} ({cols}) SELECT {', '.join('s.' + _q(conn, c) for c in columns)} "
            f"FROM {stage} AS s WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {exists})"
        ).rowcount
    finally:
        stage_table.drop(conn)
    return UpsertCounts(inserted, updated, len(records) - inserted - updated)
