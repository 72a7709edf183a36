"""The Odoo job from the Dagster CLI, as an operator runs it (subprocess, sandbox env), on the
embedded default's SQLite (the syncs on Postgres: ``test_sync.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync_pipelines.instance import prepare_dagster_home
from sync_pipelines.odoo.settings import INVOICES, MODEL_SPECS, PRODUCTS

ROOT = Path(__file__).resolve().parents[2]


def _dagster(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_refresh_all_then_full_invoices_then_access_denied(odoo, database_url, tmp_path):
    home = tmp_path / "dagster_home"
    prepare_dagster_home(home)
    env = {**os.environ, **odoo.sandbox.env(), "SYNC_DATABASE_URL": database_url, "DAGSTER_HOME": str(home)}
    # "Refresh all": one launch of the job
    refresh = _dagster(["job", "execute", "-m", "sync_pipelines.definitions", "-j", "odoo_sync_job"], env)
    assert refresh.returncode == 0, refresh.stdout[-3000:] + refresh.stderr[-3000:]
    for spec in MODEL_SPECS:
        assert {r["id"] for r in odoo.rows(spec.table)} == odoo.odoo_ids(spec), spec.table

    odoo.control("delete", model="account.move", id=min(odoo.odoo_ids(INVOICES)))
    select = f"{INVOICES.asset_name},{PRODUCTS.asset_name}"
    full = {"ops": {name: {"config": {"mode": "full", "batch_size": 10}} for name in select.split(",")}}
    result = _dagster(
        ["asset", "materialize", "-m", "sync_pipelines.definitions", "--select", select,
         "--config-json", json.dumps(full)],
        env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(odoo.rows(INVOICES.table, "deleted_at IS NOT NULL")) == 1  # full mode found the deletion
    assert {r["id"] for r in odoo.rows(PRODUCTS.table)} == odoo.odoo_ids(PRODUCTS)
    assert odoo.sandbox.env()["ODOO_API_KEY"] not in result.stdout + result.stderr

    odoo.control("access_denied", on=True)
    failed = _dagster(["asset", "materialize", "-m", "sync_pipelines.definitions", "--select", INVOICES.asset_name], env)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "access denied" in output.lower()
    assert odoo.sandbox.env()["ODOO_API_KEY"] not in output
