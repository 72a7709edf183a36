"""map_record's prebuilt fillers give the rows and reject reasons of the parse_* functions
(the declared columns' ``fill``), also for the edge inputs the fast paths hand back to them."""

from __future__ import annotations

import pytest

from sync_pipelines.kit import RecordError
from sync_pipelines.odoo.models import COMMON_FIELDS, map_record, parse_datetime, record_id
from sync_pipelines.odoo.settings import MODEL_SPECS

EDGE_VALUES = [
    False, None, True, "", "x", 0, 1, -1, 7.0, 1.005, 2.675, 0.125, -0.005, 1e30, 1e-9, 10**40,
    float("nan"), float("inf"), "12.50", "1,5", " 3", "2024-03-05", "2024-3-5", "2024-02-30", "05/03/2024",
    "2024-03-05 10:11:12", "2024-03-05 10:11:12.345", "2024-03-05T10:11:12", "2024-13-05 10:11:12",
    "2024-03-05 25:11:12", "2024-W10-2 10:11:12", "0000-01-01 00:00:00", "9999-12-31 23:59:59",
    "2024-03-05 10:11:12+02:00", "２０２４-03-05 10:11:12", [3, "Name"], [3, ""], [3, False], [3, None], [3, 5], [True, "x"],
    [3], [3, "a", "b"], ["3", "x"], (3, "x"), {"id": 3},
]
VALID_CANDIDATES = ["2024-03-05 10:11:12", "text", 12.5, True, [3, "Name"]]


def reference_row(spec, record):
    """map_record as it was: the parse_* functions, through each column's ``fill``."""
    if not isinstance(record, dict):
        raise RecordError(f"record is not an object: {record!r}")
    row = {
        "id": record_id(record),
        "write_date": parse_datetime(record.get("write_date"), "write_date", required=True),
        "create_date": parse_datetime(record.get("create_date"), "create_date"),
        "deleted_at": None,
        "raw": record,
    }
    for column in spec.columns:
        column.fill(row, record)
    return row


def outcome(mapper, spec, record) -> str:
    try:
        row = mapper(spec, record)
    except Exception as exc:  # RecordError, and whatever else the parsers let through
        return f"{type(exc).__name__}: {exc}"
    return repr([(key, type(value).__name__, value) for key, value in row.items()])


def valid_record(spec) -> dict:
    """A record every column accepts: per field the first candidate the reference takes."""
    record = {"id": 7, "write_date": "2024-03-05 10:11:12", "create_date": "2024-03-01 08:00:00"}
    for name in spec.fields:
        if name in COMMON_FIELDS:
            continue
        for candidate in VALID_CANDIDATES:
            record[name] = candidate
            reason = outcome(reference_row, spec, record)
            if f"{name} must" not in reason and f"{name} is " not in reason:
                break
    assert not outcome(reference_row, spec, record).startswith("RecordError"), record
    return record


@pytest.mark.parametrize("spec", MODEL_SPECS, ids=lambda s: s.entity)
def test_fast_fillers_give_the_rows_and_rejects_of_the_parsers(spec):
    base = valid_record(spec)
    assert outcome(map_record, spec, base) == outcome(reference_row, spec, base)
    for name in ("id", *spec.fields):
        for value in EDGE_VALUES:
            record = {**base, name: value}
            assert outcome(map_record, spec, record) == outcome(reference_row, spec, record), (name, value)
        missing = {k: v for k, v in base.items() if k != name}
        assert outcome(map_record, spec, missing) == outcome(reference_row, spec, missing), name


def test_records_that_are_not_objects_are_rejected_alike():
    spec = MODEL_SPECS[0]
    for record in (None, [1], "x", 3):
        assert outcome(map_record, spec, record) == outcome(reference_row, spec, record)


def test_the_usual_datetime_is_utc_and_equal_to_the_parser():
    value = "2024-03-05 10:11:12"
    row = map_record(MODEL_SPECS[0], {**valid_record(MODEL_SPECS[0]), "write_date": value})
    assert row["write_date"] == parse_datetime(value, "write_date") and row["write_date"].utcoffset().total_seconds() == 0
