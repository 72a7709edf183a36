"""Odoo schema: the lookup indexes the syncs rely on, fresh and upgraded, on SQLite and Postgres."""

from __future__ import annotations

import sqlalchemy as sa

from sync_pipelines.warehouse import migrate
from sync_pipelines.warehouse.engine import create_warehouse_engine

# (table, columns) the syncs look rows up by: archived lines by order, orders by sync time,
# live invoices by name (the duplicate-name check)
LOOKUPS = {
    ("odoo_purchase_order_lines", ("order_id",)),
    ("odoo_purchase_order_lines_archive", ("order_id",)),
    ("odoo_purchase_orders", ("synced_at",)),
    ("odoo_invoices", ("name",)),
}


def _indexed(engine: sa.Engine) -> set[tuple[str, tuple[str, ...]]]:
    inspector = sa.inspect(engine)
    return {
        (table, tuple(index["column_names"]))
        for table in {t for t, _ in LOOKUPS}
        for index in inspector.get_indexes(table)
    }


def test_a_fresh_database_has_the_line_and_order_lookup_indexes(database_url: str):
    engine = create_warehouse_engine(database_url)
    migrate.upgrade(engine)
    assert LOOKUPS <= _indexed(engine)
    engine.dispose()


def test_an_upgrade_from_0004_adds_them_and_a_downgrade_removes_them(database_url: str):
    engine = create_warehouse_engine(database_url)
    migrate.upgrade(engine, "0004_odoo_live_invoice_names")
    assert LOOKUPS - _indexed(engine) == {
        ("odoo_purchase_order_lines_archive", ("order_id",)),
        ("odoo_purchase_orders", ("synced_at",)),
        ("odoo_invoices", ("name",)),
    }
    migrate.upgrade(engine)
    assert "0009_odoo_invoice_name_index" in migrate.current_revisions(engine)
    assert LOOKUPS <= _indexed(engine)
    migrate.downgrade(engine, "0004_odoo_live_invoice_names")
    assert ("odoo_purchase_order_lines", ("order_id",)) in _indexed(engine)
    assert not (LOOKUPS - {("odoo_purchase_order_lines", ("order_id",))}) & _indexed(engine)
    engine.dispose()
