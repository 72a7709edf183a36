"""`make demo` (``python -m sync_pipelines.demo``): the README's run command, end to end, and
`status` reading what it left."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from sync_pipelines.instance import EMBEDDED_YAML

pytestmark = pytest.mark.timeout(480)


def _demo_env(data_dir, **extra_env: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # no credentials and no vendor URLs: the demo starts and points at its own sandbox
        if not k.startswith(("ENCAR_", "KBCHACHACHA_", "ODOO_", "PROCORE_", "GOLIOTH_", "DAGSTER_", "SYNC_"))
    }
    env["SYNC_DATA_DIR"] = str(data_dir)
    env.update(extra_env)
    return env


def _demo(data_dir, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = _demo_env(data_dir, **extra_env)
    return subprocess.run(
        [sys.executable, "-m", "sync_pipelines.demo", *args], env=env, capture_output=True, text=True, timeout=240
    )


def _counts(stdout: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^  (\w+)\s+(\d+) rows$", stdout, re.M)}


@pytest.mark.slow
def test_demo_syncs_every_source_into_sqlite_and_says_where(tmp_path):
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert f"destination (sqlite): {tmp_path / 'warehouse.sqlite'}" in first.stdout
    assert f"run history (Dagster, SQLite): {tmp_path / 'dagster_home'}" in first.stdout
    assert "FAILED" not in first.stdout
    # a Procore connection and a Golioth integration are seeded against the sandbox first
    assert "seeded: Procore user 7001 connected; Golioth integration sandbox (project sandbox-project)" in first.stdout
    # each source's sync job runs once (Procore's once per connection), then its archive job
    # (no variant such as cars_full_sync_job)
    ran = re.findall(r"^(\w+(?: \[\w+\])?): succeeded", first.stdout, re.M)
    assert ran == [
        "cars_sync_job", "cars_archive_job", "odoo_sync_job", "odoo_archive_job", "golioth_sync_job", "golioth_archive_job",
        "procore_sync_job [7001]",
    ], ran
    counts = _counts(first.stdout)
    for table in ("cars", "odoo_invoices", "odoo_purchase_order_lines", "odoo_products", "odoo_stock_quants",
                  "golioth_devices", "device_telemetry_history", "procore_projects", "procore_rfis"):
        assert counts.get(table, 0) > 0, (table, counts)
    assert counts["procore_connections"] == counts["golioth_integrations"] == 1
    assert (tmp_path / "warehouse.sqlite").exists()
    assert (tmp_path / "dagster_home" / "dagster.yaml").exists()
    _status_reads_the_demo(tmp_path)

    # running it again is safe: same sandbox seed, same rows, nothing duplicated (but telemetry:
    # a new sandbox's Golioth devices report at new wall-clock times, new points to land)
    second = _demo(tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    again = _counts(second.stdout)
    assert again.pop("device_telemetry_history") >= counts.pop("device_telemetry_history")
    assert again == counts


def _status_reads_the_demo(data_dir) -> None:
    """`python -m sync_pipelines status --json` after `make demo`, with nothing exported."""
    done = subprocess.run([sys.executable, "-m", "sync_pipelines", "status", "--json"], env=_demo_env(data_dir),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["destination"] == str(data_dir / "warehouse.sqlite")
    by_source = {s["source"]: s for s in report["sources"]}
    assert set(by_source) == {"cars", "odoo", "golioth", "procore"}
    for name, source in by_source.items():
        assert source["last_run"]["status"] == "SUCCESS", source
        assert source["success_24h"]["rate"] == 1.0, (name, source)
    for name in ("cars", "odoo"):
        assert by_source[name]["rows_changed_24h"]["inserted"] > 0
        assert by_source[name]["lag_seconds"] is not None
    assert by_source["procore"]["needs_reauth"] == [] and by_source["golioth"]["integrations_skipped"] == []


def test_demo_ignores_a_production_shell_and_stays_on_the_embedded_default(tmp_path):
    """Exported production settings must not send sandbox data anywhere real."""
    bogus_home = tmp_path / "production_dagster_home"
    # a demo home made by an older version: its stale dagster.yaml is replaced by the shipped one
    (tmp_path / "data" / "dagster_home").mkdir(parents=True)
    (tmp_path / "data" / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = _demo(
        tmp_path / "data",
        SYNC_DATABASE_URL="postgresql://prod:prodpassword@127.0.0.1:1/production",
        DAGSTER_HOME=str(bogus_home),
        DAGSTER_PG_URL="postgresql://dagster:pgpassword@127.0.0.1:1/dagster",
        DAGSTER_PG_HOST="127.0.0.1",
        DAGSTER_PG_PORT="1",
        DAGSTER_PG_USER="dagster",
        DAGSTER_PG_PASSWORD="pgpassword",
        DAGSTER_PG_DB="dagster",
        SYNC_ALERT_WEBHOOK_URL="http://127.0.0.1:1/hooks/production",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "always runs on the embedded default" in result.stdout
    assert f"destination (sqlite): {tmp_path / 'data' / 'warehouse.sqlite'}" in result.stdout
    assert f"run history (Dagster, SQLite): {tmp_path / 'data' / 'dagster_home'}" in result.stdout
    assert "FAILED" not in result.stdout
    assert _counts(result.stdout).get("cars", 0) > 0
    assert (tmp_path / "data" / "dagster_home" / "storage").is_dir()  # SQLite run storage
    assert not bogus_home.exists()
    assert (tmp_path / "data" / "dagster_home" / "dagster.yaml").read_text() == EMBEDDED_YAML.read_text()
    for secret in ("prodpassword", "pgpassword"):
        assert secret not in result.stdout + result.stderr


def test_demo_help_says_it_uses_the_embedded_default(tmp_path):
    result = _demo(tmp_path, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "SYNC_DATABASE_URL, DAGSTER_HOME, DAGSTER_PG_* and SYNC_ALERT_WEBHOOK_URL are ignored" in text
    assert not (tmp_path / "dagster_home").exists()
