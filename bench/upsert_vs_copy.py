"""Benchmark: the warehouse upsert helper against a plain COPY of the same rows into Postgres.

    make bench            # or: python bench/upsert_vs_copy.py --rows 100000 --repeat 3

Every figure is measured in the same run, on the same server, with the same rows:
  baseline   plain COPY (psycopg2 copy_expert, CSV) into an empty table with the same primary key
  fresh      Warehouse.upsert of those rows into an empty table (staged COPY + INSERT .. ON CONFLICT)
  no-change  the same rows upserted again: must report every row unchanged and write 0 tuples
  1% change  the same rows with 1% changed: must update exactly those
Prints rows/s and the ratio to the baseline (target: fresh within 2x of COPY).
Needs Postgres at SYNC_BENCH_PG_URL (default postgresql+psycopg2://postgres@127.0.0.1:5432/postgres);
it creates a scratch database and drops it afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import tracemalloc
import uuid

import sqlalchemy as sa

from sync_pipelines.warehouse import Warehouse
from sync_pipelines.warehouse.upsert import _copy_csv

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


def plain_copy(engine: sa.Engine, table: str, rows: list[dict]) -> float:
    now = dt.datetime.now(dt.timezone.utc)
    stamped = [{**r, "synced_at": now} for r in rows]
    start = time.perf_counter()
    with engine.begin() as conn:
        with conn.connection.dbapi_connection.cursor() as cur:
            cur.copy_expert(
                f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)", _copy_csv(COLUMNS, stamped)
            )
    return time.perf_counter() - start


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
    args = parser.parse_args()

    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    db = f"sync_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    url = sa.engine.make_url(ADMIN_URL).set(database=db).render_as_string(hide_password=False)
    warehouse = Warehouse.for_url(url)
    rows = make_rows(args.rows)
    changed_rows = make_rows(args.rows, change_every=100)
    timings: dict[str, list[float]] = {"copy": [], "fresh": [], "nochange": [], "change1pct": []}
    checks: list[str] = []
    peak_mb = 0.0
    try:
        for rep in range(args.repeat):
            base_table, target = f"copy_{rep}", f"upsert_{rep}"
            with warehouse.engine.begin() as conn:
                conn.execute(sa.text(DDL.format(name=base_table)))
                conn.execute(sa.text(DDL.format(name=target)))
            warehouse._tables.pop(target, None)
            timings["copy"].append(plain_copy(warehouse.engine, base_table, rows))

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

    copy_s = statistics.median(timings["copy"])
    print(f"\n{args.rows:,} rows, median of {args.repeat} runs, Postgres at {sa.engine.make_url(ADMIN_URL).host}\n")
    print(f"| {'pass':38s} | {'seconds':>8s} | {'rows/s':>10s} | {'vs COPY':>8s} |")
    print(f"|{'-' * 40}|{'-' * 10}|{'-' * 12}|{'-' * 10}|")
    labels = {
        "copy": "baseline: plain COPY into empty table",
        "fresh": "upsert helper, fresh rows",
        "nochange": "upsert helper, same rows again",
        "change1pct": "upsert helper, 1% rows changed",
    }
    for key, label in labels.items():
        secs = statistics.median(timings[key])
        print(f"| {label:38s} | {secs:8.3f} | {args.rows / secs:10,.0f} | {secs / copy_s:7.2f}x |")
    print()
    for line in checks:
        print(line)
    print(f"peak Python memory of a fresh {args.rows:,}-row upsert in 10,000-row batches: {peak_mb:.0f} MB (tracemalloc)")
    ratio = statistics.median(timings["fresh"]) / copy_s
    verdict = "within" if ratio <= 2 else "NOT within"
    print(f"fresh upsert is {ratio:.2f}x a plain COPY: {verdict} the 2x target")
    return 0 if ratio <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
