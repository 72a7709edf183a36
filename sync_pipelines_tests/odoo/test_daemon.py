"""Production as deployed: `dagster-daemon run` on the root dagster.yaml with Postgres storage
evaluates `odoo_changes_sensor`, queues the run it requests, launches it, and the run syncs
Odoo into the Postgres destination, which shares the database with Dagster's storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from sync_pipelines.odoo.settings import MODEL_SPECS
from sync_pipelines.warehouse import Warehouse
from sync_pipelines_tests.processes import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]


def test_daemon_runs_the_sensor_requested_sync_on_the_production_instance(sandbox, pg_url, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {
        **os.environ,
        **sandbox.env(),
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": pg_url,
        "SYNC_DATABASE_URL": pg_url,
        "AUTO_SYNC_TYPES": "invoices,products",
    }
    daemon = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    try:
        deadline = time.monotonic() + 240
        run = None
        with DagsterInstance.get() as instance:
            while time.monotonic() < deadline and daemon.poll() is None:
                runs = instance.get_runs(RunsFilter(job_name="odoo_sync_job"))
                run = runs[0] if runs else None
                if run is not None and run.is_finished:
                    break
                time.sleep(1)
            assert daemon.poll() is None, "the daemon exited"
            assert run is not None, "the sensor requested no run"
            assert run.status == DagsterRunStatus.SUCCESS, run.status
            assert run.tags["sync_pipelines/trigger"] == "odoo_changes_sensor"
            assert run.tags["sync_pipelines/source"] == "odoo"
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        output = daemon.communicate(timeout=30)[0]
    wh = Warehouse.for_url(pg_url)
    try:
        for spec in MODEL_SPECS:
            if spec.sync_type in ("invoices", "products"):
                assert wh.count(spec.table) > 0, (spec.table, output[-3000:])
            else:
                assert wh.count(spec.table) == 0, spec.table  # AUTO_SYNC_TYPES leaves them out
    finally:
        wh.dispose()
