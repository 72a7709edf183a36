"""Odoo records -> destination rows: the column kinds each :class:`ModelSpec` declares its
fields with (field read, parser and columns in one declaration), and :func:`map_record`.

Odoo's JSON shapes: many2one fields are ``[id, "display name"]``, empty values of any type
are ``false``, datetimes are ``"YYYY-MM-DD HH:MM:SS"`` in UTC, dates ``"YYYY-MM-DD"``.
A record that does not fit raises :class:`RecordError` with the reason; the sync sets it
aside in ``sync_rejects`` and lands the rest of the batch.

Every column kind also builds a filler once per model (:func:`row_fillers`, kept on the
ModelSpec): a closure that takes the usual well-formed value straight through and leaves
anything else to the ``parse_*`` function, so rows and reject reasons are those of the parsers.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sync_pipelines.kit import RecordError

if TYPE_CHECKING:
    from sync_pipelines.odoo.settings import ModelSpec


def _empty(value: Any) -> bool:
    return value is False or value is None


def record_id(record: Any) -> int:
    rid = record.get("id") if isinstance(record, dict) else None
    if not isinstance(rid, int) or isinstance(rid, bool) or rid <= 0:
        raise RecordError(f"id must be a positive integer, got {rid!r}")
    return rid


_ODOO_DATETIME_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


def strptime_odoo(text: str) -> dt.datetime:
    """``strptime(text, "%Y-%m-%d %H:%M:%S")``; the usual shape is read by fromisoformat, in C
    (strptime took a quarter of an invoice sync's time)."""
    if _ODOO_DATETIME_SHAPE.fullmatch(text):
        return dt.datetime.fromisoformat(text)
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def parse_datetime(value: Any, field: str, *, required: bool = False) -> dt.datetime | None:
    if _empty(value):
        if required:
            raise RecordError(f"{field} is missing")
        return None
    if not isinstance(value, str):
        raise RecordError(f"{field} must be a 'YYYY-MM-DD HH:MM:SS' string, got {value!r}")
    try:
        parsed = strptime_odoo(value[:19])
    except ValueError:
        raise RecordError(f"{field} is not a 'YYYY-MM-DD HH:MM:SS' datetime: {value!r}") from None
    return parsed.replace(tzinfo=dt.timezone.utc)


def parse_date(value: Any, field: str) -> dt.date | None:
    if _empty(value):
        return None
    if not isinstance(value, str):
        raise RecordError(f"{field} must be a 'YYYY-MM-DD' string, got {value!r}")
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise RecordError(f"{field} is not a 'YYYY-MM-DD' date: {value!r}") from None


def parse_decimal(value: Any, field: str, places: int) -> decimal.Decimal | None:
    if _empty(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{field} must be a number, got {value!r}")
    quantum = decimal.Decimal(1).scaleb(-places)
    return decimal.Decimal(str(value)).quantize(quantum, rounding=decimal.ROUND_HALF_UP)


def parse_text(value: Any, field: str) -> str | None:
    if _empty(value):
        return None
    if not isinstance(value, str):
        raise RecordError(f"{field} must be text, got {value!r}")
    return value


def parse_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise RecordError(f"{field} must be true or false, got {value!r}")
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
    raise RecordError(f"{field} must be a many2one [id, name] pair, got {value!r}")


Filler = Callable[[dict[str, Any], dict], None]  # fill(row, record): sets the row's columns
Converter = Callable[[Any], Any]  # one field's value -> its column value, or RecordError


@dataclass(frozen=True)
class Column:
    """One Odoo field read into one column: ``parse(value, field)`` gives the column value;
    ``converter(field)``, when given, the same as a faster one-argument function."""

    field: str
    parse: Callable[[Any, str], Any]
    column: str | None = None  # default: the field's name
    converter: Callable[[str], Converter] | None = None

    def fill(self, row: dict[str, Any], record: dict) -> None:
        row[self.column or self.field] = self.parse(record.get(self.field), self.field)

    def filler(self) -> Filler:
        field, column, parse = self.field, self.column or self.field, self.parse
        convert = self.converter(field) if self.converter else lambda value: parse(value, field)

        def fill(row: dict[str, Any], record: dict) -> None:
            row[column] = convert(record.get(field))

        return fill


@dataclass(frozen=True)
class Many2one:
    """A many2one field ``[id, "name"]`` read into its id column and, unless ``name_column``
    is None, a display-name column (default ``partner_id`` -> ``partner_name``)."""

    field: str
    name_column: str | None = ""

    def fill(self, row: dict[str, Any], record: dict) -> None:
        ref_id, ref_name = parse_many2one(record.get(self.field), self.field)
        row[self.field] = ref_id
        if self.name_column is not None:
            row[self.name_column or self.field.removesuffix("_id") + "_name"] = ref_name

    def filler(self) -> Filler:
        field = self.field
        name_column = None if self.name_column is None else self.name_column or field.removesuffix("_id") + "_name"

        def fill(row: dict[str, Any], record: dict) -> None:
            value = record.get(field)
            if value.__class__ is list and len(value) == 2 and value[0].__class__ is int and value[1].__class__ is str:
                ref_id, ref_name = value[0], value[1] or None
            else:
                ref_id, ref_name = parse_many2one(value, field)
            row[field] = ref_id
            if name_column is not None:
                row[name_column] = ref_name

        return fill


@dataclass(frozen=True)
class Required:
    """A check after the columns before it: these columns must not be empty."""

    columns: tuple[str, ...]
    field = None

    def fill(self, row: dict[str, Any], record: dict) -> None:
        if any(row[c] is None for c in self.columns):
            raise RecordError(f"{' and '.join(self.columns)} are required")

    def filler(self) -> Filler:
        columns, reason = self.columns, f"{' and '.join(self.columns)} are required"

        def fill(row: dict[str, Any], record: dict) -> None:
            for column in columns:
                if row[column] is None:
                    raise RecordError(reason)

        return fill


def _text_converter(field: str) -> Converter:
    def convert(value: Any) -> Any:
        return value if value.__class__ is str else parse_text(value, field)

    return convert


def _date_converter(field: str) -> Converter:
    def convert(value: Any) -> Any:
        if value.__class__ is str:
            try:
                return _date_fromisoformat(value[:10])
            except ValueError:
                pass  # parse_date gives the reason
        return parse_date(value, field)

    return convert


def _datetime_converter(field: str, *, required: bool = False) -> Converter:
    def convert(value: Any) -> Any:
        # the usual whole "YYYY-MM-DD HH:MM:SS", read as UTC by fromisoformat in one C call
        if value.__class__ is str and len(value) == 19 and _datetime_shape(value):
            try:
                return _datetime_fromisoformat(value + "+00:00")
            except ValueError:
                pass  # parse_datetime gives the reason
        return parse_datetime(value, field, required=required)

    return convert


def _decimal_converter(places: int) -> Callable[[str], Converter]:
    quantum = decimal.Decimal(1).scaleb(-places)

    def converter(field: str) -> Converter:
        def convert(value: Any) -> Any:
            if value.__class__ is float or value.__class__ is int:
                return _Decimal(str(value)).quantize(quantum, _ROUND_HALF_UP)
            return parse_decimal(value, field, places)

        return convert

    return converter


_date_fromisoformat = dt.date.fromisoformat
_datetime_fromisoformat = dt.datetime.fromisoformat
_datetime_shape = _ODOO_DATETIME_SHAPE.fullmatch
_Decimal, _ROUND_HALF_UP = decimal.Decimal, decimal.ROUND_HALF_UP
_MONEY, _QUANTITY = _decimal_converter(2), _decimal_converter(4)


def text(field: str) -> Column:
    return Column(field, parse_text, converter=_text_converter)


def boolean(field: str) -> Column:
    return Column(field, parse_bool)


def date(field: str) -> Column:
    return Column(field, parse_date, converter=_date_converter)


def datetime(field: str) -> Column:
    return Column(field, parse_datetime, converter=_datetime_converter)


def money(field: str) -> Column:
    return Column(field, lambda value, name: parse_decimal(value, name, 2), converter=_MONEY)


def quantity(field: str) -> Column:
    """Quantities and unit prices: 4 decimal places."""
    return Column(field, lambda value, name: parse_decimal(value, name, 4), converter=_QUANTITY)


def company() -> Many2one:
    return Many2one("company_id", name_column=None)


def currency() -> Many2one:
    """``currency_id`` -> ``currency_id`` and ``currency`` (the code, e.g. ``EUR``)."""
    return Many2one("currency_id", name_column="currency")


# Read from every model, parsed first (see _common), so not declared per model.
COMMON_FIELDS = ("create_date", "write_date")


def field_names(columns: Sequence[Column | Many2one | Required]) -> tuple[str, ...]:
    """The fields a model's ``search_read`` asks for (id comes with every record)."""
    return tuple(c.field for c in columns if c.field is not None) + COMMON_FIELDS


def row_fillers(columns: Sequence[Column | Many2one | Required]) -> tuple[Filler, ...]:
    """The fillers of a model's columns, in declaration order (built once: ``ModelSpec.fillers``)."""
    return tuple(column.filler() for column in columns)


_write_date = _datetime_converter("write_date", required=True)
_create_date = _datetime_converter("create_date")


def map_record(spec: ModelSpec, record: Any) -> dict[str, Any]:
    """The destination row of one Odoo record (columns filled in declaration order), or
    :class:`RecordError`."""
    if not isinstance(record, dict):
        raise RecordError(f"record is not an object: {record!r}")
    rid = record.get("id")
    row = {
        "id": rid if rid.__class__ is int and rid > 0 else record_id(record),
        "write_date": _write_date(record.get("write_date")),
        "create_date": _create_date(record.get("create_date")),
        # Present in Odoo: not deleted (clears the mark if a record was wrongly thought gone).
        "deleted_at": None,
        "raw": record,
    }
    for fill in spec.fillers:
        fill(row, record)
    return row


def record_key(record: Any) -> str:
    """The sync_rejects record_key of a record: its Odoo id, or a marker when even that is bad."""
    rid = record.get("id") if isinstance(record, dict) else None
    return str(rid) if isinstance(rid, int) and not isinstance(rid, bool) else f"invalid-id:{rid!r}"[:200]
