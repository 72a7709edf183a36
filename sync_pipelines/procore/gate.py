"""The start-rate gate: at most N connections start syncing in any 60 seconds.

Dagster's run queue bounds how many runs are in flight (tag limits) but has no rate: when
one tick queues 25 runs and they are quick, the queue would start all 25 within a minute.
So the first step of each run takes a start slot here before calling Procore. Slots are
the ``sync_started_at`` stamps of ``procore_connections``, counted and stamped in one
transaction under a lock (Postgres: a transaction-level advisory lock; SQLite: the write
lock its IMMEDIATE transactions take), so concurrent runs in any process share one count.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import sqlalchemy as sa

from sync_pipelines.warehouse import Warehouse, utcnow

WINDOW_SECONDS = 60.0
_PG_GATE_LOCK_ID = 0x9C0E5


def try_start(warehouse: Warehouse, user_id: str, limit: int, now: dt.datetime) -> float:
    """Take a start slot at ``now`` (returns 0) or say how long until one frees (seconds)."""
    t = warehouse.table("procore_connections")
    with warehouse.transaction() as tx:
        if tx.conn.dialect.name == "postgresql":
            tx.conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_GATE_LOCK_ID})")
        since = now - dt.timedelta(seconds=WINDOW_SECONDS)
        started = sorted(
            s if s.tzinfo else s.replace(tzinfo=dt.timezone.utc)
            for s in tx.conn.execute(
                sa.select(t.c.sync_started_at).where(t.c.sync_started_at > since, t.c.user_id != user_id)
            ).scalars()
        )
        if len(started) < limit:
            tx.conn.execute(t.update().where(t.c.user_id == user_id).values(sync_started_at=now))
            return 0.0
        frees_at = started[len(started) - limit] + dt.timedelta(seconds=WINDOW_SECONDS)
        return max(0.01, (frees_at - now).total_seconds())


def wait_for_start_slot(
    warehouse: Warehouse, user_id: str, limit: int, *,
    clock: Callable[[], dt.datetime] = utcnow, sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Block until this connection may start; returns the seconds waited."""
    waited = 0.0
    while True:
        wait = try_start(warehouse, user_id, limit, clock())
        if not wait:
            return waited
        sleep(wait)
        waited += wait
