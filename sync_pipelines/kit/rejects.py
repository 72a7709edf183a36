"""Open rejects to read again: the records ``land_batch`` set aside that have not landed yet.

A source whose normal run would not meet a rejected record again (an incremental listing
that reads page 1, a live cursor past the record) asks for its oldest-seen open rejects and
reads each one again; landing it clean resolves it, a record still bad is set aside again
(its ``last_seen_at`` moves, so the next run asks the others first).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from sync_pipelines.warehouse import Warehouse, as_utc
from sync_pipelines.warehouse.store import stored_record_key

# Open rejects one run reads again per entity: a permanent bad record costs at most this
# many re-reads per run, and the rest wait their turn (least recently seen first).
REREAD_REJECTS_PER_RUN = 20


@dataclass(frozen=True)
class OpenReject:
    """A record still set aside in ``sync_rejects``."""

    entity: str
    key: str
    payload: Any
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime


class OpenRejectKeys:
    """The stored keys of one entity's rejects that may be open: those open when the run
    started (one read) and those set aside since. ``land_batch(open_keys=...)`` resolves only
    a batch's keys among them, so a batch with none costs no DELETE. A superset on purpose:
    a key resolved stays (its transaction may yet roll back), a DELETE more at worst."""

    def __init__(self, keys: Iterable[str] = ()):
        self._keys = set(keys)

    @classmethod
    def read(cls, warehouse: Warehouse, source: str, entity: str, conn: sa.Connection | None = None) -> OpenRejectKeys:
        """Every open reject's key, read on ``conn`` when given (a step's reads on one
        connection), else on a connection of its own."""
        rejects = warehouse.table("sync_rejects")
        query = sa.select(rejects.c.record_key).where(rejects.c.source == source, rejects.c.entity == entity)
        if conn is not None:
            return cls(conn.execute(query).scalars())
        with warehouse.engine.connect() as own:  # a read: no write transaction (no SQLite write lock)
            return cls(own.execute(query).scalars())

    def set_aside(self, keys: Iterable[Any]) -> None:
        self._keys.update(stored_record_key(k) for k in keys)

    def among(self, keys: Iterable[Any]) -> list[Any]:
        """Those of ``keys`` (as the batch names them) that may have an open reject."""
        if not self._keys:
            return []
        return [k for k in keys if stored_record_key(k) in self._keys]


def open_rejects(
    warehouse: Warehouse, source: str, entity: str, *, limit: int = REREAD_REJECTS_PER_RUN,
    key_prefix: str | None = None,
) -> list[OpenReject]:
    """Up to ``limit`` open rejects of ``source``/``entity``, least recently seen first
    (``key_prefix``: only keys starting with it)."""
    if limit <= 0:
        return []
    rejects = warehouse.table("sync_rejects")
    query = (
        sa.select(rejects.c.entity, rejects.c.record_key, rejects.c.payload, rejects.c.first_seen_at,
                  rejects.c.last_seen_at)
        .where(rejects.c.source == source, rejects.c.entity == entity)
        .order_by(rejects.c.last_seen_at, rejects.c.record_key)
        .limit(limit)
    )
    if key_prefix:
        query = query.where(rejects.c.record_key.startswith(key_prefix, autoescape=True))
    with warehouse.engine.connect() as conn:
        return [
            OpenReject(r.entity, r.record_key, r.payload, as_utc(r.first_seen_at), as_utc(r.last_seen_at))
            for r in conn.execute(query)
        ]
