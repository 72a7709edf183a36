"""The peer's side of bench/dlt_peer.py, run with the dlt venv's Python (dlt is no product
dependency): the given Odoo requests replayed with requests, their invoices loaded by dlt
(``merge`` on ``id``) into Postgres. Prints one JSON line: seconds (fetch + dlt), rows.

    .venv-dlt/bin/python bench/dlt_load.py BASE_URL REQUESTS.json POSTGRES_URL PIPELINES_DIR
"""

from __future__ import annotations

import json
import sys
import time

import dlt
import requests


def invoices(base_url: str, recorded: list[dict]):
    with requests.Session() as session:
        for r in recorded:
            answer = session.request(r["method"], base_url + r["path"], data=r["body"].encode() or None,
                                     headers=r["headers"]).json()
            result = answer.get("result")
            if not isinstance(result, list):
                continue  # login, version
            for record in result:
                yield flatten(record)


def flatten(record: dict) -> dict:
    # Odoo's many2one [id, "name"] to two columns and its false to null, as a dlt user would.
    out = {}
    for key, value in record.items():
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], int):
            out[key], out[f"{key}_name"] = value
        else:
            out[key] = None if value is False else value
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
                            primary_key="id")
    started = time.perf_counter()
    info = pipeline.run(resource)
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    print(json.dumps({"seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
