"""The cars assets and jobs from the Dagster CLI, as the README documents them (subprocess), on
the embedded default's SQLite (the syncs on Postgres: ``test_sync.py``; the README's no-config
``cars_full_sync_job``: ``foundation/test_operator_commands.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync_pipelines.instance import prepare_dagster_home
from sync_pipelines_tests.cars.conftest import days_from_now

ROOT = Path(__file__).resolve().parents[2]
SELECT = "encar_listings,kbchachacha_listings,cars"
FULL = {"ops": {name: {"config": {"mode": "full"}} for name in ("encar_listings", "kbchachacha_listings")}}


def _dagster(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_full_then_incremental_then_archive_job(cars, database_url, tmp_path):
    home = tmp_path / "dagster_home"
    prepare_dagster_home(home)
    env = {**os.environ, **cars.sandbox.env(), "SYNC_DATABASE_URL": database_url, "DAGSTER_HOME": str(home)}

    full = _dagster(
        ["asset", "materialize", "-m", "sync_pipelines.definitions", "--select", SELECT, "--config-json", json.dumps(FULL)],
        env,
    )
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    assert set(cars.rows()) == cars.listed()

    sold = cars.encar.listed_ids()[7]
    cars.encar.sell(sold)
    incremental = _dagster(["asset", "materialize", "-m", "sync_pipelines.definitions", "--select", SELECT], env)
    assert incremental.returncode == 0, incremental.stdout[-3000:] + incremental.stderr[-3000:]
    assert cars.rows()[("encar", sold)]["sale_status"] == "sold"

    config_file = tmp_path / "archive.yaml"  # `job execute` takes a YAML file (JSON is YAML)
    config_file.write_text(json.dumps({"ops": {"archive_sold_cars_op": {"config": {"as_of": days_from_now(8)}}}}))
    archive = _dagster(
        ["job", "execute", "-m", "sync_pipelines.definitions", "-j", "cars_archive_job", "--config", str(config_file)],
        env,
    )
    assert archive.returncode == 0, archive.stdout[-3000:] + archive.stderr[-3000:]
    assert ("encar", sold) in cars.rows("cars_archive") and ("encar", sold) not in cars.rows()

