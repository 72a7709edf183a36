"""The Odoo job from the Dagster CLI, as an operator runs it (subprocess, sandbox env)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sync_pipelines.instance import prepare_dagster_home
from sync_pipelines.odoo.settings import INVOICES, PRODUCTS

ROOT = Path(__file__).resolve().parents[2]


def _dagster(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_materialize_full_then_incremental(odoo, database_url, tmp_path):
    home = tmp_path / "dagster_home"
    prepare_dagster_home(home)
    env = {**os.environ, **odoo.sandbox.env(), "SYNC_DATABASE_URL": database_url, "DAGSTER_HOME": str(home)}
    select = f"{INVOICES.asset_name},{PRODUCTS.asset_name}"
    full = {"ops": {name: {"config": {"mode": "full", "batch_size": 10}} for name in select.split(",")}}
    result = _dagster(
        ["asset", "materialize", "-m", "sync_pipelines.definitions", "--select", select,
         "--config-json", json.dumps(full)],
        env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert {r["id"] for r in odoo.rows(INVOICES.table)} == odoo.odoo_ids(INVOICES)
    assert {r["id"] for r in odoo.rows(PRODUCTS.table)} == odoo.odoo_ids(PRODUCTS)
    assert odoo.sandbox.env()["ODOO_API_KEY"] not in result.stdout + result.stderr

    odoo.control("access_denied", on=True)
    failed = _dagster(["asset", "materialize", "-m", "sync_pipelines.definitions", "--select", INVOICES.asset_name], env)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "access denied" in output.lower()
    assert odoo.sandbox.env()["ODOO_API_KEY"] not in output
