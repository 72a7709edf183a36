"""Odoo: indexes for bringing archived purchase order lines back with their order.

Each incremental lines sync asks which archived lines belong to orders synced since its
last check: ``odoo_purchase_orders.synced_at`` finds those orders, and
``odoo_purchase_order_lines_archive.order_id`` their archived lines, without reading
either table whole. (The live lines table has had its ``order_id`` index since 0003.)

Revision ID: 0005_odoo_line_parent_indexes
Revises: 0004_odoo_live_invoice_names
"""

from alembic import op

revision = "0005_odoo_line_parent_indexes"
down_revision = "0004_odoo_live_invoice_names"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_odoo_purchase_order_lines_archive_order_id", "odoo_purchase_order_lines_archive", ["order_id"]),
    ("ix_odoo_purchase_orders_synced_at", "odoo_purchase_orders", ["synced_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
