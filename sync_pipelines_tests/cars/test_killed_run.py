"""A cars sync killed midway (SIGKILL of the CLI process) loses and duplicates nothing."""

from __future__ import annotations

import json
import os

import pytest

from sync_pipelines.instance import prepare_dagster_home
from sync_pipelines_tests.processes import dagster_cli, kill_when

# Batches of 2 pages (the default 5,000 cars would land all 1,500 in one transaction).
FULL_ENCAR = {"ops": {"encar_listings": {"config": {"mode": "full", "listing_batch_rows": 100}}}}


@pytest.mark.timeout(300)
def test_sync_killed_midway_then_rerun_lands_every_car_exactly_once(cars, database_url, tmp_path):
    cars.encar.control("set_size", {"count": 1500})  # 30 pages of 50
    cars.sandbox.faults.add("slow", vendor="encar", delay=0.25, times=None, path=r"/search/")
    home = tmp_path / "dagster_home"
    prepare_dagster_home(home)
    env = {**os.environ, **cars.sandbox.env(), "SYNC_DATABASE_URL": database_url, "DAGSTER_HOME": str(home)}

    run = dagster_cli(
        ["asset", "materialize", "-m", "sync_pipelines.definitions", "--select", "encar_listings",
         "--config-json", json.dumps(FULL_ENCAR)],
        env,
    )
    kill_when(run, lambda: cars.warehouse.count("cars", "source = 'encar'") >= 200)

    landed = cars.warehouse.count("cars", "source = 'encar'")
    assert 200 <= landed < 1500
    assert landed % 100 == 0  # each batch of whole pages commits whole or not at all
    assert cars.warehouse.count("cars", "sale_status <> 'active'") == 0

    cars.sandbox.faults.clear()
    again = cars.sync("full")
    meta = again.meta("encar_listings")
    assert meta["inserted"] == 1500 - landed and meta["newly_sold"] == 0
    assert cars.warehouse.count("cars", "source = 'encar'") == 1500
    assert {k for k in cars.rows() if k[0] == "encar"} == {("encar", i) for i in cars.encar.listed_ids()}
    assert again.checks()["no_duplicate_keys"] is True
