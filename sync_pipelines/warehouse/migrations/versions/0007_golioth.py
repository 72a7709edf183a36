"""Golioth: integrations, devices, one row per telemetry point, its archive, the webhook inbox.

``device_telemetry_history`` is keyed by (``device_id``, ``ts``, ``path``) with ``ts``
normalised to UTC milliseconds, so a point pushed, redelivered and pulled is one row;
``received_via`` keeps the first route. ``golioth_webhook_inbox`` is the receiver's durable
append-only log, drained in ``id`` order by ``golioth_webhook_sensor``. No table holds an API
key: an integration names the environment variable that does (``api_key_env``).

Revision ID: 0007_golioth
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

from sync_pipelines.warehouse.types import JSONType, Timestamp

revision = "0007_golioth"
down_revision = "0001_foundation"
branch_labels = ("golioth",)
depends_on = None


def _telemetry_columns() -> list[sa.Column]:
    return [
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("ts", Timestamp, nullable=False),  # UTC, truncated to milliseconds
        sa.Column("path", sa.String(255), nullable=False),  # first LightDB Stream path segment
        sa.Column("integration_id", sa.String(64), nullable=True),
        sa.Column("project_id", sa.String(128), nullable=True),
        sa.Column("payload", JSONType, nullable=True),
        sa.Column("received_via", sa.String(8), nullable=False),  # pull | push (the first route)
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("synced_at", Timestamp, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "golioth_integrations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("api_key_env", sa.String(128), nullable=False),  # the variable's NAME, never the key
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # active | paused
        sa.Column("frequency_minutes", sa.Integer, nullable=False),
        sa.Column("time_window_start", sa.String(5), nullable=True),  # HH:MM local
        sa.Column("time_window_end", sa.String(5), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("device_filter", JSONType, nullable=True),  # {"tags": [...], "name_pattern": "..."}
        sa.Column("last_run_at", Timestamp, nullable=True),  # start of the last slot a run was requested for
        sa.Column("next_run_at", Timestamp, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("synced_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_golioth_integrations"),
        sa.CheckConstraint("frequency_minutes >= 1", name="ck_golioth_integrations_frequency"),
        sa.CheckConstraint("status IN ('active', 'paused')", name="ck_golioth_integrations_status"),
    )
    op.create_index("ix_golioth_integrations_project", "golioth_integrations", ["project_id"])
    op.create_table(
        "golioth_devices",
        sa.Column("integration_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),  # as Golioth says it (often "-")
        sa.Column("online", sa.Boolean, nullable=True),  # derived from last_report
        sa.Column("enabled", sa.Boolean, nullable=True),
        sa.Column("last_report", Timestamp, nullable=True),
        sa.Column("last_seen", Timestamp, nullable=True),  # newest of lastReport / lastSeenOnline
        sa.Column("firmware_version", sa.String(64), nullable=True),
        sa.Column("firmware_state", sa.String(32), nullable=True),
        sa.Column("hardware_ids", JSONType, nullable=True),
        sa.Column("tag_ids", JSONType, nullable=True),
        sa.Column("vendor_created_at", Timestamp, nullable=True),
        sa.Column("vendor_updated_at", Timestamp, nullable=True),
        sa.Column("deleted_at", Timestamp, nullable=True),  # gone from the project's device list
        sa.Column("raw", JSONType, nullable=True),
        sa.Column("first_seen_at", Timestamp, nullable=False),
        sa.Column("synced_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("integration_id", "device_id", name="pk_golioth_devices"),
    )
    op.create_table(
        "device_telemetry_history",
        *_telemetry_columns(),
        sa.PrimaryKeyConstraint("device_id", "ts", "path", name="pk_device_telemetry_history"),
    )
    op.create_index("ix_device_telemetry_history_ts", "device_telemetry_history", ["ts"])
    op.create_table(
        "device_telemetry_history_archive",
        *_telemetry_columns(),
        sa.Column("archived_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "ts", "path", name="pk_device_telemetry_history_archive"),
    )
    op.create_table(
        "golioth_webhook_inbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True, nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=True),  # Ce-Id (a redelivery repeats it)
        sa.Column("event_type", sa.String(512), nullable=False),  # Ce-Type
        sa.Column("event_time", sa.String(64), nullable=True),  # Ce-Time as sent
        sa.Column("body", JSONType, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_golioth_webhook_inbox"),
    )


def downgrade() -> None:
    op.drop_table("golioth_webhook_inbox")
    op.drop_table("device_telemetry_history_archive")
    op.drop_index("ix_device_telemetry_history_ts", table_name="device_telemetry_history")
    op.drop_table("device_telemetry_history")
    op.drop_table("golioth_devices")
    op.drop_index("ix_golioth_integrations_project", table_name="golioth_integrations")
    op.drop_table("golioth_integrations")
