"""An Odoo sync killed midway (SIGKILL of the CLI process) loses and duplicates nothing:
the cursor never runs ahead of the rows it covers, and the next run resumes from it."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from sync_pipelines.instance import prepare_dagster_home
from sync_pipelines.odoo.settings import INVOICES, SOURCE
from sync_pipelines_tests.processes import dagster_cli, kill_when

SLOW_INVOICES = {"ops": {INVOICES.asset_name: {"config": {"mode": "incremental", "batch_size": 4, "delay_ms": 400}}}}


def _key(write_date) -> str:
    text = write_date.isoformat(sep=" ") if isinstance(write_date, dt.datetime) else str(write_date)
    return text[:19]


@pytest.mark.timeout(300)
def test_sync_killed_midway_then_rerun_lands_every_invoice_exactly_once(odoo, database_url, tmp_path):
    home = tmp_path / "dagster_home"
    prepare_dagster_home(home)
    env = {**os.environ, **odoo.sandbox.env(), "SYNC_DATABASE_URL": database_url, "DAGSTER_HOME": str(home)}
    total = len(odoo.odoo_ids(INVOICES))

    run = dagster_cli(
        ["asset", "materialize", "-m", "sync_pipelines.definitions", "--select", INVOICES.asset_name,
         "--config-json", json.dumps(SLOW_INVOICES)],
        env,
    )
    kill_when(run, lambda: odoo.warehouse.count(INVOICES.table) >= 8)

    rows = odoo.rows(INVOICES.table)
    assert 8 <= len(rows) < total
    cursor = odoo.warehouse.get_cursor(SOURCE, INVOICES.entity)
    assert cursor is not None
    # every record up to the cursor landed (the cursor commits with its batch, never before)
    position = (cursor["write_date"][:19], cursor["id"])
    landed = {r["id"] for r in rows}
    covered = {
        r["id"] for r in odoo.vendor.records[INVOICES.model].values()
        if r["id"] in odoo.odoo_ids(INVOICES) and (_key(r["write_date"]), r["id"]) <= position
    }
    assert covered <= landed

    again = odoo.sync(types="invoices")
    assert again.success
    ids = [r["id"] for r in odoo.rows(INVOICES.table)]
    assert len(ids) == len(set(ids)) == total
    assert set(ids) == odoo.odoo_ids(INVOICES)
    assert again.meta(INVOICES)["inserted"] == total - len(landed)
