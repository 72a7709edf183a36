"""Odoo records -> destination rows: typed mapping and validation, one function per model.

Odoo's JSON shapes: many2one fields are ``[id, "display name"]``, empty values of any type
are ``false``, datetimes are ``"YYYY-MM-DD HH:MM:SS"`` in UTC, dates ``"YYYY-MM-DD"``.
A record that does not fit (missing id, unparseable write_date, text where a number belongs)
raises :class:`RecordRejected` with the reason; the asset sets it aside in ``sync_rejects``
and lands the rest of the batch.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from typing import Any

from sync_pipelines.odoo.settings import ModelSpec


class RecordRejected(ValueError):
    """This record cannot be stored as is; the message is the reason kept in sync_rejects."""


def _empty(value: Any) -> bool:
    return value is False or value is None


def record_id(record: Any) -> int:
    rid = record.get("id") if isinstance(record, dict) else None
    if not isinstance(rid, int) or isinstance(rid, bool) or rid <= 0:
        raise RecordRejected(f"id must be a positive integer, got {rid!r}")
    return rid


def parse_datetime(value: Any, field: str, *, required: bool = False) -> dt.datetime | None:
    if _empty(value):
        if required:
            raise RecordRejected(f"{field} is missing")
        return None
    if not isinstance(value, str):
        raise RecordRejected(f"{field} must be a 'YYYY-MM-DD HH:MM:SS' string, got {value!r}")
    try:
        parsed = dt.datetime.strptime(value[:19], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise RecordRejected(f"{field} is not a 'YYYY-MM-DD HH:MM:SS' datetime: {value!r}") from None
    return parsed.replace(tzinfo=dt.timezone.utc)


def parse_date(value: Any, field: str) -> dt.date | None:
    if _empty(value):
        return None
    if not isinstance(value, str):
        raise RecordRejected(f"{field} must be a 'YYYY-MM-DD' string, got {value!r}")
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise RecordRejected(f"{field} is not a 'YYYY-MM-DD' date: {value!r}") from None


def parse_decimal(value: Any, field: str, places: int) -> decimal.Decimal | None:
    if _empty(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordRejected(f"{field} must be a number, got {value!r}")
    quantum = decimal.Decimal(1).scaleb(-places)
    return decimal.Decimal(str(value)).quantize(quantum, rounding=decimal.ROUND_HALF_UP)


def parse_text(value: Any, field: str) -> str | None:
    if _empty(value):
        return None
    if not isinstance(value, str):
        raise RecordRejected(f"{field} must be text, got {value!r}")
    return value


def parse_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise RecordRejected(f"{field} must be true or false, got {value!r}")
    return value


def parse_many2one(value: Any, field: str) -> tuple[int | None, str | None]:
    """``[id, "name"]`` -> (id, name); ``false`` -> (None, None)."""
    if _empty(value):
        return None, None
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], (str, bool))
    ):
        return value[0], (value[1] or None)
    raise RecordRejected(f"{field} must be a many2one [id, name] pair, got {value!r}")


def _money(record: dict, field: str) -> decimal.Decimal | None:
    return parse_decimal(record.get(field), field, 2)


def _qty(record: dict, field: str) -> decimal.Decimal | None:
    return parse_decimal(record.get(field), field, 4)


def _m2o(row: dict, record: dict, field: str, *, with_name: bool = True) -> None:
    """``partner_id`` -> columns ``partner_id`` and ``partner_name``."""
    ref_id, ref_name = parse_many2one(record.get(field), field)
    row[field] = ref_id
    if with_name:
        row[field.removesuffix("_id") + "_name"] = ref_name


def _currency(row: dict, record: dict) -> None:
    """``currency_id`` -> ``currency_id`` and ``currency`` (the code, e.g. ``EUR``)."""
    row["currency_id"], row["currency"] = parse_many2one(record.get("currency_id"), "currency_id")


def _common(record: dict) -> dict[str, Any]:
    return {
        "id": record_id(record),
        "write_date": parse_datetime(record.get("write_date"), "write_date", required=True),
        "create_date": parse_datetime(record.get("create_date"), "create_date"),
        # Present in Odoo: not deleted (clears the mark if a record was wrongly thought gone).
        "deleted_at": None,
        "raw": record,
    }


def map_invoice(record: dict) -> dict[str, Any]:
    row = _common(record)
    row.update(
        name=parse_text(record.get("name"), "name"),
        move_type=parse_text(record.get("move_type"), "move_type"),
        state=parse_text(record.get("state"), "state"),
        payment_state=parse_text(record.get("payment_state"), "payment_state"),
        invoice_date=parse_date(record.get("invoice_date"), "invoice_date"),
        invoice_date_due=parse_date(record.get("invoice_date_due"), "invoice_date_due"),
        ref=parse_text(record.get("ref"), "ref"),
        invoice_origin=parse_text(record.get("invoice_origin"), "invoice_origin"),
        amount_untaxed=_money(record, "amount_untaxed"),
        amount_tax=_money(record, "amount_tax"),
        amount_total=_money(record, "amount_total"),
        amount_residual=_money(record, "amount_residual"),
    )
    if row["move_type"] is None or row["state"] is None:
        raise RecordRejected("move_type and state are required")
    _m2o(row, record, "partner_id")
    _currency(row, record)
    _m2o(row, record, "company_id", with_name=False)
    return row


def map_purchase_order(record: dict) -> dict[str, Any]:
    row = _common(record)
    row.update(
        name=parse_text(record.get("name"), "name"),
        state=parse_text(record.get("state"), "state"),
        date_order=parse_datetime(record.get("date_order"), "date_order"),
        date_approve=parse_datetime(record.get("date_approve"), "date_approve"),
        amount_untaxed=_money(record, "amount_untaxed"),
        amount_total=_money(record, "amount_total"),
    )
    _m2o(row, record, "partner_id")
    _currency(row, record)
    _m2o(row, record, "company_id", with_name=False)
    return row


def map_purchase_order_line(record: dict) -> dict[str, Any]:
    row = _common(record)
    row.update(
        name=parse_text(record.get("name"), "name"),
        state=parse_text(record.get("state"), "state"),
        product_qty=_qty(record, "product_qty"),
        qty_received=_qty(record, "qty_received"),
        qty_invoiced=_qty(record, "qty_invoiced"),
        price_unit=parse_decimal(record.get("price_unit"), "price_unit", 4),
        price_subtotal=_money(record, "price_subtotal"),
        date_planned=parse_datetime(record.get("date_planned"), "date_planned"),
    )
    _m2o(row, record, "order_id", with_name=False)
    _m2o(row, record, "product_id")
    _m2o(row, record, "company_id", with_name=False)
    return row


def map_sale_order(record: dict) -> dict[str, Any]:
    row = _common(record)
    row.update(
        name=parse_text(record.get("name"), "name"),
        state=parse_text(record.get("state"), "state"),
        date_order=parse_datetime(record.get("date_order"), "date_order"),
        invoice_status=parse_text(record.get("invoice_status"), "invoice_status"),
        amount_untaxed=_money(record, "amount_untaxed"),
        amount_total=_money(record, "amount_total"),
    )
    _m2o(row, record, "partner_id")
    _currency(row, record)
    _m2o(row, record, "company_id", with_name=False)
    return row


def map_product(record: dict) -> dict[str, Any]:
    row = _common(record)
    row.update(
        name=parse_text(record.get("name"), "name"),
        default_code=parse_text(record.get("default_code"), "default_code"),
        barcode=parse_text(record.get("barcode"), "barcode"),
        active=parse_bool(record.get("active"), "active"),
        list_price=_money(record, "list_price"),
        standard_price=parse_decimal(record.get("standard_price"), "standard_price", 4),
    )
    _m2o(row, record, "categ_id")
    row["category_name"] = row.pop("categ_name")
    _m2o(row, record, "uom_id")
    _m2o(row, record, "company_id", with_name=False)
    return row


def map_stock_quant(record: dict) -> dict[str, Any]:
    row = _common(record)
    row.update(
        quantity=_qty(record, "quantity"),
        reserved_quantity=_qty(record, "reserved_quantity"),
    )
    _m2o(row, record, "product_id")
    _m2o(row, record, "location_id")
    _m2o(row, record, "lot_id")
    _m2o(row, record, "company_id", with_name=False)
    return row


MAPPERS: dict[str, Callable[[dict], dict[str, Any]]] = {
    "invoices": map_invoice,
    "purchase_orders": map_purchase_order,
    "purchase_order_lines": map_purchase_order_line,
    "sale_orders": map_sale_order,
    "products": map_product,
    "stock_quants": map_stock_quant,
}


def map_record(spec: ModelSpec, record: Any) -> dict[str, Any]:
    """The destination row of one Odoo record, or :class:`RecordRejected`."""
    if not isinstance(record, dict):
        raise RecordRejected(f"record is not an object: {record!r}")
    return MAPPERS[spec.entity](record)


def reject_key(record: Any) -> str:
    """The sync_rejects record_key of a record: its Odoo id, or a marker when even that is bad."""
    rid = record.get("id") if isinstance(record, dict) else None
    return str(rid) if isinstance(rid, int) and not isinstance(rid, bool) else f"invalid-id:{rid!r}"[:200]
