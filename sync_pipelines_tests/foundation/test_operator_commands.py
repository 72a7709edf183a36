"""The README's "Operating from the CLI" commands, run as written against the sandbox.

Each paragraph of the section's first ``bash`` block runs in ``bash`` (one temp embedded
default: SQLite warehouse, SQLite Dagster home) and is checked for what its comment says,
so the documentation cannot drift from what works.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.scheduler.instigation import InstigatorStatus

from sync_pipelines.instance import prepare_dagster_home
from sync_pipelines.procore.resources import ProcoreResource
from sync_pipelines.procore.settings import OOB_REDIRECT_URI
from sync_pipelines.warehouse import Warehouse
from sync_pipelines_tests.conftest import CountingWarehouse
from sync_pipelines_tests.processes import ROOT

DOCUMENTED_RANGE = "--from 2026-11-24 --to 2026-11-30"
RANGE_START_TAG = "dagster/asset_partition_range_start"


def readme_paragraphs() -> list[str]:
    """The first ``bash`` block of "## Operating from the CLI", split at blank lines."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Operating from the CLI\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("\n```", 1)[0]
    return [p for p in block.split("\n\n") if p.strip()]


def _run(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=480)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{script}\n-> exit {done.returncode}\n{output[-4000:]}"
    return output


def _schedule_status(home: Path, name: str) -> InstigatorStatus | None:
    """The state stored in the instance; None: never touched, the code's default applies."""
    with DagsterInstance.from_config(str(home)) as instance:
        states = [s for s in instance.all_instigator_state() if s.name == name]
        return states[0].status if states else None


def _runs(home: Path, **tags: str):
    with DagsterInstance.from_config(str(home)) as instance:
        return instance.get_runs(filters=RunsFilter(tags=tags) if tags else None)


def _seed(env: dict[str, str]) -> None:
    """What an operator does once: connect Procore user 7001, add the Golioth integration."""
    page = requests.get(ProcoreResource().oauth().authorize_url(OOB_REDIRECT_URI), timeout=10)
    code = re.search(r"<code id='code'>([^<]+)</code>", page.text)[1]
    assert "connected Procore user 7001" in _run(f"python -m sync_pipelines procore connect --code {code}", env)
    _run("python -m sync_pipelines golioth integrations add --project sandbox-project "
         "--api-key-env GOLIOTH_SANDBOX_API_KEY --id acme", env)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_documented_operator_command_works(sandbox, tmp_path):
    paragraphs = readme_paragraphs()
    keys = ["--select group:odoo", "cars_full_sync_job", "golioth backfill", "--partition 7001", "run list",
            "schedule stop", "schedule start"]
    assert len(paragraphs) == len(keys) and all(k in p for k, p in zip(keys, paragraphs, strict=True)), paragraphs

    home = tmp_path / "dagster_home"
    prepare_dagster_home(home)
    database_url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    env = {**os.environ, "DAGSTER_HOME": str(home), "SYNC_DATABASE_URL": database_url,
           "SYNC_SECRET_KEY": Fernet.generate_key().decode(),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    warehouse = CountingWarehouse(Warehouse.for_url(database_url))
    _seed(env)
    odoo, full, backfill, procore, run_list, stop, start = paragraphs

    _run(odoo, env)
    assert warehouse.count("odoo_invoices") > 0 and warehouse.count("odoo_products") > 0

    output = _run(full, env)
    assert "encar (full)" in output and "kbchachacha (full)" in output and warehouse.count("cars") > 0
    assert "(incremental)" not in output  # the job's own default config: no run config given

    # The sandbox's telemetry is recent: the documented range moved to the last days.
    first = dt.date.today() - dt.timedelta(days=3)
    last = first + dt.timedelta(days=1)
    assert DOCUMENTED_RANGE in backfill
    _run(backfill.replace(DOCUMENTED_RANGE, f"--from {first} --to {last}"), env)
    [run] = _runs(home, **{RANGE_START_TAG: f"{first}|acme"})  # golioth_telemetry keys: day|integration
    assert run.status == DagsterRunStatus.SUCCESS and run.tags["dagster/asset_partition_range_end"] == f"{last}|acme"
    days = f"ts >= '{first}' AND ts < '{last + dt.timedelta(days=1)}'"
    assert warehouse.count("device_telemetry_history") == warehouse.count("device_telemetry_history", days) > 0

    _run(procore, env)
    [run] = _runs(home, **{"dagster/partition": "7001"})
    assert run.status == DagsterRunStatus.SUCCESS
    assert warehouse.count("procore_projects") > 0 and warehouse.count("procore_rfis") > 0

    output = _run(run_list, env)
    assert all(f"Run: {r.run_id}" in output for r in _runs(home))
    without_home = {k: v for k, v in env.items() if k != "DAGSTER_HOME"}  # why the README asks for it
    refused = subprocess.run(["bash", "-c", run_list], cwd=ROOT, env=without_home, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode != 0 and "DagsterHomeNotSetError" in refused.stderr

    assert _schedule_status(home, "cars_sync_schedule") != InstigatorStatus.STOPPED  # running by default
    _run(stop, env)
    assert _schedule_status(home, "cars_sync_schedule") == InstigatorStatus.STOPPED
    output = _run(start, env)
    assert _schedule_status(home, "cars_sync_schedule") == InstigatorStatus.RUNNING
    assert "cars_sync_schedule [RUNNING]" in output
