"""Foundation: per-source cursors (sync_state) and set-aside records (sync_rejects).

Revision ID: 0001_foundation
Revises:
"""

import sqlalchemy as sa
from alembic import op

from sync_pipelines.warehouse.types import JSONType, Timestamp

revision = "0001_foundation"
down_revision = None
branch_labels = ("foundation",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_state",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(128), nullable=False),
        # JSON-encoded cursor (a timestamp, a (write_date, id) pair, a page number...)
        sa.Column("cursor", sa.Text, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("synced_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("source", "entity", name="pk_sync_state"),
    )
    op.create_table(
        "sync_rejects",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("record_key", sa.String(512), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", JSONType, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("first_seen_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.Column("synced_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("source", "entity", "record_key", name="pk_sync_rejects"),
    )


def downgrade() -> None:
    op.drop_table("sync_rejects")
    op.drop_table("sync_state")
