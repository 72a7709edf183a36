"""Benchmark: the warehouse upsert helper against a plain COPY of the same rows into Postgres.

    make bench            # or: python bench/upsert_vs_copy.py --rows 100000 --repeat 3

Every figure is measured in the same run, on the same server, with the same rows:
  floor      plain COPY (text format) of lines built by the simplest fast encoder: one converter
             per column, column by column, "\t".join, escaping only in the columns that can need it
  baseline   plain COPY (CSV, every field through a generic per-value encoder), the old baseline
  fresh      Warehouse.upsert of those rows into an empty table (new keys: COPYed straight in)
  no-change  the same rows upserted again: must report every row unchanged and write 0 tuples
  1% change  the same rows with 1% changed: must update exactly those
Prints rows/s and the ratios to both (targets: fresh within 2x of the floor, no-change within 1.5x).
Needs Postgres at SYNC_BENCH_PG_URL (default postgresql+psycopg2://postgres@127.0.0.1:5432/postgres);
it creates a scratch database and drops it afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import gc
import io
import json
import operator
import os
import statistics
import sys
import time
import tracemalloc
import uuid

import sqlalchemy as sa

from sync_pipelines.warehouse import Warehouse
from sync_pipelines.warehouse.engine import dumps

ADMIN_URL = os.environ.get("SYNC_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
COLUMNS = ["source", "source_id", "manufacturer", "model", "price_krw", "mileage_km", "payload", "listed_at", "synced_at"]
DDL = """CREATE TABLE {name} (
    source text NOT NULL, source_id text NOT NULL, manufacturer text, model text,
    price_krw bigint, mileage_km integer, payload jsonb, listed_at timestamptz,
    synced_at timestamptz NOT NULL, PRIMARY KEY (source, source_id))"""


def make_rows(n: int, change_every: int = 0) -> list[dict]:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    rows = []
    for i in range(n):
        price = 10_000_000 + i * 10_000
        if change_every and i % change_every == 0:
            price += 1
        rows.append(
            {
                "source": "encar" if i % 2 else "kbchachacha",
                "source_id": str(1_000_000 + i),
                "manufacturer": ("현대", "기아", "BMW", "Benz")[i % 4],
                "model": f"Model {i % 97}",
                "price_krw": price,
                "mileage_km": (i * 37) % 250_000,
                "payload": {"photos": i % 20, "region": "서울", "badge": f"B{i % 13}"},
                "listed_at": base + dt.timedelta(minutes=i),
            }
        )
    return rows


def _csv_value(value) -> str | None:
    # The upsert helper's encoder before 2026-12-02, kept as the old baseline.
    if value is None:
        return None
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dict, list)):
        return dumps(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (int, float, decimal.Decimal)):
        return str(value)
    return str(value).replace("\x00", "")


def csv_text(rows: list[dict]) -> io.StringIO:
    lines = []
    for row in rows:
        fields = []
        for c in COLUMNS:
            v = _csv_value(row[c])
            fields.append("" if v is None else '"' + v.replace('"', '""') + '"')
        lines.append(",".join(fields))
    lines.append("")
    return io.StringIO("\n".join(lines))


_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _text_column(values: list) -> list[str]:
    return [
        "\\N" if v is None else v if v.isprintable() and "\\" not in v else v.translate(_TEXT_ESCAPES)
        for v in values
    ]


def _number_column(values: list) -> list[str]:
    return ["\\N" if v is None else str(v) for v in values]


def _json_column(values: list) -> list[str]:
    return ["\\N" if v is None else _json(v).replace("\\", "\\\\") for v in values]


def _timestamp_column(values: list) -> list[str]:
    return ["\\N" if v is None else v.isoformat() for v in values]


FLOOR_ENCODERS = {
    "source": _text_column, "source_id": _text_column, "manufacturer": _text_column, "model": _text_column,
    "price_krw": _number_column, "mileage_km": _number_column, "payload": _json_column,
    "listed_at": _timestamp_column, "synced_at": _timestamp_column,
}


def floor_text(rows: list[dict]) -> io.StringIO:
    # Column by column: the per-value work is an inline expression; the lines are joined in C.
    fields = [FLOOR_ENCODERS[c](list(map(operator.itemgetter(c), rows))) for c in COLUMNS]
    lines = list(map("\t".join, zip(*fields, strict=True)))
    lines.append("")
    return io.StringIO("\n".join(lines))


def plain_copy(engine: sa.Engine, table: str, rows: list[dict], encoding: str) -> tuple[float, float]:
    """Seconds of the whole pass (encoding included) and of the encoding alone."""
    now = dt.datetime.now(dt.timezone.utc)
    stamped = [{**r, "synced_at": now} for r in rows]
    fmt = "csv" if encoding == "csv" else "text"
    start = time.perf_counter()
    if encoding == "csv":
        text = csv_text(stamped)
    else:
        # The upsert helper pauses the garbage collector while it builds a batch; so does the floor.
        gc.disable()
        try:
            text = floor_text(stamped)
        finally:
            gc.enable()
    encoded = time.perf_counter() - start
    with engine.begin() as conn:
        with conn.connection.dbapi_connection.cursor() as cur:
            cur.copy_expert(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT {fmt})", text, size=1 << 20)
    return time.perf_counter() - start, encoded


def tuples_updated(engine: sa.Engine, table: str) -> int:
    """n_tup_upd once every write so far is counted.

    Backends report their counts asynchronously (at most once a second, or as they exit):
    the pool is closed so that the writers' backends flush, then the view is read until it
    has not moved for a second.
    """
    last, stable_since, deadline = None, time.monotonic(), time.monotonic() + 15
    while True:
        engine.dispose()
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            current = int(
                conn.execute(
                    sa.text("SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = :t"), {"t": table}
                ).scalar_one()
            )
        if current != last:
            last, stable_since = current, time.monotonic()
        if time.monotonic() - stable_since >= 1.0 or time.monotonic() > deadline:
            engine.dispose()
            return current
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-targets", action="store_true", help="exit 0 on a missed ratio (smoke test)")
    args = parser.parse_args()

    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    db = f"sync_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    url = sa.engine.make_url(ADMIN_URL).set(database=db).render_as_string(hide_password=False)
    warehouse = Warehouse.for_url(url)
    rows = make_rows(args.rows)
    changed_rows = make_rows(args.rows, change_every=100)
    timings: dict[str, list[float]] = {"floor": [], "copy": [], "fresh": [], "nochange": [], "change1pct": []}
    encode_s: dict[str, list[float]] = {"floor": [], "copy": []}
    checks: list[str] = []
    peak_mb = 0.0
    try:
        for rep in range(args.repeat):
            floor_table, base_table, target = f"floor_{rep}", f"copy_{rep}", f"upsert_{rep}"
            with warehouse.engine.begin() as conn:
                for name in (floor_table, base_table, target):
                    conn.execute(sa.text(DDL.format(name=name)))
            warehouse._tables.pop(target, None)
            for key, table, encoding in (("floor", floor_table, "text"), ("copy", base_table, "csv")):
                total, encoded = plain_copy(warehouse.engine, table, rows, encoding)
                timings[key].append(total)
                encode_s[key].append(encoded)

            start = time.perf_counter()
            fresh = warehouse.upsert(target, rows, batch_size=args.rows)
            timings["fresh"].append(time.perf_counter() - start)
            assert fresh.inserted == args.rows, fresh

            before = tuples_updated(warehouse.engine, target)
            start = time.perf_counter()
            again = warehouse.upsert(target, rows, batch_size=args.rows)
            timings["nochange"].append(time.perf_counter() - start)
            written = tuples_updated(warehouse.engine, target) - before
            checks.append(f"no-change pass {rep + 1}: unchanged={again.unchanged} updated={again.updated} n_tup_upd delta={written}")
            assert again.unchanged == args.rows and again.written == 0 and written == 0, (again, written)

            start = time.perf_counter()
            changed = warehouse.upsert(target, changed_rows, batch_size=args.rows)
            timings["change1pct"].append(time.perf_counter() - start)
            assert changed.updated == len(range(0, args.rows, 100)), changed
            # The counter does move when rows change, so the 0 above is not a stale reading.
            moved = tuples_updated(warehouse.engine, target) - before
            checks.append(f"1% changed pass {rep + 1}: updated={changed.updated} n_tup_upd delta={moved}")
            assert moved == changed.updated, (changed, moved)
        # Memory is measured in a pass of its own: tracemalloc slows Python several-fold.
        with warehouse.engine.begin() as conn:
            conn.execute(sa.text(DDL.format(name="upsert_memory")))
        tracemalloc.start()
        warehouse.upsert("upsert_memory", rows, batch_size=10_000)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    finally:
        warehouse.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()

    floor_s, copy_s = statistics.median(timings["floor"]), statistics.median(timings["copy"])
    print(f"\n{args.rows:,} rows, median of {args.repeat} runs, Postgres at {sa.engine.make_url(ADMIN_URL).host}\n")
    print(f"| {'pass':42s} | {'seconds':>8s} | {'rows/s':>10s} | {'vs floor':>8s} | {'vs CSV COPY':>11s} |")
    print(f"|{'-' * 44}|{'-' * 10}|{'-' * 12}|{'-' * 10}|{'-' * 13}|")
    labels = {
        "floor": "floor: text COPY, fast per-column encoder",
        "copy": "baseline: CSV COPY, generic encoder",
        "fresh": "upsert helper, fresh rows",
        "nochange": "upsert helper, same rows again",
        "change1pct": "upsert helper, 1% rows changed",
    }
    for key, label in labels.items():
        secs = statistics.median(timings[key])
        print(f"| {label:42s} | {secs:8.3f} | {args.rows / secs:10,.0f} | {secs / floor_s:7.2f}x | {secs / copy_s:10.2f}x |")
    print()
    for key in ("floor", "copy"):
        print(f"{labels[key]}: encoding alone {statistics.median(encode_s[key]):.3f} s of it")
    for line in checks:
        print(line)
    print(f"peak Python memory of a fresh {args.rows:,}-row upsert in 10,000-row batches: {peak_mb:.0f} MB (tracemalloc)")
    met = True
    for key, target in (("fresh", 2.0), ("nochange", 1.5)):
        ratio = statistics.median(timings[key]) / floor_s
        met = met and ratio <= target
        verdict = "within" if ratio <= target else "NOT within"
        print(f"{labels[key]}: {ratio:.2f}x the floor, {verdict} the {target}x target "
              f"({statistics.median(timings[key]) / copy_s:.2f}x the CSV baseline)")
    return 0 if met or args.no_targets else 1


if __name__ == "__main__":
    sys.exit(main())
