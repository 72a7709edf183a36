"""Cars source: the unified `cars` table (Encar + KB Chachacha) and `cars_archive`.

Revision ID: 0002_cars
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

from sync_pipelines.warehouse.types import Timestamp

revision = "0002_cars"
down_revision = "0001_foundation"
branch_labels = ("cars",)
depends_on = None


def _car_columns() -> list[sa.Column]:
    return [
        sa.Column("source", sa.String(32), nullable=False),  # encar | kbchachacha
        sa.Column("source_id", sa.String(64), nullable=False),  # Encar Id / KB carSeq
        sa.Column("manufacturer", sa.String(128), nullable=True),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("badge", sa.String(256), nullable=True),
        sa.Column("badge_detail", sa.String(256), nullable=True),
        sa.Column("title", sa.String(512), nullable=True),
        sa.Column("year_month", sa.Integer, nullable=True),  # YYYYMM
        sa.Column("mileage_km", sa.Integer, nullable=True),
        sa.Column("price_krw", sa.BigInteger, nullable=True),  # vendor price (10,000 KRW) x 10,000
        sa.Column("fuel_type", sa.String(64), nullable=True),
        sa.Column("transmission", sa.String(64), nullable=True),
        sa.Column("region", sa.String(128), nullable=True),
        sa.Column("url", sa.String(1024), nullable=True),
        sa.Column("photo_url", sa.String(1024), nullable=True),
        sa.Column("vendor_modified_at", Timestamp, nullable=True),  # Encar ModifiedDate (KST -> UTC)
        sa.Column("sale_status", sa.String(16), nullable=False),  # active | reserved | sold
        sa.Column("sold_at", Timestamp, nullable=True),  # when we first confirmed the sale
        sa.Column("first_seen_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        # when the vendor's per-car status was last asked (round-robin of incremental runs)
        sa.Column("status_checked_at", Timestamp, nullable=True),
        sa.Column("synced_at", Timestamp, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "cars",
        *_car_columns(),
        sa.PrimaryKeyConstraint("source", "source_id", name="pk_cars"),
        sa.CheckConstraint("sale_status IN ('active', 'reserved', 'sold')", name="ck_cars_sale_status"),
    )
    op.create_index("ix_cars_status_sold_at", "cars", ["sale_status", "sold_at"])
    op.create_index("ix_cars_source_status_checked", "cars", ["source", "status_checked_at"])
    op.create_table(
        "cars_archive",
        *_car_columns(),
        sa.Column("archived_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id", name="pk_cars_archive"),
    )


def downgrade() -> None:
    op.drop_table("cars_archive")
    op.drop_index("ix_cars_source_status_checked", table_name="cars")
    op.drop_index("ix_cars_status_sold_at", table_name="cars")
    op.drop_table("cars")
