"""Odoo: invoices, purchase orders and lines, sale orders, products, stock quants, and their archives.

Every table is keyed by the Odoo record ``id`` and carries ``write_date`` (the incremental
cursor field), ``deleted_at`` (set by a full sync when the record is gone from Odoo),
``synced_at`` and ``raw`` (the record as Odoo sent it). Invoice names are unique per
(company, move type) except the draft placeholder ``/`` (CONTRACT.md section 3).

Revision ID: 0003_odoo
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

from sync_pipelines.warehouse.types import JSONType, Money, Quantity, Timestamp

revision = "0003_odoo"
down_revision = "0001_foundation"
branch_labels = ("odoo",)
depends_on = None


def _ref(name: str, with_name: bool = True) -> list[sa.Column]:
    """A many2one: its id, and its display name when useful."""
    cols = [sa.Column(f"{name}_id", sa.BigInteger, nullable=True)]
    if with_name:
        cols.append(sa.Column(f"{name}_name", sa.Text, nullable=True))
    return cols


# Frozen here (not imported from the package): a migration must not change when code does.
COLUMNS = {
    "odoo_invoices": lambda: [
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("move_type", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("payment_state", sa.String(32), nullable=True),
        sa.Column("invoice_date", sa.Date, nullable=True),
        sa.Column("invoice_date_due", sa.Date, nullable=True),
        sa.Column("ref", sa.Text, nullable=True),
        sa.Column("invoice_origin", sa.Text, nullable=True),
        sa.Column("amount_untaxed", Money, nullable=True),
        sa.Column("amount_tax", Money, nullable=True),
        sa.Column("amount_total", Money, nullable=True),
        sa.Column("amount_residual", Money, nullable=True),
        *_ref("partner"),
        *_ref("currency", with_name=False),
        sa.Column("currency", sa.String(16), nullable=True),
        *_ref("company", with_name=False),
    ],
    "odoo_purchase_orders": lambda: [
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("state", sa.String(32), nullable=True),
        sa.Column("date_order", Timestamp, nullable=True),
        sa.Column("date_approve", Timestamp, nullable=True),
        sa.Column("amount_untaxed", Money, nullable=True),
        sa.Column("amount_total", Money, nullable=True),
        *_ref("partner"),
        *_ref("currency", with_name=False),
        sa.Column("currency", sa.String(16), nullable=True),
        *_ref("company", with_name=False),
    ],
    "odoo_purchase_order_lines": lambda: [
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("state", sa.String(32), nullable=True),
        sa.Column("product_qty", Quantity, nullable=True),
        sa.Column("qty_received", Quantity, nullable=True),
        sa.Column("qty_invoiced", Quantity, nullable=True),
        sa.Column("price_unit", Quantity, nullable=True),
        sa.Column("price_subtotal", Money, nullable=True),
        sa.Column("date_planned", Timestamp, nullable=True),
        *_ref("order", with_name=False),
        *_ref("product"),
        *_ref("company", with_name=False),
    ],
    "odoo_sale_orders": lambda: [
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("state", sa.String(32), nullable=True),
        sa.Column("date_order", Timestamp, nullable=True),
        sa.Column("invoice_status", sa.String(32), nullable=True),
        sa.Column("amount_untaxed", Money, nullable=True),
        sa.Column("amount_total", Money, nullable=True),
        *_ref("partner"),
        *_ref("currency", with_name=False),
        sa.Column("currency", sa.String(16), nullable=True),
        *_ref("company", with_name=False),
    ],
    "odoo_products": lambda: [
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("default_code", sa.String(128), nullable=True),
        sa.Column("barcode", sa.String(128), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("list_price", Money, nullable=True),
        sa.Column("standard_price", Quantity, nullable=True),
        sa.Column("categ_id", sa.BigInteger, nullable=True),
        sa.Column("category_name", sa.Text, nullable=True),
        *_ref("uom"),
        *_ref("company", with_name=False),
    ],
    "odoo_stock_quants": lambda: [
        sa.Column("quantity", Quantity, nullable=True),
        sa.Column("reserved_quantity", Quantity, nullable=True),
        *_ref("product"),
        *_ref("location"),
        *_ref("lot"),
        *_ref("company", with_name=False),
    ],
}


def _common() -> list[sa.Column]:
    return [
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("write_date", Timestamp, nullable=False),
        sa.Column("create_date", Timestamp, nullable=True),
        sa.Column("deleted_at", Timestamp, nullable=True),
        sa.Column("raw", JSONType, nullable=True),
        sa.Column("synced_at", Timestamp, nullable=False),
    ]


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        op.create_table(table, *_common(), *columns())
        op.create_index(f"ix_{table}_write_date", table, ["write_date", "id"])
        # Archive: the same columns plus when the row was moved (archive op, issue 4).
        op.create_table(
            f"{table}_archive",
            *_common(),
            *columns(),
            sa.Column("archived_at", Timestamp, nullable=False),
        )
    # The contract's guard against duplicate invoices: one (company, move type, name) per
    # invoice, except drafts, which all share the placeholder name "/".
    op.create_index(
        "uq_odoo_invoices_company_move_type_name",
        "odoo_invoices",
        ["company_id", "move_type", "name"],
        unique=True,
        postgresql_where=sa.text("name <> '/'"),
        sqlite_where=sa.text("name <> '/'"),
    )
    op.create_index("ix_odoo_purchase_order_lines_order_id", "odoo_purchase_order_lines", ["order_id"])


def downgrade() -> None:
    for table in reversed(list(COLUMNS)):
        op.drop_table(f"{table}_archive")
        op.drop_table(table)
