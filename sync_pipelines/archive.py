"""Move rows a source has ended from a live table to its archive table, losing nothing.

One archive run is ONE transaction, which the caller opens and passes in (a source may move
several tables together): :func:`archive_rows` selects rows past retention in bounded
batches, upserts them into the archive with ``archived_at`` and deletes them from the live
table; a crash rolls everything back, so every row is in exactly one of the two tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from dagster import Config
from pydantic import Field

from sync_pipelines.warehouse import WarehouseTransaction, utcnow


class ArchiveConfig(Config):
    """Run config every archive op shares; each source adds its retention field."""

    as_of: str | None = Field(
        default=None, description="ISO date-time the retention is measured from (default: now, UTC); for backfills"
    )

    def as_of_time(self) -> dt.datetime:
        return parse_as_of(self.as_of)


def parse_as_of(value: str | None) -> dt.datetime:
    """An ISO date or date-time (UTC when it names no zone), as UTC; now when empty.

    Converted to UTC because SQLite compares timestamps as text: an offset kept
    as given (``+09:00``) would compare against stored UTC values by string.
    """
    if not value:
        return utcnow()
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"as_of must be an ISO date or date-time, got {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


@dataclass
class ArchiveResult:
    moved: int = 0
    batches: int = 0
    keys_sample: list[tuple] = field(default_factory=list)


def archive_rows(
    tx: WarehouseTransaction,
    *,
    table: str,
    archive_table: str,
    where: Callable[[sa.Table], sa.ColumnElement[bool]],
    archived_at: dt.datetime | None = None,
    batch_size: int = 5_000,
) -> ArchiveResult:
    """Move every row of ``table`` matching ``where(table)`` into ``archive_table``, inside
    ``tx`` (committed or rolled back by the caller, with whatever else it did in it)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    live = tx.table(table)
    archive = tx.table(archive_table)
    key = [c.name for c in live.primary_key.columns]
    shared = [c.name for c in live.columns if c.name in archive.c]
    stamp = archived_at or utcnow()
    result = ArchiveResult()
    while True:
        query = (
            sa.select(*[live.c[c] for c in shared])
            .where(where(live))
            .order_by(*[live.c[k] for k in key])
            .limit(batch_size)
        )
        if tx.conn.dialect.name == "postgresql":
            # Held until the caller commits; rows another transaction holds (a sync writing
            # them right now) are left for the next archive run instead of waited for.
            query = query.with_for_update(skip_locked=True)
        rows = [dict(r._mapping) for r in tx.execute(query)]
        if not rows:
            return result
        for row in rows:
            row["archived_at"] = stamp
        # stamp_column=None: the archive keeps the row's own synced_at.
        tx.upsert(archive_table, rows, key=key, stamp_column=None)
        keys = [tuple(r[k] for k in key) for r in rows]
        deleted = tx.execute(live.delete().where(sa.tuple_(*[live.c[k] for k in key]).in_(keys))).rowcount
        if deleted != len(rows):
            # The next select would find the rows not deleted again and loop on them.
            raise RuntimeError(
                f"archiving {table}: deleted {deleted} of the {len(rows)} rows just copied to {archive_table}; "
                "rolling back"
            )
        result.moved += len(rows)
        result.batches += 1
        if len(result.keys_sample) < 20:
            result.keys_sample.extend(keys[: 20 - len(result.keys_sample)])
