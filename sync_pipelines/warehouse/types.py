"""Column types shared by migrations (one definition that fits SQLite and Postgres), and
:func:`as_utc`, the one UTC helper."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# JSONB on Postgres (it has equality, so IS DISTINCT FROM works; json does not);
# canonical JSON text on SQLite.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# Always timezone-aware on Postgres (timestamptz). SQLite has no zone: values are stored
# as UTC, which the upsert helper guarantees by converting aware datetimes to UTC.
Timestamp = sa.DateTime(timezone=True)

# Money and quantities: exact decimals, never floats.
Money = sa.Numeric(18, 2)
Quantity = sa.Numeric(18, 4)


def as_utc(value: Any) -> Any:
    """An aware UTC datetime; a naive one (as SQLite gives timestamps back) is read as UTC.
    Anything that is not a datetime is returned as it is."""
    if not isinstance(value, dt.datetime):
        return value
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
