"""Odoo: an index on the invoice name for the duplicate-name check.

Each invoice batch asks which live invoices hold its names (``name IN (...)``). The
unique (company, move type, name) index cannot answer that, name being its last column,
so without this index every batch read the whole table: quadratic in a full sync.

Revision ID: 0009_odoo_invoice_name_index
Revises: 0005_odoo_line_parent_indexes
"""

from alembic import op

revision = "0009_odoo_invoice_name_index"
down_revision = "0005_odoo_line_parent_indexes"
branch_labels = None
depends_on = None

INDEX = "ix_odoo_invoices_name"


def upgrade() -> None:
    op.create_index(INDEX, "odoo_invoices", ["name"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="odoo_invoices")
