"""The control plane at 1,000 Procore connections and 1,000 Golioth integrations (issue 15).

Against the sandbox, on Postgres (Dagster storage and destination, scratch databases dropped
at the end): each schedule and sensor evaluated once in-process (what Dagster's 60 s
evaluation limit bounds), the dynamic partitions they leave, then ``dagster-daemon`` for a
short window: the real sensor tick that requests 1,000 Golioth runs, runs started per minute
by the run queue, and the Postgres storage each tick and run adds, extrapolated to a day.
Exits 1 on a correctness failure (a connection or integration missing, twice, or run twice).
The figures and what they mean: bench/README.md, "scale_control_plane.py".

    .venv/bin/python bench/scale_control_plane.py [--connections 1000] [--integrations 1000] [--window 90]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ADMIN_URL = os.environ.get("SYNC_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
EVALUATION_LIMIT_SECONDS = 60  # Dagster's default schedule / sensor evaluation timeout
# Every schedule and sensor of the code location: ticks a day (cron, or 86,400 / minimum interval).
TICKS_PER_DAY = {
    "procore_sync_schedule": 144, "golioth_sync_schedule": 288, "cars_sync_schedule": 4, "odoo_sync_schedule": 12,
    "odoo_archive_schedule": 1, "procore_cleanup_schedule": 1, "procore_connections_sensor": 1440,
    "golioth_due_integrations_sensor": 2880, "golioth_webhook_sensor": 5760, "odoo_changes_sensor": 288,
    "run_health_sensor": 2880, "sync_failure_alert_sensor": 2880, "cars_freshness_sensor": 144,
}
failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


def admin() -> sa.Engine:
    return sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")


def scratch_database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin().connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    with admin().connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.engine.make_url(url).database}" WITH (FORCE)'))


def connect_procore_users(sandbox, warehouse, count: int) -> list[str]:
    """``count`` users through the real OAuth flow (authorize page, code exchange, /me)."""
    from sync_pipelines.procore.cli import complete_connect
    from sync_pipelines.procore.resources import ProcoreResource
    from sync_pipelines.procore.settings import OOB_REDIRECT_URI

    vendor = sandbox.vendors["procore"]
    with vendor.lock:
        vendor.control("add_users", {"count": max(0, count - len(vendor.users))})
    resource = ProcoreResource()
    oauth, store = resource.oauth(), resource.store(warehouse)
    users = []
    session = requests.Session()
    for login in list(vendor.users)[:count]:
        page = session.get(oauth.authorize_url(OOB_REDIRECT_URI) + f"&login={login}", timeout=30)
        code = re.search(r"<code id='code'>([^<]+)</code>", page.text)[1]
        users.append(complete_connect(oauth, store, code, OOB_REDIRECT_URI)[0])
    return users


def add_golioth_integrations(warehouse, count: int) -> list[str]:
    """``count`` integrations of the sandbox project (the control plane never calls Golioth)."""
    from sync_pipelines.golioth import integrations as store
    from sync_pipelines.sandbox.vendors.golioth import PROJECTS

    spec = PROJECTS["sandbox-project"]
    ids = [f"bench-{i:04d}" for i in range(count)]
    for integration_id in ids:
        store.add(warehouse, store.Integration(id=integration_id, project_id="sandbox-project", api_key_env=spec["env"]))
    return ids


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def evaluate_in_process(instance, users: list[str], integration_ids: list[str]) -> dict[str, float]:
    """Each schedule and sensor once, as the code server evaluates it; checks what it asks for."""
    from dagster import build_schedule_context, build_sensor_context

    from sync_pipelines.definitions import defs
    from sync_pipelines.procore.assets import CONNECTIONS_PARTITIONS
    from sync_pipelines.procore.resources import ProcoreResource
    from sync_pipelines.warehouse import WarehouseResource

    resources = {"warehouse": WarehouseResource(), "procore": ProcoreResource()}
    repository = defs.get_repository_def()
    times = {}
    sensor = defs.get_sensor_def("procore_connections_sensor")
    data, times["procore_connections_sensor"] = timed(
        lambda: sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources)))
    [add] = data.dynamic_partitions_requests
    check(sorted(add.partition_keys) == sorted(users), f"procore_connections_sensor adds {len(users)} partitions")
    _, times[f"add {len(users)} partitions"] = timed(lambda: instance.add_dynamic_partitions(CONNECTIONS_PARTITIONS.name, add.partition_keys))
    partitions = instance.get_dynamic_partitions(CONNECTIONS_PARTITIONS.name)
    check(len(partitions) == len(set(partitions)) == len(users), f"{len(partitions)} dynamic partitions")
    data, times["procore_connections_sensor (steady)"] = timed(
        lambda: sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources)))
    check(not data.dynamic_partitions_requests, "a second procore_connections_sensor tick changes nothing")

    golioth_partitions(instance, resources, integration_ids, times)
    tick = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    schedule = defs.get_schedule_def("procore_sync_schedule")
    data, times["procore_sync_schedule"] = timed(lambda: schedule.evaluate_tick(
        build_schedule_context(instance=instance, scheduled_execution_time=tick, resources=resources,
                               repository_def=repository)))
    keys = [r.partition_key for r in data.run_requests]
    check(sorted(keys) == sorted(users) and len({r.run_key for r in data.run_requests}) == len(users),
          f"procore_sync_schedule requests one run per connection ({len(keys)})")

    schedule = defs.get_schedule_def("golioth_sync_schedule")
    data, times["golioth_sync_schedule"] = timed(lambda: schedule.evaluate_tick(
        build_schedule_context(instance=instance, scheduled_execution_time=tick, resources=resources,
                               repository_def=repository)))
    wanted = sorted(r.tags["golioth/integration"] for r in data.run_requests)
    check(wanted == sorted(integration_ids), f"golioth_sync_schedule requests one run per integration ({len(wanted)})")
    data, times["golioth_sync_schedule (same slot again)"] = timed(lambda: schedule.evaluate_tick(
        build_schedule_context(instance=instance, scheduled_execution_time=tick, resources=resources,
                               repository_def=repository)))
    check(not data.run_requests, "the same slot is never requested twice")
    return times


def golioth_partitions(instance, resources: dict, integration_ids: list[str], times: dict[str, float]) -> None:
    """``golioth_integrations_sensor``: one ``golioth_telemetry`` integration partition per integration."""
    from dagster import build_sensor_context

    from sync_pipelines.definitions import defs
    from sync_pipelines.golioth.partitions import DAYS_PARTITIONS, INTEGRATIONS_PARTITIONS

    sensor = defs.get_sensor_def("golioth_integrations_sensor")
    data, times["golioth_integrations_sensor"] = timed(
        lambda: sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources)))
    [add] = data.dynamic_partitions_requests
    instance.add_dynamic_partitions(INTEGRATIONS_PARTITIONS.name, add.partition_keys)
    keys = instance.get_dynamic_partitions(INTEGRATIONS_PARTITIONS.name)
    check(sorted(keys) == sorted(integration_ids), f"golioth_integrations_sensor adds {len(keys)} partitions")
    days = len(DAYS_PARTITIONS.get_partition_keys())
    TELEMETRY_PARTITION_COUNT.update(days=days, integrations=len(keys))


TELEMETRY_PARTITION_COUNT: dict[str, int] = {}


def storage_size(url: str) -> dict[str, int]:
    tables = ("event_logs", "runs", "job_ticks", "run_tags", "kvs")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        sizes = {t: int(conn.execute(sa.text(f"SELECT pg_total_relation_size('{t}')")).scalar_one()) for t in tables}
        sizes["event_rows"] = int(conn.execute(sa.text("SELECT count(*) FROM event_logs")).scalar_one())
    engine.dispose()
    return sizes


def daemon_window(env: dict[str, str], instance, urls: tuple[str, str], integration_ids: list[str], window: float) -> dict:
    """``dagster-daemon``: its due-sensor tick for every integration, then ``window`` seconds of run queue."""
    from dagster import DagsterRunStatus, RunsFilter

    dagster_url, warehouse_url = urls
    due = RunsFilter(tags={"sync_pipelines/trigger": "golioth_due_integrations_sensor"})
    before = storage_size(dagster_url)
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    started_at = time.monotonic()
    try:
        first = submitted = None
        while time.monotonic() - started_at < 420:
            time.sleep(2)
            count = instance.get_runs_count(due)
            if count and first is None:
                first = (time.monotonic(), count)
            if count >= len(integration_ids) or (first and time.monotonic() - first[0] > 120):
                submitted = (time.monotonic(), count)
                break
        check(first is not None, "the daemon's due-sensor tick submitted runs")
        claimed = claimed_slots(warehouse_url)
        started_before = started_runs(instance, due)
        time.sleep(window)
        started_after = started_runs(instance, due)
        runs = instance.get_runs(due)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
    after = storage_size(dagster_url)
    check(claimed == len(integration_ids), f"the due sensor claimed every integration's slot ({claimed})")
    integrations = [r.tags.get("golioth/integration") for r in runs]
    check(len(integrations) == len(set(integrations)) and set(integrations) <= set(integration_ids),
          f"no integration queued twice ({len(runs)} runs queued)")
    finished = [r for r in runs if r.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)]
    check(all(r.status == DagsterRunStatus.SUCCESS for r in finished), f"{len(finished)} finished runs all succeeded")
    events = [len(instance.all_logs(r.run_id)) for r in finished[:20]]
    rate = (submitted[1] - first[1]) / max(1e-9, submitted[0] - first[0]) if first and submitted else 0.0
    return {"ticks": sensor_ticks(instance), "first_run_seconds": first[0] - started_at if first else None,
            "submitted": len(runs), "submit_rate": rate, "started": started_after - started_before,
            "window": window, "before": before, "after": after, "events_per_run": sum(events) / max(1, len(events))}


def claimed_slots(warehouse_url: str) -> int:
    engine = sa.create_engine(warehouse_url)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM golioth_integrations WHERE next_run_at IS NOT NULL")).scalar_one()
    engine.dispose()
    return int(count)


def started_runs(instance, runs_filter) -> int:
    from dagster import DagsterRunStatus

    return len([r for r in instance.get_runs(runs_filter) if r.status != DagsterRunStatus.QUEUED])


def sensor_ticks(instance) -> dict[str, list[float]]:
    """Durations of the daemon's sensor ticks, by sensor name."""
    from dagster._core.scheduler.instigation import InstigatorType

    out: dict[str, list[float]] = {}
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=20)
        out[state.instigator_name] = [t.end_timestamp - t.timestamp for t in ticks if t.end_timestamp]
    return out


def report(times: dict[str, float], figures: dict, connections: int, integrations: int) -> None:
    print("\nevaluation, in process (Dagster's limit: 60 s)")
    for name, seconds in times.items():
        flag = "" if seconds < EVALUATION_LIMIT_SECONDS else "  OVER THE LIMIT"
        print(f"  {name:45s} {seconds:8.2f} s{flag}")
    days, count = TELEMETRY_PARTITION_COUNT["days"], TELEMETRY_PARTITION_COUNT["integrations"]
    print(f"\npartitions: procore_connections {connections}; golioth_telemetry {days} days x {count} integrations = "
          f"{days * count:,d} (Dagster recommends at most 100,000 per asset: reached at {100_000 // days} integrations)")
    print("\ndaemon ticks (start to end, run submission included)")
    for name, durations in sorted(figures["ticks"].items()):
        if durations:
            print(f"  {name:45s} max {max(durations):7.2f} s over {len(durations)} tick(s)")
    per_minute = figures["started"] / (figures["window"] / 60)
    rate = figures["submit_rate"]
    print(f"\ndue-sensor tick of {integrations} integrations: first run queued {figures['first_run_seconds']:.0f} s after "
          f"the daemon started, then {rate:.2f} runs/s submitted ({figures['submitted']} queued when measured)"
          + (f" -> the tick takes ~{integrations / rate / 60:.0f} min" if rate else ""))
    print(f"run queue: {figures['started']} golioth runs started in {figures['window']:.0f} s = {per_minute:.1f}/min")
    demand = integrations / 5
    print(f"  demand at a 5-minute frequency: {demand:.0f} runs/min -> a slot is kept only up to "
          f"~{int(per_minute * 5)} integrations")
    print(f"  procore: {connections} connections every 10 min = {connections / 10:.0f} runs/min asked; "
          "the queue starts at most 10 a minute (PROCORE_STARTS_PER_MINUTE, 10 in flight)")
    before, after = figures["before"], figures["after"]
    grown = {k: after[k] - before[k] for k in before}
    print(f"\nstorage over the window: {grown['event_rows']} event rows, "
          + ", ".join(f"{k} +{v / 1e6:.2f} MB" for k, v in grown.items() if k != "event_rows"))
    print(f"  events per finished run: {figures['events_per_run']:.0f}")
    ticks = sum(len(d) for d in figures["ticks"].values())
    per_tick = grown["job_ticks"] / max(1, ticks)
    per_day = sum(TICKS_PER_DAY.values())
    # the window's ticks include the due sensor's, which lists its runs: an upper bound per tick
    print(f"  ticks: {ticks} in the window, at most ~{per_tick / 1e3:.1f} kB of job_ticks each -> "
          f"{per_day:,d} ticks a day, at most ~{per_day * per_tick / 1e6:.0f} MB a day before purging")


def extrapolate(figures: dict, connections: int, integrations: int) -> None:
    """Event-log rows and bytes a day of ticks and the runs they ask for would add."""
    before, after = figures["before"], figures["after"]
    rows = after["event_rows"] - before["event_rows"]
    bytes_ = after["event_logs"] - before["event_logs"]
    per_row = bytes_ / rows if rows else 0
    events = figures["events_per_run"]
    asked = {"procore (every 10 min)": connections * 144, "golioth (every 5 min)": integrations * 288}
    print("\nper day if every requested run ran (event_logs, at the measured bytes per row):")
    for name, runs in asked.items():
        print(f"  {name:25s} {runs:8,d} runs x {events:.0f} events = {runs * events / 1e6:6.1f} M rows "
              f"~ {runs * events * per_row / 1e9:6.1f} GB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--integrations", type=int, default=1000)
    parser.add_argument("--window", type=float, default=90, help="seconds of run queue measured")
    args = parser.parse_args(argv)
    dagster_url, warehouse_url = scratch_database("bench_dagster"), scratch_database("bench_warehouse")
    home = Path(tempfile.mkdtemp(prefix="bench_dagster_home_"))
    try:
        return run(args, dagster_url, warehouse_url, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        for url in (dagster_url, warehouse_url):
            drop_database(url)


def run(args, dagster_url: str, warehouse_url: str, home: Path) -> int:
    from cryptography.fernet import Fernet
    from dagster import DagsterInstance

    from sync_pipelines.sandbox import Sandbox
    from sync_pipelines.warehouse import Warehouse

    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    with Sandbox(seed=42) as sandbox:
        env = {**sandbox.env(), "DAGSTER_HOME": str(home), "DAGSTER_PG_URL": dagster_url,
               "SYNC_DATABASE_URL": warehouse_url, "SYNC_SECRET_KEY": Fernet.generate_key().decode(),
               "SYNC_DATA_DIR": str(home / "data"), "AUTO_SYNC_ENABLED": "false"}
        os.environ.update(env)
        warehouse = Warehouse.for_url(warehouse_url)
        print(f"setup: {args.connections} Procore connections, {args.integrations} Golioth integrations (sandbox)")
        users, seconds = timed(lambda: connect_procore_users(sandbox, warehouse, args.connections))
        print(f"  connected {len(users)} Procore users through OAuth in {seconds:.1f} s")
        integration_ids = add_golioth_integrations(warehouse, args.integrations)
        with DagsterInstance.get() as instance:
            times = evaluate_in_process(instance, users, integration_ids)
            with warehouse.engine.begin() as conn:  # the daemon's due sensor then sees them all as new
                conn.execute(sa.text("UPDATE golioth_integrations SET next_run_at = NULL, last_run_at = NULL"))
            # the daemon: no Procore app (its schedule skips), Odoo paused; Golioth's runs are what queue
            daemon_env = {k: v for k, v in os.environ.items() if not k.startswith("PROCORE_CLIENT")}
            figures = daemon_window(daemon_env, instance, (dagster_url, warehouse_url), integration_ids, args.window)
        warehouse.dispose()
    report(times, figures, args.connections, args.integrations)
    extrapolate(figures, args.connections, args.integrations)
    print(f"\n{len(failures)} correctness failure(s)" + (": " + "; ".join(failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
