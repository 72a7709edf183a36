"""Procore: per-user OAuth connections (tokens encrypted at rest), companies, projects, RFIs.

``procore_connections`` holds one row per user: the Fernet-encrypted token pair, its expiry,
a ``token_version`` bumped by every refresh (so a refresher that waited on the row lock sees
that another one already refreshed), ``status`` (active / needs_reauth / disconnected) and
the sync start stamp the start-rate gate counts. Data tables are keyed by Procore ``id``
and carry ``updated_at`` (the incremental cursor field), ``deleted_at`` (set by a full sync
when Procore no longer returns the record), ``raw`` and ``synced_at``.

Revision ID: 0006_procore
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

from sync_pipelines.warehouse.types import JSONType, Timestamp

revision = "0006_procore"
down_revision = "0001_foundation"
branch_labels = ("procore",)
depends_on = None


def _record_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at", Timestamp, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=True),
        sa.Column("deleted_at", Timestamp, nullable=True),
        sa.Column("raw", JSONType, nullable=True),
        sa.Column("synced_at", Timestamp, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "procore_connections",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("user_login", sa.String(256), nullable=True),
        sa.Column("company_id", sa.BigInteger, nullable=True),
        sa.Column("access_token_encrypted", sa.Text, nullable=True),
        sa.Column("refresh_token_encrypted", sa.Text, nullable=True),
        sa.Column("expires_at", Timestamp, nullable=True),
        sa.Column("token_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("connected_at", Timestamp, nullable=False),
        sa.Column("refreshed_at", Timestamp, nullable=True),
        sa.Column("sync_started_at", Timestamp, nullable=True),
        sa.Column("last_sync_at", Timestamp, nullable=True),
        sa.Column("synced_at", Timestamp, nullable=False),
    )
    op.create_index("ix_procore_connections_status", "procore_connections", ["status"])
    op.create_table(
        "procore_companies",
        *_record_columns(),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("is_active", sa.Boolean, nullable=True),
    )
    op.create_table(
        "procore_projects",
        *_record_columns(),
        sa.Column("company_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("project_number", sa.String(128), nullable=True),
        sa.Column("active", sa.Boolean, nullable=True),
    )
    op.create_index("ix_procore_projects_company_id", "procore_projects", ["company_id"])
    op.create_table(
        "procore_rfis",
        *_record_columns(),
        sa.Column("project_id", sa.BigInteger, nullable=False),
        sa.Column("company_id", sa.BigInteger, nullable=True),
        sa.Column("number", sa.String(64), nullable=True),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("due_date", sa.Date, nullable=True),
    )
    op.create_index("ix_procore_rfis_project_id", "procore_rfis", ["project_id"])


def downgrade() -> None:
    for table in ("procore_rfis", "procore_projects", "procore_companies", "procore_connections"):
        op.drop_table(table)
