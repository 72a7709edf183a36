"""Typed, normalised car records and the parsing that turns vendor answers into them.

Every parser raises :class:`RecordError` with a reason a person can act on when a record
is not what the contract says (a wrong type, a missing id); the sync sets that record
aside in ``sync_rejects`` and lands the rest of the page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sync_pipelines.cars.settings import ENCAR, ENCAR_CAR_URL, ENCAR_PHOTO_BASE, KBCHACHACHA, KST
from sync_pipelines.kit import RecordError

MAN_WON = 10_000  # both vendors quote prices in 만원 (10,000 KRW)
UNKEYED_PREFIX = "noid-"  # reject keys of records without a usable id (see unkeyed_record_key)


@dataclass(frozen=True)
class CarRecord:
    """One car as a listing shows it, normalised (what goes into the ``cars`` table)."""

    source: str
    source_id: str
    manufacturer: str | None
    model: str | None
    badge: str | None
    badge_detail: str | None
    title: str | None
    year_month: int | None  # YYYYMM
    mileage_km: int | None
    price_krw: int | None
    fuel_type: str | None = None
    transmission: str | None = None
    region: str | None = None
    url: str | None = None
    photo_url: str | None = None
    vendor_modified_at: dt.datetime | None = None

    def as_row(self) -> dict[str, Any]:
        # Every field is immutable (text, numbers, datetimes): a shallow copy is asdict's
        # result without its per-value deepcopy (a sixth of a full sync's time).
        return dict(vars(self))


# -- value normalisation ------------------------------------------------------------------------


def _number(value: Any, field: str) -> Decimal:
    """A JSON number (not a bool, not NaN) as the exact decimal the vendor wrote; strings of
    digits are tolerated. Exact so that 만원 and 억 amounts add up without binary-float error,
    which would round a half-won one way or the other depending on the sum."""
    if isinstance(value, bool) or value is None:
        raise RecordError(f"{field} must be a number, got {value!r}")
    if isinstance(value, (int, Decimal)):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # the shortest decimal that is this float: what the JSON said
    elif isinstance(value, str):
        try:
            number = Decimal(value.replace(",", "").strip())
        except InvalidOperation:
            raise RecordError(f"{field} must be a number, got {value[:40]!r}") from None
    else:
        raise RecordError(f"{field} must be a number, got {type(value).__name__}")
    if not number.is_finite():
        raise RecordError(f"{field} must be a finite number, got {value!r}")
    return number


def _exact_whole(value: Any) -> int | None:
    """A JSON integer, or a float holding a whole number, as that int (exact, no Decimal);
    None for anything else, which takes :func:`_number`'s checks."""
    kind = type(value)
    if kind is int:
        return value
    if kind is float and value.is_integer():  # False for NaN and the infinities
        return int(value)
    return None


def _whole(number: int | Decimal) -> int:
    """The one rounding rule of every price and mileage: to the nearest whole, a half up."""
    return number if isinstance(number, int) else int(number.to_integral_value(ROUND_HALF_UP))


def _amount(value: Any, field: str) -> int | Decimal:
    """A vendor number that must not be negative: an int when whole, else its exact decimal."""
    whole = _exact_whole(value)
    number = whole if whole is not None else _number(value, field)
    if number < 0:
        raise RecordError(f"{field} must not be negative, got {value!r}")
    return number


def price_krw_from_man_won(value: Any, field: str = "price") -> int:
    """Vendor price in 만원 -> whole KRW (``3199.0`` -> ``31_990_000``)."""
    return _whole(_amount(value, field) * MAN_WON)


def mileage_km(value: Any, field: str = "mileage") -> int:
    return _whole(_amount(value, field))


def year_month(value: Any, field: str = "year") -> int:
    """``202108.0`` / ``"202108"`` / ``"2108"`` / ``"0903"`` (KB ``yymm``) -> ``202108`` / ``200903``.

    A YYYYMM always has six digits, so a four-character digit string (KB zero-pads the
    year: ``"0903"`` is 2009-03) or a number below 10000 is YYMM."""
    whole = _exact_whole(value)
    number = whole if whole is not None else int(_number(value, field))
    yymm = isinstance(value, str) and re.fullmatch(r"\d{4}", value.strip()) is not None
    if yymm or 100 <= number <= 9999:
        yy, mm = divmod(number, 100)
        number = (2000 + yy if yy <= 69 else 1900 + yy) * 100 + mm
    year, month = divmod(number, 100)
    if not (1900 <= year <= 2199 and 1 <= month <= 12):
        raise RecordError(f"{field} must be YYYYMM, got {value!r}")
    return number


_ENCAR_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?\s*(?:([+-])(\d{2}):?(\d{2})?)?$"
)


def korean_time(value: Any, field: str = "time") -> dt.datetime | None:
    """A vendor timestamp as an aware datetime: ``"2023-05-08 21:46:07.000 +09"`` keeps its
    offset; a naive ``"2023-05-08T21:46:07"`` is Korean local time (KST, UTC+9)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise RecordError(f"{field} must be a date-time string, got {value!r}")
    match = _ENCAR_TIME.match(value.strip())
    if not match:
        raise RecordError(f"{field} is not a date-time: {value[:40]!r}")
    day, clock, fraction, sign, hours, minutes = match.groups()
    # One fromisoformat with the offset in ISO form: no timedelta/timezone built per record.
    zone = f"{sign}{hours}:{minutes or '00'}" if sign else ""
    try:
        parsed = dt.datetime.fromisoformat(f"{day}T{clock}{(fraction or '')[:7]}{zone}")
    except ValueError:
        raise RecordError(f"{field} is not a valid date-time: {value[:40]!r}") from None
    return parsed if sign else parsed.replace(tzinfo=KST)


def _text(value: Any, field: str, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise RecordError(f"{field} is missing")
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise RecordError(f"{field} must be text, got {type(value).__name__}")
    return str(value).strip() or None


# -- Encar ----------------------------------------------------------------------------------------


def unkeyed_record_key(raw: Any) -> str:
    """The ``sync_rejects`` key of a record that has no usable id: ``noid-`` and a hash of the
    raw record, so the same bad record keeps one reject row run after run (a position on a
    page would change as the list moves, and pile up rows that nothing clears)."""
    text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, ensure_ascii=False, default=str)
    return UNKEYED_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def encar_record_key(item: Any) -> str:
    car_id = item.get("Id") if isinstance(item, dict) else None
    if isinstance(car_id, (str, int)) and not isinstance(car_id, bool) and str(car_id).strip():
        return str(car_id)
    return unkeyed_record_key(item)


def parse_encar_item(item: Any) -> CarRecord:
    """One ``SearchResults`` item of the Encar list."""
    if not isinstance(item, dict):
        raise RecordError(f"list item must be an object, got {type(item).__name__}")
    car_id = _text(item.get("Id"), "Id", required=True)
    if not car_id.isdigit():
        raise RecordError(f"Id must be digits, got {car_id[:40]!r}")
    photo = _text(item.get("Photo"), "Photo")
    return CarRecord(
        source=ENCAR,
        source_id=car_id,
        manufacturer=_text(item.get("Manufacturer"), "Manufacturer"),
        model=_text(item.get("Model"), "Model"),
        badge=_text(item.get("Badge"), "Badge"),
        badge_detail=_text(item.get("BadgeDetail"), "BadgeDetail"),
        title=" ".join(
            str(item[k]) for k in ("Manufacturer", "Model", "Badge") if isinstance(item.get(k), str) and item[k]
        )
        or None,
        year_month=year_month(item.get("Year"), "Year"),
        mileage_km=mileage_km(item.get("Mileage"), "Mileage"),
        price_krw=price_krw_from_man_won(item.get("Price"), "Price"),
        fuel_type=_text(item.get("FuelType"), "FuelType"),
        transmission=_text(item.get("Transmission"), "Transmission"),
        region=_text(item.get("OfficeCityState"), "OfficeCityState"),
        url=ENCAR_CAR_URL.format(id=car_id),
        photo_url=f"{ENCAR_PHOTO_BASE}{photo}001.jpg" if photo else None,
        vendor_modified_at=korean_time(item.get("ModifiedDate"), "ModifiedDate"),
    )


@dataclass(frozen=True)
class StatusAnswer:
    """What the vendor's per-car call says: ``active``, ``reserved`` or ``sold``, and why;
    ``car_fields`` the structured ``cars`` columns the answer carries (KB: maker, model, grade)."""

    status: str
    reason: str
    car_fields: dict[str, str] = field(default_factory=dict)


def encar_status_from_detail(http_status: int, body: Any) -> StatusAnswer:
    """Encar's rule: 404 or ``advertisement.status != ADVERTISE`` is sold; ``salesStatus ==
    CONTRACT`` is reserved. A 200 without an ``advertisement`` object is malformed."""
    if http_status == 404:
        return StatusAnswer("sold", "detail answered 404")
    advertisement = body.get("advertisement") if isinstance(body, dict) else None
    if not isinstance(advertisement, dict) or not isinstance(advertisement.get("status"), str):
        raise RecordError("vehicle detail has no advertisement.status")
    if advertisement["status"] != "ADVERTISE":
        return StatusAnswer("sold", f"advertisement.status {advertisement['status']}")
    if advertisement.get("salesStatus") == "CONTRACT":
        return StatusAnswer("reserved", "advertisement.salesStatus CONTRACT")
    return StatusAnswer("active", "advertisement.status ADVERTISE")


# -- KB Chachacha --------------------------------------------------------------------------------

# KB writes prices in 만원 (10,000 KRW) and, from 100,000,000 KRW on, with 억 (10^8 KRW):
# "1,234만원", "1억 2,000만원", "1억원". Mileage likewise: "35,123km", "3.5만km", "1.2만 km".
_AMOUNT = r"(\d[\d,]*(?:\.\d+)?)"
_PRICE = re.compile(rf"^(?:{_AMOUNT}\s*억)?\s*(?:{_AMOUNT}\s*만)?\s*원?$")
_KB_YEAR = re.compile(r"(\d{2}|\d{4})\s*[/.년]\s*(\d{1,2})")
_KB_KM = re.compile(r"^(?:([\d,]+)|" + _AMOUNT + r"\s*만)\s*km$", re.IGNORECASE)
MAN_PER_EOK = 10_000  # 1억 = 10,000만


def kb_price_krw(text: str | None) -> int:
    """``"1,234만원"`` -> ``12_340_000``; ``"1억 2,000만원"`` -> ``120_000_000``; ``"1억원"`` -> ``100_000_000``."""
    cleaned = (text or "").strip()
    match = _PRICE.match(cleaned)
    if not match or not any(match.groups()):
        raise RecordError(f"price is not '<number>만원' or '<number>억 <number>만원': {cleaned[:40]!r}")
    eok, man = match.groups()
    man_won = (_number(eok, "price") * MAN_PER_EOK if eok else 0) + (_number(man, "price") if man else 0)
    return price_krw_from_man_won(man_won, "price")


def kb_year_month(text: str) -> int:
    """``"21/03식"``, ``"2021년03월"`` -> ``202103``."""
    match = _KB_YEAR.search(text or "")
    if not match:
        raise RecordError(f"year is not 'YY/MM식': {(text or '')[:40]!r}")
    year, month = int(match.group(1)), int(match.group(2))
    if year < 100:
        year += 2000 if year <= 69 else 1900
    return year_month(year * 100 + month, "year")


def kb_mileage_km(text: str) -> int:
    """``"35,123km"`` -> ``35_123``; ``"3.5만km"`` / ``"1.2만 km"`` (만 = 10,000) -> ``35_000`` / ``12_000``."""
    match = _KB_KM.match((text or "").strip())
    if not match:
        raise RecordError(f"mileage is not '<number>km' or '<number>만km': {(text or '')[:40]!r}")
    km, man = match.groups()
    return mileage_km(km if km is not None else _number(man, "mileage") * MAN_WON, "mileage")


def parse_kb_card(car_seq: str, title: str | None, data_line: list[str], price_text: str | None,
                  href: str | None, base_url: str) -> CarRecord:
    """One ``div.generalRegist div.area[data-car-seq]`` card of the KB list (already pulled apart by the client).

    The card title is one string ("현대 그랜저 IG 2.4 프리미엄"): the first word is the maker,
    the rest the model; KB's list shows no separate badge.
    """
    if not car_seq or not car_seq.isdigit():
        raise RecordError(f"data-car-seq must be digits, got {car_seq!r}")
    if not title:
        raise RecordError("card has no title (strong.tit)")
    if len(data_line) < 2:
        raise RecordError(f"card data-line has {len(data_line)} item(s), expected year, mileage, region")
    maker, _, model = title.partition(" ")
    url = None
    if href:
        url = href if href.startswith(("http://", "https://")) else f"{base_url}/{href.lstrip('/')}"
    return CarRecord(
        source=KBCHACHACHA,
        source_id=car_seq,
        manufacturer=maker or None,
        model=model or None,
        badge=None,
        badge_detail=None,
        title=title,
        year_month=kb_year_month(data_line[0]),
        mileage_km=kb_mileage_km(data_line[1]),
        price_krw=kb_price_krw(price_text),
        region=data_line[2] if len(data_line) > 2 else None,
        url=url,
    )


# The per-car JSON's car id field (the sandbox and the site's own list JSON name it carSeq).
KB_CAR_ID_FIELDS = ("carSeq",)
# ``cars`` column <- the per-car JSON's fields, first present wins (className, "그랜저", is the
# model family: used only when modelName, "그랜저 IG", is missing).
KB_DETAIL_FIELDS = {
    "manufacturer": ("makerName",),
    "model": ("modelName", "className"),
    "badge": ("gradeName",),
}


def _id_text(value: Any) -> str:
    """An id as the list's ``data-car-seq`` writes it (a JSON ``26000013.0`` is ``"26000013"``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def kb_status_from_list(body: Any, car_seq: str | None = None) -> StatusAnswer:
    """KB's per-car JSON: a non-empty ``list`` means on sale; an empty one sold or removed.

    When the items carry a car id (``carSeq``), the car asked must be among them: an answer
    about other cars (the endpoint ignoring ``carSeqVal``, say) would otherwise read every
    car as on sale, so it is malformed. Items without any id field are taken as the car asked."""
    if not isinstance(body, dict) or not isinstance(body.get("list"), list):
        raise RecordError("per-car answer has no 'list' array")
    items = body["list"]
    if not items:
        return StatusAnswer("sold", "per-car list is empty")
    if car_seq is not None:
        ids = [
            _id_text(item[name])
            for item in items
            if isinstance(item, dict)
            for name in KB_CAR_ID_FIELDS
            if item.get(name) not in (None, "")
        ]
        if ids and str(car_seq) not in ids:
            raise RecordError(f"per-car answer for carSeq {car_seq} is about carSeq {', '.join(ids[:3])}, not the car asked")
    return StatusAnswer("active", "per-car list has the car", kb_detail_fields(items, car_seq))


def kb_detail_fields(items: list[Any], car_seq: str | None) -> dict[str, str]:
    """``manufacturer``/``model``/``badge`` from the item about ``car_seq`` (or the only item,
    when items carry no id). A field missing or not text is left out, never an error: the
    status answer stays usable."""
    item = next(
        (i for i in items if isinstance(i, dict) and any(
            _id_text(i[n]) == str(car_seq) for n in KB_CAR_ID_FIELDS if i.get(n) not in (None, ""))),
        items[0] if len(items) == 1 else None,
    )
    if not isinstance(item, dict):
        return {}
    fields = {}
    for column, names in KB_DETAIL_FIELDS.items():
        value = next((item[n].strip() for n in names if isinstance(item.get(n), str) and item[n].strip()), None)
        if value is not None:
            fields[column] = value[:128]  # fits every one of the three columns
    return fields
