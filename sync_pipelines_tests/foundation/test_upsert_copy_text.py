"""Values COPY's text format must escape (the Postgres stage) land and compare as they were sent,
and so do they through the one-statement merge of small batches (a JSON parameter)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from sync_pipelines.warehouse import Warehouse
from sync_pipelines.warehouse import upsert as upsert_module
from sync_pipelines.warehouse.types import JSONType, Timestamp

TEXTS = {
    "tab": "a\tb",
    "newline": "a\nb",
    "cr": "a\r\nb",
    "backslash": "C:\\dir\\",
    "null-marker": "\\N",
    "end-marker": "\\.",
    "empty": "",
    "nul": "a\x00b",
    "korean": "현대 쏘나타",
    "number": 123,
}


@pytest.mark.parametrize("merge", ["one statement", "staged"])
def test_copy_special_characters_round_trip(warehouse: Warehouse, merge: str, monkeypatch):
    if merge == "staged":  # the batch is small: force the COPY stage
        monkeypatch.setattr(upsert_module, "SMALL_BATCH_ROWS", 0)
    meta = sa.MetaData()
    sa.Table(
        "copy_texts",
        meta,
        sa.Column("k", sa.Text, primary_key=True),
        sa.Column("body", sa.Text),
        sa.Column("doc", JSONType),
        sa.Column("n", sa.BigInteger),
        sa.Column("at", Timestamp),
        sa.Column("synced_at", Timestamp, nullable=False),
    )
    meta.create_all(warehouse.engine)
    naive = dt.datetime(2026, 1, 1, 12, 0)
    rows = [
        {"k": k, "body": v, "doc": {"v": v, "path": "a\\b\n"}, "n": i, "at": naive}
        for i, (k, v) in enumerate(TEXTS.items())
    ]
    rows.append({"k": "nulls", "body": None, "doc": None, "n": None, "at": None})
    with warehouse.transaction() as tx:
        assert tx.upsert("copy_texts", rows).inserted == len(rows)
    with warehouse.transaction() as tx:
        assert tx.upsert("copy_texts", rows).unchanged == len(rows)
    t = warehouse.table("copy_texts")
    with warehouse.engine.connect() as conn:
        got = {r.k: r for r in conn.execute(sa.select(t))}
    for i, (k, v) in enumerate(TEXTS.items()):
        # Postgres text cannot hold NUL (dropped there); SQLite keeps it, as before the text COPY
        expected = "ab" if k == "nul" and warehouse.engine.dialect.name == "postgresql" else str(v)
        assert got[k].body == expected, k
        assert got[k].doc == {"v": v if k != "nul" else "ab", "path": "a\\b\n"}, k
        assert got[k].n == i
        assert got[k].at.replace(tzinfo=dt.timezone.utc if got[k].at.tzinfo is None else got[k].at.tzinfo) == (
            naive.replace(tzinfo=dt.timezone.utc)
        )
    assert (got["nulls"].body, got["nulls"].doc, got["nulls"].n, got["nulls"].at) == (None, None, None, None)


def test_a_datetime_column_encodes_a_stamp_once_and_anything_else_per_value():
    encode = upsert_module._encode_datetime_column
    at = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
    later = at + dt.timedelta(microseconds=1)
    assert encode([at, at, at]) == ["2026-01-01T12:00:00+00:00"] * 3
    assert encode([at, later]) == ["2026-01-01T12:00:00+00:00", "2026-01-01T12:00:00.000001+00:00"]
    assert encode([at, None]) == ["2026-01-01T12:00:00+00:00", upsert_module._COPY_NULL]
    assert encode([]) == []
