"""Run health (issue 16): a run whose worker is SIGKILLed is failed and its pool slots freed by
the next run, by the daemon, or by ``python -m sync_pipelines runs heal``; a live run is never
touched; a run waiting on a pool stops on SIGTERM or Ctrl-C (SIGINT); step workers die with their run worker.

Real processes only: ``dagster job execute`` in its own process group, killed with SIGKILL,
on SQLite and on Postgres (Dagster storage and destination alike); the longest pairs of that
matrix run in ``make faults`` (marked ``faults``), not in ``make test``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from sync_pipelines import run_health
from sync_pipelines.odoo.settings import MODEL_SPECS
from sync_pipelines_tests.processes import ROOT, dagster_cli, kill_when

pytestmark = [pytest.mark.timeout(420), pytest.mark.serial]

ODOO_SLOW = {"ops": {"odoo_invoices": {"config": {"mode": "full", "batch_size": 2, "delay_ms": 1000}}}}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, sandbox, tmp_path, monkeypatch):
    """Sandbox vendors, a destination and a Dagster home on the production dagster.yaml: both
    in SQLite files, or both in one fresh Postgres database."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {**os.environ, **sandbox.env(), "DAGSTER_HOME": str(home)}
    env.pop("DAGSTER_PG_URL", None)
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        env["DAGSTER_PG_URL"] = url
    else:
        url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    env["SYNC_DATABASE_URL"] = url
    for key in ("DAGSTER_HOME", "DAGSTER_PG_URL", "SYNC_DATABASE_URL"):
        if key in env:
            monkeypatch.setenv(key, env[key])
        else:
            monkeypatch.delenv(key, raising=False)
    from sync_pipelines.warehouse import Warehouse

    # Create Dagster's storage once: processes creating a fresh SQLite storage at the same
    # moment can both stamp its alembic version (Dagster's race, not run health's).
    with DagsterInstance.get():
        pass
    warehouse = Warehouse.for_url(url)
    yield Stack(sandbox, warehouse, env, tmp_path)
    warehouse.dispose()


class Stack:
    def __init__(self, sandbox, warehouse, env, tmp_path):
        self.sandbox, self.warehouse, self.env, self.tmp_path = sandbox, warehouse, env, tmp_path

    def job(self, name: str, config: dict | None = None) -> subprocess.Popen:
        args = ["job", "execute", "-m", "sync_pipelines.definitions", "-j", name]
        if config:
            path = self.tmp_path / f"{name}.json"
            path.write_text(json.dumps(config))
            args += ["--config", str(path)]
        return dagster_cli(args, self.env)

    def runs(self, job_name: str):
        with DagsterInstance.get() as instance:
            return list(reversed(instance.get_runs(RunsFilter(job_name=job_name))))  # oldest first

    def held(self) -> dict[str, list[str]]:
        with DagsterInstance.get() as instance:
            return run_health.held_slots(instance)

    def failure_message(self, run_id: str) -> str:
        with DagsterInstance.get() as instance:
            [event] = [
                e for e in instance.all_logs(run_id)
                if e.dagster_event is not None and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
            ]
            return event.dagster_event.message or ""


def _slow_source(stack: Stack, source: str) -> tuple[str, dict | None, object]:
    """A job of ``source`` that runs long enough to be killed midway, and its landing probe."""
    if source == "cars":
        stack.sandbox.vendors["encar"].control("set_size", {"count": 1500})
        stack.sandbox.faults.add("slow", vendor="encar", delay=0.25, times=None, path=r"/search/")
        # pages land 100 cars at a time (the default batch would land all 1,500 at the listing's end)
        paged = {"ops": {"encar_listings": {"config": {"mode": "full", "listing_batch_rows": 100}}}}
        return "cars_full_sync_job", paged, lambda: stack.warehouse.count("cars", source="encar") >= 150
    return "odoo_sync_job", ODOO_SLOW, lambda: stack.warehouse.count("odoo_invoices") >= 4


def _assert_landed_exactly(stack: Stack, source: str) -> None:
    if source == "cars":
        encar, kb = stack.sandbox.vendors["encar"], stack.sandbox.vendors["kbchachacha"]
        assert stack.warehouse.count("cars", source="encar") == len(encar.listed_ids()) == 1500
        assert stack.warehouse.count("cars", source="kbchachacha") == len(kb.listed_ids())
        return
    vendor = stack.sandbox.vendors["odoo"]
    for spec in MODEL_SPECS:
        truth = {r["id"] for r in vendor._search(spec.model, list(spec.domain), {"active_test": False})}
        assert stack.warehouse.count(spec.table) == len(truth), spec.table


def _finish(process: subprocess.Popen, timeout: float) -> str:
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"still running after {timeout}s:\n{process.communicate()[0][-3000:]}") from None


@pytest.mark.parametrize(("stack", "source"), [
    pytest.param("sqlite", "cars", id="sqlite-cars", marks=pytest.mark.faults),
    pytest.param("sqlite", "odoo", id="sqlite-odoo"),
    pytest.param("postgres", "cars", id="postgres-cars", marks=pytest.mark.postgres),
    pytest.param("postgres", "odoo", id="postgres-odoo", marks=[pytest.mark.postgres, pytest.mark.faults]),
], indirect=["stack"])
def test_sigkilled_run_is_failed_and_the_same_job_again_just_works(stack, source):
    job, config, landed_enough = _slow_source(stack, source)
    kill_when(stack.job(job, config), landed_enough)
    [killed] = stack.runs(job)
    assert killed.status == DagsterRunStatus.STARTED
    assert killed.run_id in stack.held()  # the dead run holds its vendor's pool slot

    stack.sandbox.faults.clear()
    started = time.monotonic()
    again = stack.job(job)  # the same job as it is scheduled, at full speed
    output = _finish(again, 120)
    assert again.returncode == 0, output[-3000:]
    assert time.monotonic() - started < 60

    killed_now, second = stack.runs(job)
    assert killed_now.status == DagsterRunStatus.FAILURE
    assert run_health.WORKER_DIED in stack.failure_message(killed.run_id)
    assert "is gone" in stack.failure_message(killed.run_id)
    assert second.status == DagsterRunStatus.SUCCESS
    assert stack.held() == {}
    _assert_landed_exactly(stack, source)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Each storage with one signal in `make test`; the other two pairs in `make faults`.
@pytest.mark.parametrize(("stack", "stop_signal"), [
    pytest.param("sqlite", signal.SIGTERM, id="sqlite-sigterm"),
    pytest.param("sqlite", signal.SIGINT, id="sqlite-sigint", marks=pytest.mark.faults),
    pytest.param("postgres", signal.SIGTERM, id="postgres-sigterm", marks=[pytest.mark.postgres, pytest.mark.faults]),
    pytest.param("postgres", signal.SIGINT, id="postgres-sigint", marks=pytest.mark.postgres),
], indirect=["stack"])
def test_live_run_is_never_healed_a_waiting_run_stops_on_a_signal_and_workers_die_with_their_parent(stack, stop_signal):
    job, config, landed_enough = _slow_source(stack, "cars")
    stack.sandbox.faults.clear()
    stack.sandbox.faults.add("slow", vendor="encar", delay=1.0, times=None, path=r"/search/")
    live = stack.job(job, config)
    deadline = time.monotonic() + 90
    while not landed_enough():
        assert live.poll() is None and time.monotonic() < deadline, "the live run did not get going"
        time.sleep(0.2)

    waiting = stack.job(job, config)
    deadline = time.monotonic() + 90
    while not any(r.status == DagsterRunStatus.STARTED for r in stack.runs(job)[1:]) or len(stack.held()) < 2:
        assert waiting.poll() is None and time.monotonic() < deadline, "the second run never waited on the pool"
        time.sleep(0.5)
    # the waiting run healed nothing: the live run holds its slot and runs on
    heal = subprocess.run(
        [sys.executable, "-m", "sync_pipelines", "runs", "heal"], cwd=ROOT, env=stack.env,
        capture_output=True, text=True, timeout=120,
    )
    assert heal.returncode == 0, heal.stderr
    first, second = stack.runs(job)
    assert first.status == second.status == DagsterRunStatus.STARTED
    assert f"left run {first.run_id}" in heal.stdout and "is running" in heal.stdout
    assert "failed run" not in heal.stdout

    before = _cpu_seconds(waiting.pid)
    time.sleep(3)
    assert _cpu_seconds(waiting.pid) - before < 0.6  # waiting does not spin a core

    asked = time.monotonic()
    if stop_signal == signal.SIGINT:
        os.killpg(waiting.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    else:
        waiting.send_signal(signal.SIGTERM)  # what a supervisor does: the run worker only
    _finish(waiting, 10)
    assert time.monotonic() - asked < 10
    assert stack.runs(job)[1].status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)

    # kill only the live run's CLI parent: its step workers must not outlive it
    workers = [pid for pid in _children(live.pid) if "multiprocessing" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert workers, "the cars run has step worker processes"
    os.kill(live.pid, signal.SIGKILL)
    live.wait(timeout=30)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], "step workers outlived their run worker"
    count = stack.warehouse.count("cars")
    time.sleep(2)
    assert stack.warehouse.count("cars") == count  # nobody writes any more
    try:
        os.killpg(live.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.slow
@pytest.mark.parametrize("stack", [  # the production daemon's storage in `make test`, SQLite's in `make faults`
    pytest.param("sqlite", marks=pytest.mark.faults), pytest.param("postgres", marks=pytest.mark.postgres),
], indirect=True)
def test_with_the_daemon_a_killed_run_is_failed_and_a_launched_run_s_retry_succeeds(stack):
    """The daemon alone: a SIGKILLed `dagster job execute` run is failed by run_health_sensor,
    its slot freed, and retried once by that sensor (Dagster's daemon cannot: no code-location
    origin), the retry succeeding within 3 minutes; a run the daemon launched (`dagster job launch`, as schedules and sensors
    do) whose worker is SIGKILLed is failed and re-run by the run-retry policy, and the retry
    is not held up by the dead run's pool slot."""
    job, config, landed_enough = _slow_source(stack, "odoo")
    stack.env["AUTO_SYNC_ENABLED"] = "false"  # no sensor-requested runs: only the ones below
    daemon = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        kill_when(stack.job(job, config), landed_enough)
        [cli_run] = stack.runs(job)
        deadline = time.monotonic() + 180
        while stack.runs(job)[0].status == DagsterRunStatus.STARTED and time.monotonic() < deadline:
            assert daemon.poll() is None, "the daemon exited"
            time.sleep(1)
        assert stack.runs(job)[0].status == DagsterRunStatus.FAILURE
        message = stack.failure_message(cli_run.run_id)
        # failed by the daemon's sensor, or first by a run's start check; the sensor retries it either way
        assert run_health.WORKER_DIED in message and "Marked failed by the " in message, message
        assert cli_run.run_id not in stack.held()
        # ... and the sensor itself retries it (Dagster's daemon cannot: no code-location origin)
        retries = []
        while time.monotonic() < deadline and daemon.poll() is None:
            retries = [r for r in stack.runs(job) if r.tags.get("dagster/parent_run_id") == cli_run.run_id]
            if retries and retries[0].is_finished:
                break
            time.sleep(1)
        assert len(retries) == 1, [(r.status, r.tags) for r in stack.runs(job)]
        [cli_retry] = retries
        assert cli_retry.status == DagsterRunStatus.SUCCESS, cli_retry.status
        assert cli_retry.tags.get("dagster/root_run_id") == cli_run.run_id
        assert cli_retry.tags.get("dagster/retry_number") == "1"
        assert cli_retry.run_config == cli_run.run_config
        time.sleep(35)  # another sensor tick: still one retry
        assert len(stack.runs(job)) == 2

        config_path = stack.tmp_path / "odoo_slow.json"
        config_path.write_text(json.dumps(config))
        launch = subprocess.run(
            [sys.executable, "-m", "dagster", "job", "launch", "-w", str(ROOT / "workspace.yaml"), "-j", job,
             "-c", str(config_path)], cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120,
        )
        assert launch.returncode == 0, launch.stdout + launch.stderr
        deadline, worker = time.monotonic() + 150, None
        while time.monotonic() < deadline and not worker:
            launched = stack.runs(job)[2:]
            worker = launched[0].tags.get(run_health.PID_TAG) if launched and landed_enough() else None
            time.sleep(0.2)
        assert worker, "the launched run never started"
        stack.sandbox.faults.clear()
        os.kill(int(worker), signal.SIGKILL)
        deadline = time.monotonic() + 180
        runs = stack.runs(job)
        while time.monotonic() < deadline and daemon.poll() is None:
            runs = stack.runs(job)
            if len(runs) >= 4 and runs[-1].is_finished:
                break
            time.sleep(1)
        assert daemon.poll() is None, "the daemon exited"
        assert len(runs) == 4, [(r.status, r.tags) for r in runs]
        _, _, killed, retry = runs
        assert killed.status == DagsterRunStatus.FAILURE
        assert retry.tags.get("dagster/parent_run_id") == killed.run_id
        assert retry.status == DagsterRunStatus.SUCCESS, (retry.status, stack.failure_message(retry.run_id))
        assert stack.held() == {}
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.communicate(timeout=30)
    _assert_landed_exactly(stack, "odoo")


def test_judging_a_worker():
    here = run_health.worker_tags()
    assert run_health.judge_worker(here, None).state == "alive"
    gone = {**here, run_health.PID_TAG: "999999999"}
    assert run_health.judge_worker(gone, None).state == "dead"
    boot, rest = here[run_health.PROCESS_TAG].split("/", 1)
    ns, ticks = rest.rsplit("/", 1)
    reused = {**here, run_health.PROCESS_TAG: f"{boot}/{ns}/{int(ticks) - 1}"}
    assert "another process" in run_health.judge_worker(reused, None).reason
    elsewhere = {**here, run_health.HOST_TAG: "another-host"}
    now = time.time()
    assert run_health.judge_worker(elsewhere, now - 5, now).state == "alive"
    assert run_health.judge_worker(elsewhere, now - run_health.HEARTBEAT_STALE_SECONDS - 1, now).state == "dead"
    assert run_health.judge_worker(elsewhere, None, now).state == "unknown"
    assert run_health.judge_worker({}, None).state == "unknown"
    # a retry carries its parent's worker tags until its own worker stamps it
    inherited = {**run_health.worker_tags("parent"), run_health.PID_TAG: "999999999", "dagster/parent_run_id": "parent"}
    assert run_health.judge_worker(run_health.own_worker_tags("retry", inherited), None).state == "unknown"
    assert run_health.judge_worker(run_health.own_worker_tags("parent", inherited), None).state == "dead"


def test_a_killed_command_s_temporary_dagster_home_is_deleted_by_the_next_one(tmp_path):
    from sync_pipelines.instance.worker import OWNER_FILE, claim_temporary_home

    def home(name: str, owner: dict | None) -> Path:
        folder = tmp_path / f".tmp_dagster_home_{name}"
        folder.mkdir()
        if owner is not None:
            (folder / OWNER_FILE).write_text(json.dumps(owner))
        return folder

    dead = home("dead", {**run_health.worker_tags(), run_health.PID_TAG: "999999999"})
    alive = home("alive", run_health.worker_tags())
    unknown = home("unknown", None)
    mine = home("mine", None)
    claim_temporary_home(mine)
    assert not dead.exists()
    assert alive.exists() and unknown.exists() and (mine / OWNER_FILE).exists()


def test_the_sensor_retries_a_dead_run_without_origin_once_with_its_lineage_and_config():
    from dagster import RunRequest, SensorResult, build_sensor_context, instance_for_test
    from dagster._core.test_utils import create_run_for_test

    from sync_pipelines.definitions import defs

    sensor = defs.get_sensor_def("run_health_sensor")
    dead = {**run_health.worker_tags(), run_health.PID_TAG: "999999999", "team": "data"}
    config = {"ops": {"odoo_invoices": {"config": {"mode": "full"}}}}
    with instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 2}}) as instance:
        cli_run = create_run_for_test(
            instance, job_name="odoo_sync_job", run_config=config, tags=dead, status=DagsterRunStatus.STARTED
        )
        result = sensor(build_sensor_context(instance=instance))
        assert isinstance(result, SensorResult)
        [request] = result.run_requests
        assert isinstance(request, RunRequest)
        assert request.job_name == "odoo_sync_job" and request.run_config == config
        assert request.run_key == f"retry-of-{cli_run.run_id}"
        assert request.tags["dagster/parent_run_id"] == request.tags["dagster/root_run_id"] == cli_run.run_id
        assert request.tags["dagster/retry_number"] == "1" and request.tags["team"] == "data"
        assert not [k for k in request.tags if k.startswith(run_health.WORKER_TAG_PREFIX)]
        assert instance.get_run_by_id(cli_run.run_id).status == DagsterRunStatus.FAILURE
        # the next tick finds nothing to fail, so requests nothing
        assert not sensor(build_sensor_context(instance=instance, cursor=result.cursor)).run_requests

        # a dead run failed first by another healer (a run's start check) is retried all the same
        other = create_run_for_test(instance, job_name="odoo_sync_job", tags=dead, status=DagsterRunStatus.STARTED)
        run_health.heal_dead_runs(instance, healer="run x at its start")
        result = sensor(build_sensor_context(instance=instance, cursor=result.cursor))
        [request] = result.run_requests
        assert request.run_key == f"retry-of-{other.run_id}"
        assert run_health.WORKER_DIED_TAG not in request.tags

        # a configuration error (tagged by retries.py) stays failed
        permanent = create_run_for_test(
            instance, job_name="odoo_sync_job", tags={**dead, "dagster/retry_on_asset_or_op_failure": "false"},
            status=DagsterRunStatus.STARTED,
        )
        assert not sensor(build_sensor_context(instance=instance, cursor=result.cursor)).run_requests
        assert instance.get_run_by_id(permanent.run_id).status == DagsterRunStatus.FAILURE

    with instance_for_test(overrides={"run_retries": {"enabled": False}}) as instance:
        create_run_for_test(instance, job_name="odoo_sync_job", tags=dead, status=DagsterRunStatus.STARTED)
        assert not getattr(sensor(build_sensor_context(instance=instance)), "run_requests", None)
