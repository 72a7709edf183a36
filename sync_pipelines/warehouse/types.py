"""Column types shared by migrations: one definition that fits SQLite and Postgres."""

from __future__ import annotations

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
