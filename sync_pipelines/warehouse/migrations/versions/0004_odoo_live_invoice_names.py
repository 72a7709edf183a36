"""Odoo: the unique invoice name holds among live invoices only.

A row marked ``deleted_at`` (gone from Odoo) no longer holds its (company, move type,
name): Odoo hands a deleted draft's number to the next invoice, which would otherwise be
set aside as a duplicate until the archive job moves the deleted row, up to 30 days later
(the old setup's "latest invoices missing"). Drafts named ``/`` still never conflict.

Revision ID: 0004_odoo_live_invoice_names
Revises: 0003_odoo
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_odoo_live_invoice_names"
down_revision = "0003_odoo"
branch_labels = None
depends_on = None

INDEX = "uq_odoo_invoices_company_move_type_name"
COLUMNS = ["company_id", "move_type", "name"]


def _create(where: str) -> None:
    op.create_index(
        INDEX, "odoo_invoices", COLUMNS, unique=True, postgresql_where=sa.text(where), sqlite_where=sa.text(where)
    )


def upgrade() -> None:
    op.drop_index(INDEX, table_name="odoo_invoices")
    _create("name <> '/' AND deleted_at IS NULL")


def downgrade() -> None:
    op.drop_index(INDEX, table_name="odoo_invoices")
    _create("name <> '/'")
