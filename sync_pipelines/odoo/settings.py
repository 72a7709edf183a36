"""What the Odoo source syncs: one :class:`ModelSpec` per synced Odoo model, plus env knobs.

Everything model-specific (Odoo model name, its fields with their parsers and columns, base
domain, destination table, which rows the archive job may move, model rules such as the
invoice names') lives here, so the client, sync, assets, sensor and archive op are generic
over models. Environment variables are read at call time, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sync_pipelines.odoo.invoice_names import UniqueInvoiceNames
from sync_pipelines.odoo.models import (
    Column,
    Filler,
    Many2one,
    Required,
    boolean,
    company,
    currency,
    date,
    datetime,
    field_names,
    money,
    quantity,
    row_fillers,
    text,
)
from sync_pipelines.odoo.rules import NO_RULES, ModelRules
from sync_pipelines.settings import env, env_flag, env_number

SOURCE = "odoo"

# Odoo's "invoice" move types (account.move.is_invoice(include_receipts=True)); journal
# entries (``entry``) are accounting moves, not invoices, and are not synced.
INVOICE_MOVE_TYPES = ("out_invoice", "out_refund", "in_invoice", "in_refund", "out_receipt", "in_receipt")

# Keyset order of every read: write_date first, id to break ties within one second.
KEYSET_ORDER = "write_date asc, id asc"

DEFAULT_BATCH_SIZE = 100
DEFAULT_DELAY_MS = 100
# Incremental reads start this many seconds before the cursor: Odoo stamps write_date at
# transaction start, so a record can appear after a later-stamped one was read.
DEFAULT_OVERLAP_SECONDS = 60
DEFAULT_ARCHIVE_RETENTION_DAYS = 30
# Ids per search_read by id (reject retries, name holders, lines of restored orders): one
# short domain per call, well inside what Odoo's JSON-RPC takes.
READ_BY_ID_CHUNK = 200


@dataclass(frozen=True)
class ModelSpec:
    entity: str  # sync_state / sync_rejects entity, and the short name in docs
    model: str  # Odoo model
    table: str  # destination table (CONTRACT.md section 3); also the asset name
    # the fields read, each with its parser and column(s), filled in this order (models.py)
    columns: tuple[Column | Many2one | Required, ...]
    sync_type: str  # AUTO_SYNC_TYPES value that selects it
    domain: tuple = ()  # base domain, ANDed with the keyset domain
    include_archived: bool = False  # context active_test=False (archived records too)
    cancellable: bool = False  # has state 'cancel': the archive job moves old cancelled rows
    # (parent table, column holding the parent's id): rows belong to a parent record, leave
    # the live table when it is archived and come back when it is live again
    archived_with: tuple[str, str] | None = None
    rules: ModelRules = NO_RULES  # model-specific steps of its sync (rules.py)
    description: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        """Fields read with search_read (id comes with every record)."""
        return field_names(self.columns)

    @cached_property
    def fillers(self) -> tuple[Filler, ...]:
        """The columns' fillers, built once (models.map_record)."""
        return row_fillers(self.columns)

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
    columns=(
        text("name"), text("move_type"), text("state"), text("payment_state"), date("invoice_date"),
        date("invoice_date_due"), text("ref"), text("invoice_origin"), money("amount_untaxed"), money("amount_tax"),
        money("amount_total"), money("amount_residual"), Required(("move_type", "state")), Many2one("partner_id"),
        currency(), company(),
    ),
    domain=(("move_type", "in", list(INVOICE_MOVE_TYPES)),),
    cancellable=True,
    # unique (company_id, move_type, name) among live invoices: invoice_names.py
    rules=UniqueInvoiceNames(),
    description="Customer and vendor invoices, refunds and receipts (account.move), every state.",
)
PURCHASE_ORDERS = ModelSpec(
    entity="purchase_orders",
    model="purchase.order",
    table="odoo_purchase_orders",
    sync_type="purchases",
    columns=(
        text("name"), text("state"), datetime("date_order"), datetime("date_approve"), money("amount_untaxed"),
        money("amount_total"), Many2one("partner_id"), currency(), company(),
    ),
    cancellable=True,
    description="Purchase orders (purchase.order), every state.",
)
PURCHASE_ORDER_LINES = ModelSpec(
    entity="purchase_order_lines",
    model="purchase.order.line",
    table="odoo_purchase_order_lines",
    sync_type="purchases",
    columns=(
        text("name"), text("state"), quantity("product_qty"), quantity("qty_received"), quantity("qty_invoiced"),
        quantity("price_unit"), money("price_subtotal"), datetime("date_planned"),
        Many2one("order_id", name_column=None), Many2one("product_id"), company(),
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
    columns=(
        text("name"), text("state"), datetime("date_order"), text("invoice_status"), money("amount_untaxed"),
        money("amount_total"), Many2one("partner_id"), currency(), company(),
    ),
    cancellable=True,
    description="Sale orders (sale.order), every state.",
)
PRODUCTS = ModelSpec(
    entity="products",
    model="product.product",
    table="odoo_products",
    sync_type="products",
    columns=(
        text("name"), text("default_code"), text("barcode"), boolean("active"), money("list_price"),
        quantity("standard_price"), Many2one("categ_id", name_column="category_name"), Many2one("uom_id"), company(),
    ),
    include_archived=True,
    description="Products (product.product), archived ones included (active=false).",
)
STOCK_QUANTS = ModelSpec(
    entity="stock_quants",
    model="stock.quant",
    table="odoo_stock_quants",
    sync_type="inventory",
    columns=(
        quantity("quantity"), quantity("reserved_quantity"), Many2one("product_id"), Many2one("location_id"),
        Many2one("lot_id"), company(),
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
