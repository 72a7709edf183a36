"""Odoo's sync on two Celery workers (RabbitMQ broker, Postgres storage and destination):
both workers run steps, the destination matches the sandbox, a worker killed mid-step fails
its step cleanly (no hanging run), the re-execution from failure succeeds, no worker is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from sync_pipelines.odoo.settings import MODEL_SPECS
from sync_pipelines_tests.processes import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

BROKER_URL = os.environ.get("SYNC_TEST_CELERY_BROKER_URL", "pyamqp://guest:guest@127.0.0.1:5672//")
JOB = "odoo_sync_job"


class Workers:
    """Celery workers as subprocesses, each in its own process group, on this test's own queue."""

    def __init__(self, env: dict[str, str], log_dir):
        self.env, self.log_dir = env, log_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "sync_pipelines", "celery", "worker", "-n", name, "--",
             "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            while "ready." not in self.log(name):
                assert process.poll() is None, f"worker {name} exited:\n{self.log(name)[-3000:]}"
                assert time.monotonic() < deadline, f"worker {name} never got ready:\n{self.log(name)[-3000:]}"
                time.sleep(0.2)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text()

    def kill(self, name: str) -> None:
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def leftovers(self) -> list[int]:
        """Process groups of our workers that still have a member (a forked pool process)."""
        alive = []
        for process in self.processes.values():
            try:
                os.killpg(process.pid, 0)
                alive.append(process.pid)
            except ProcessLookupError:
                pass
        return alive


def delete_queue(queue: str) -> None:
    from kombu import Connection

    with Connection(BROKER_URL, connect_timeout=5) as connection:
        connection.default_channel.queue_delete(queue)


def run_job(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "sync_pipelines.definitions", "-j", JOB, *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


REEXECUTE = textwrap.dedent("""
    import sys
    from dagster import DagsterInstance, ReexecutionOptions, execute_job
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    job = ReconstructableRepository.for_module("sync_pipelines.definitions", "defs").get_reconstructable_job(sys.argv[1])
    with DagsterInstance.get() as instance:
        result = execute_job(job, instance, reexecution_options=ReexecutionOptions.from_failure(sys.argv[2], instance))
        print(result.run_id, result.success)
""")


def celery_workers_of(instance, run_id: str) -> dict[str, str]:
    """Step key -> the worker its "Executing steps ... in celery worker" engine event names."""
    names = {}
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        metadata = record.dagster_event.engine_event_data.metadata
        if "Celery worker" in metadata:
            assert record.step_key not in names, f"step {record.step_key} ran twice"
            names[record.step_key] = metadata["Celery worker"].value.split("@")[0]
    return names


def started_steps(instance, run_id: str) -> list[str]:
    return [r.step_key for r in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)]


def assert_destination_matches_sandbox(sandbox, pg_url) -> None:
    from sync_pipelines.warehouse import Warehouse

    vendor = sandbox.vendors["odoo"]
    wh = Warehouse.for_url(pg_url)
    try:
        for spec in MODEL_SPECS:
            truth = {r["id"] for r in vendor._search(spec.model, list(spec.domain), {"active_test": False})}
            with wh.engine.connect() as conn:
                import sqlalchemy as sa

                stored = {row[0] for row in conn.execute(sa.text(f"SELECT id FROM {spec.table}"))}
            assert stored == truth, spec.table
    finally:
        wh.dispose()


@pytest.mark.slow
def test_odoo_sync_on_two_celery_workers_survives_a_killed_worker(sandbox, pg_url, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    queue = f"sync_test_{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ, **sandbox.env(),
        "DAGSTER_HOME": str(home), "DAGSTER_PG_URL": pg_url, "SYNC_DATABASE_URL": pg_url,
        "SYNC_EXECUTOR": "celery", "SYNC_CELERY_BROKER_URL": BROKER_URL, "SYNC_CELERY_QUEUE": queue,
    }
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    tag = uuid.uuid4().hex[:6]
    first, second = f"sync-a-{tag}", f"sync-b-{tag}"
    workers = Workers(env, tmp_path)
    try:
        workers.start(first)
        workers.start(second)
        workers.wait_ready()
        with DagsterInstance.get() as instance:
            sync = run_job(env)
            output = sync.communicate(timeout=180)[0]
            assert sync.returncode == 0, output[-4000:]
            [run] = instance.get_runs(RunsFilter(job_name=JOB))
            assert run.status == DagsterRunStatus.SUCCESS
            ran_on = celery_workers_of(instance, run.run_id)
            assert set(ran_on) == set(started_steps(instance, run.run_id))  # every step, once, on a worker
            assert {spec.asset_name for spec in MODEL_SPECS} <= set(ran_on)  # one step per Odoo model
            assert set(ran_on.values()) == {first, second}, ran_on
            assert_destination_matches_sandbox(sandbox, pg_url)

            # A worker killed while its step waits on Odoo: that step fails, the others finish.
            sandbox.faults.add("slow", vendor="odoo", delay=30, times=1)
            killed = run_job(env, "--tags", json.dumps({"test": "kill"}))
            deadline = time.monotonic() + 120
            victim = None
            while victim is None:
                assert killed.poll() is None and time.monotonic() < deadline, killed.communicate()[0][-4000:]
                runs = instance.get_runs(RunsFilter(job_name=JOB, tags={"test": "kill"}))
                if runs and started_steps(instance, runs[0].run_id):
                    [victim] = celery_workers_of(instance, runs[0].run_id).values()
                time.sleep(0.2)
            workers.kill(victim)
            output = killed.communicate(timeout=150)[0]
            assert killed.returncode != 0, output[-4000:]
            [failed] = instance.get_runs(RunsFilter(job_name=JOB, tags={"test": "kill"}))
            assert failed.status == DagsterRunStatus.FAILURE
            failures = instance.all_logs(failed.run_id, of_type=DagsterEventType.STEP_FAILURE)
            assert len(failures) == 1
            assert f"Celery worker {victim}@" in failures[0].dagster_event.step_failure_data.error.message
            succeeded = {r.step_key for r in instance.all_logs(failed.run_id, of_type=DagsterEventType.STEP_SUCCESS)}
            assert {spec.asset_name for spec in MODEL_SPECS} - {failures[0].step_key} <= succeeded
            sandbox.faults.clear()

            retry = subprocess.run(
                [sys.executable, "-c", REEXECUTE, JOB, failed.run_id],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=150,
            )
            assert retry.returncode == 0 and retry.stdout.split()[-1] == "True", retry.stdout[-3000:] + retry.stderr[-3000:]
            retried = instance.get_run_by_id(retry.stdout.split()[-2])
            assert retried.parent_run_id == failed.run_id and retried.status == DagsterRunStatus.SUCCESS
            assert set(celery_workers_of(instance, retried.run_id).values()) == {first if victim == second else second}
            assert_destination_matches_sandbox(sandbox, pg_url)
    finally:
        workers.stop_all()
        delete_queue(queue)
    assert workers.leftovers() == []
