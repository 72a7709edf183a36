"""What the Odoo source syncs: one :class:`ModelSpec` per synced Odoo model, plus env knobs.

Everything model-specific (Odoo model name, fields read, base domain, destination table,
which rows the archive job may move) lives here, so the client, assets, sensor and archive
op are generic over models. Environment variables are read at call time, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync_pipelines.settings import env, env_flag, env_number

SOURCE = "odoo"

# Odoo's "invoice" move types (account.move.is_invoice(include_receipts=True)); journal
# entries (``entry``) are accounting moves, not invoices, and are not synced.
INVOICE_MOVE_TYPES = ("out_invoice", "out_refund", "in_invoice", "in_refund", "out_receipt", "in_receipt")

# Keyset order of every read: write_date first, id to break ties within one second.
KEYSET_ORDER = "write_date asc, id asc"

DEFAULT_BATCH_SIZE = 100
DEFAULT_DELAY_MS = 100
# Incremental reads start this many seconds before the saved cursor. Odoo stamps
# write_date at transaction start, so a record can become visible after a later-stamped one
# was read; re-reading a short window catches it, and the upsert makes the re-read free.
DEFAULT_OVERLAP_SECONDS = 60
DEFAULT_ARCHIVE_RETENTION_DAYS = 30


@dataclass(frozen=True)
class ModelSpec:
    entity: str  # sync_state / sync_rejects entity, and the short name in docs
    model: str  # Odoo model
    table: str  # destination table (CONTRACT.md section 3); also the asset name
    fields: tuple[str, ...]  # fields read with search_read (id and write_date always)
    sync_type: str  # AUTO_SYNC_TYPES value that selects it
    domain: tuple = ()  # base domain, ANDed with the keyset domain
    include_archived: bool = False  # context active_test=False (archived records too)
    cancellable: bool = False  # has state 'cancel': the archive job moves old cancelled rows
    # (parent table, column holding the parent's id): rows belong to a parent record, leave
    # the live table when it is archived and come back when it is live again
    archived_with: tuple[str, str] | None = None
    description: str = ""

    @property
    def asset_name(self) -> str:
        return self.table

    @property
    def archive_table(self) -> str:
        return f"{self.table}_archive"

    @property
    def context(self) -> dict:
        return {"active_test": False} if self.include_archived else {}


INVOICES = ModelSpec(
    entity="invoices",
    model="account.move",
    table="odoo_invoices",
    sync_type="invoices",
    fields=(
        "name", "move_type", "state", "payment_state", "partner_id", "invoice_date", "invoice_date_due",
        "ref", "invoice_origin", "amount_untaxed", "amount_tax", "amount_total", "amount_residual",
        "currency_id", "company_id", "create_date", "write_date",
    ),
    domain=(("move_type", "in", list(INVOICE_MOVE_TYPES)),),
    cancellable=True,
    description="Customer and vendor invoices, refunds and receipts (account.move), every state.",
)
PURCHASE_ORDERS = ModelSpec(
    entity="purchase_orders",
    model="purchase.order",
    table="odoo_purchase_orders",
    sync_type="purchases",
    fields=(
        "name", "state", "partner_id", "date_order", "date_approve", "amount_untaxed", "amount_total",
        "currency_id", "company_id", "create_date", "write_date",
    ),
    cancellable=True,
    description="Purchase orders (purchase.order), every state.",
)
PURCHASE_ORDER_LINES = ModelSpec(
    entity="purchase_order_lines",
    model="purchase.order.line",
    table="odoo_purchase_order_lines",
    sync_type="purchases",
    fields=(
        "order_id", "product_id", "name", "product_qty", "qty_received", "qty_invoiced", "price_unit",
        "price_subtotal", "date_planned", "state", "company_id", "create_date", "write_date",
    ),
    # A line never outlives its order in the live table: the archive job moves an order's
    # lines right after the order (cancelled past retention or deleted in Odoo).
    archived_with=("odoo_purchase_orders", "order_id"),
    description="Purchase order lines (purchase.order.line) with qty_received, which changes after ordering.",
)
SALE_ORDERS = ModelSpec(
    entity="sale_orders",
    model="sale.order",
    table="odoo_sale_orders",
    sync_type="sales",
    fields=(
        "name", "state", "partner_id", "date_order", "invoice_status", "amount_untaxed", "amount_total",
        "currency_id", "company_id", "create_date", "write_date",
    ),
    cancellable=True,
    description="Sale orders (sale.order), every state.",
)
PRODUCTS = ModelSpec(
    entity="products",
    model="product.product",
    table="odoo_products",
    sync_type="products",
    fields=(
        "name", "default_code", "barcode", "active", "list_price", "standard_price", "categ_id", "uom_id",
        "company_id", "create_date", "write_date",
    ),
    include_archived=True,
    description="Products (product.product), archived ones included (active=false).",
)
STOCK_QUANTS = ModelSpec(
    entity="stock_quants",
    model="stock.quant",
    table="odoo_stock_quants",
    sync_type="inventory",
    fields=(
        "product_id", "location_id", "lot_id", "quantity", "reserved_quantity", "company_id",
        "create_date", "write_date",
    ),
    description="On-hand stock per product and location (stock.quant).",
)

MODEL_SPECS: tuple[ModelSpec, ...] = (
    INVOICES, PURCHASE_ORDERS, PURCHASE_ORDER_LINES, SALE_ORDERS, PRODUCTS, STOCK_QUANTS,
)
SPECS_BY_ENTITY = {spec.entity: spec for spec in MODEL_SPECS}
SPECS_BY_TABLE = {spec.table: spec for spec in MODEL_SPECS}
SYNC_TYPES = ("invoices", "purchases", "sales", "products", "inventory")


def specs_for_types(types: str | list[str] | tuple[str, ...] | None) -> list[ModelSpec]:
    """The model specs selected by sync types (``"invoices,purchases"``); all when empty.

    Entity and table names are accepted too (``purchase_order_lines``, ``odoo_products``).
    """
    if isinstance(types, str):
        types = [t.strip() for t in types.split(",")]
    wanted = [t for t in (types or []) if t]
    if not wanted or "all" in wanted:
        return list(MODEL_SPECS)
    known = set(SYNC_TYPES) | set(SPECS_BY_ENTITY) | set(SPECS_BY_TABLE)
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise ValueError(f"unknown Odoo sync type(s) {unknown}; known: {', '.join(SYNC_TYPES)} (or entity names)")
    return [
        spec for spec in MODEL_SPECS
        if spec.sync_type in wanted or spec.entity in wanted or spec.table in wanted
    ]


def auto_sync_specs() -> list[ModelSpec]:
    """What scheduled and sensor-triggered runs sync: ``AUTO_SYNC_TYPES`` (default: all)."""
    return specs_for_types(env("AUTO_SYNC_TYPES"))


def auto_sync_enabled() -> bool:
    """``AUTO_SYNC_ENABLED`` (the old setup's switch, default on): ``false`` makes the schedule
    and the changes sensor skip their ticks (with a reason in the UI) without a code change;
    manual launches still run. Stopping them in the UI does the same per deployment."""
    return env_flag("AUTO_SYNC_ENABLED", True)


def default_batch_size() -> int:
    """Records per search_read batch: ``ODOO_INVOICE_BATCH_SIZE`` (the old setup's knob), default 100."""
    return int(env_number("ODOO_INVOICE_BATCH_SIZE", DEFAULT_BATCH_SIZE, minimum=1, integer=True))


def default_delay_ms() -> int:
    """Pause between batches: ``ODOO_INVOICE_DELAY_MS`` (the old setup's knob), default 100 ms."""
    return int(env_number("ODOO_INVOICE_DELAY_MS", DEFAULT_DELAY_MS, integer=True))
