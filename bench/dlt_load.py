"""The peer's side of bench/dlt_peer.py, run with the dlt venv's Python (dlt is no product
dependency): the given Odoo requests replayed with requests, their invoices loaded by dlt
(``merge`` on ``id``) into Postgres as the rows our sync stores: the same columns, typed
alike, ``raw`` (the record as Odoo sent it) a json column. Prints one JSON line: seconds
(fetch + dlt).

    .venv-dlt/bin/python bench/dlt_load.py BASE_URL REQUESTS.json POSTGRES_URL PIPELINES_DIR
"""

from __future__ import annotations

import json
import sys
import time

import dlt
import requests

# the odoo_invoices columns (migration 0003) dlt cannot infer from Odoo's JSON
COLUMNS = {
    "id": {"data_type": "bigint", "nullable": False},
    "raw": {"data_type": "json"},
    "deleted_at": {"data_type": "timestamp", "timezone": True},
    **{name: {"data_type": "timestamp", "timezone": True} for name in ("write_date", "create_date")},
    **{name: {"data_type": "date"} for name in ("invoice_date", "invoice_date_due")},
    **{name: {"data_type": "decimal", "precision": 16, "scale": 2}
       for name in ("amount_untaxed", "amount_tax", "amount_total", "amount_residual")},
}
# many2one [id, "name"] -> id column and its name column, as our sync names them (None: no name)
NAME_COLUMNS = {"currency_id": "currency", "company_id": None}


def invoices(base_url: str, recorded: list[dict]):
    with requests.Session() as session:
        for r in recorded:
            answer = session.request(r["method"], base_url + r["path"], data=r["body"].encode() or None,
                                     headers=r["headers"]).json()
            result = answer.get("result")
            if not isinstance(result, list):
                continue  # login, version
            for record in result:
                yield row(record)


def row(record: dict) -> dict:
    """Our row of an invoice, as a dlt user would write it: many2one pairs split, false -> null."""
    out = {}
    for key, value in record.items():
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], int):
            out[key] = value[0]
            name_column = NAME_COLUMNS.get(key, key.removesuffix("_id") + "_name")
            if name_column:
                out[name_column] = value[1] or None
        else:
            out[key] = None if value is False else value
    out["deleted_at"] = None
    out["raw"] = record
    return out


def main() -> int:
    base_url, requests_file, pg_url, pipelines_dir = sys.argv[1:5]
    with open(requests_file) as f:
        recorded = json.load(f)
    pipeline = dlt.pipeline(
        pipeline_name="odoo_invoices_bench", destination=dlt.destinations.postgres(credentials=pg_url),
        dataset_name="dlt_odoo", pipelines_dir=pipelines_dir,
    )
    resource = dlt.resource(invoices(base_url, recorded), name="odoo_invoices", write_disposition="merge",
                            primary_key="id", columns=COLUMNS)
    started = time.perf_counter()
    info = pipeline.run(resource)
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    print(json.dumps({"seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
