"""`make demo` (``python -m sync_pipelines.demo``): the README's run command, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(300)


def _demo(data_dir) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        # no credentials and no vendor URLs: the demo starts and points at its own sandbox
        if not k.startswith(("ENCAR_", "KBCHACHACHA_", "ODOO_", "PROCORE_", "GOLIOTH_", "DAGSTER_", "SYNC_"))
    }
    env["SYNC_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "sync_pipelines.demo"], env=env, capture_output=True, text=True, timeout=240
    )


def _counts(stdout: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^  (\w+)\s+(\d+) rows$", stdout, re.M)}


def test_demo_syncs_every_source_into_sqlite_and_says_where(tmp_path):
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert f"destination (sqlite): {tmp_path / 'warehouse.sqlite'}" in first.stdout
    assert f"run history (Dagster, SQLite): {tmp_path / 'dagster_home'}" in first.stdout
    assert "FAILED" not in first.stdout
    counts = _counts(first.stdout)
    for table in ("cars", "odoo_invoices", "odoo_purchase_order_lines", "odoo_products", "odoo_stock_quants"):
        assert counts.get(table, 0) > 0, (table, counts)
    assert (tmp_path / "warehouse.sqlite").exists()
    assert (tmp_path / "dagster_home" / "dagster.yaml").exists()

    # running it again is safe: same sandbox seed, same rows, nothing duplicated
    second = _demo(tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert _counts(second.stdout) == counts
