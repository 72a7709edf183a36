"""``make ui`` (``python -m sync_pipelines.ui``): the whole loop live on the embedded default.

The sandbox APIs (evolving), the Golioth webhook receiver (the sandbox's webhook sender posts to
it), and ``dagster dev`` (webserver and daemon) with every schedule and sensor on; a Procore
connection and a Golioth integration seeded against the sandbox. Each source's sync schedule is
due at start, so the daemon's first ticks sync every source. Ctrl-C or SIGTERM stops it all.
The story: README, "Look around in the Dagster UI".
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sync_pipelines import settings
from sync_pipelines.demo import use_embedded_default

CODE_LOCATION = "sync_pipelines.definitions"
WEBHOOK_TOKEN_ENV = "GOLIOTH_WEBHOOK_TOKEN"


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM (a supervisor) both unwind through ``finally``, even when the shell
    that started us ignored SIGINT."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def _child_setup() -> None:
    # A dagster dev that inherits an ignored SIGINT also ignores SIGTERM (it maps one to the
    # other) and never stops; and it must not outlive us if we are killed outright.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def store_instigator_state(instance, name: str, kind, status, data) -> None:
    """Store a schedule's or sensor's state as ``dagster dev -m`` would: the daemon and the UI
    match stored states by selector (location, repository, name)."""
    from dagster._core.remote_origin import RemoteInstigatorOrigin, RemoteRepositoryOrigin
    from dagster._core.scheduler.instigation import InstigatorState
    from dagster._core.workspace.load import location_origin_from_module_name

    repository = RemoteRepositoryOrigin(location_origin_from_module_name(CODE_LOCATION, None, None), "__repository__")
    instance.add_instigator_state(InstigatorState(RemoteInstigatorOrigin(repository, name), kind, status, data))


def make_sync_schedules_due(instance, defs, now: dt.datetime) -> list[str]:
    """Store each ``<source>_sync_schedule`` as started just before its latest cron tick, so
    the daemon's first iteration runs that tick instead of waiting for the next one (up to 6 h
    for cars). A schedule with a stored state (it has ticked, or was stopped) is left alone:
    the daemon catches up on what it missed since. Returns the schedules made due."""
    from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType, ScheduleInstigatorData
    from dagster._utils.schedules import get_latest_completed_cron_tick

    stored = {s.name for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)}
    made_due = []
    for schedule in defs.schedules:
        if not schedule.name.endswith("_sync_schedule") or schedule.name in stored:
            continue
        tick = get_latest_completed_cron_tick(schedule.cron_schedule, now, schedule.execution_timezone or "UTC")
        data = ScheduleInstigatorData(schedule.cron_schedule, start_timestamp=tick.timestamp() - 1)
        store_instigator_state(instance, schedule.name, InstigatorType.SCHEDULE, InstigatorStatus.DECLARED_IN_CODE, data)
        made_due.append(schedule.name)
    return made_due


def _start_receiver(sandbox, port: int, token: str):
    """The Golioth webhook receiver on loopback, and the sandbox's sender pointed at it
    (delivering after every evolve). Returns the uvicorn server (``should_exit`` stops it)."""
    import uvicorn

    from sync_pipelines.golioth.receiver import WEBHOOK_PATH, create_app

    app = create_app(token=token, database_url=settings.default_database_url())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    server.install_signal_handlers = lambda: None  # signals are ours (uvicorn's would swallow Ctrl-C)
    thread = threading.Thread(target=server.run, name="golioth-receiver", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not server.started:  # e.g. the port is taken: say so rather than serve a UI whose webhooks fail
        raise SystemExit(f"golioth webhook receiver could not start on 127.0.0.1:{port} (see above); "
                         "pick another port with --receiver-port")
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    sandbox.vendor("golioth").control("webhook", {"url": url, "token": token, "auto_deliver": True})
    return server, url


def _evolve_every(sandbox, seconds: float, stopped: threading.Event) -> None:
    """The sandbox's world moves on (new cars, Odoo edits, device reports sent to the receiver)."""
    while not stopped.wait(seconds):
        sandbox.evolve()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sync_pipelines.ui",
        description=(
            "Serve the Dagster UI and daemon on the embedded default (SQLite under $SYNC_DATA_DIR, "
            "default .sync_data) against a live sandbox, with the Golioth webhook receiver; Ctrl-C stops. "
            "SYNC_DATABASE_URL, DAGSTER_HOME, DAGSTER_PG_* and SYNC_ALERT_WEBHOOK_URL are ignored. "
            f"Without {WEBHOOK_TOKEN_ENV}, the receiver gets a token made for this session."
        ),
    )
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000)")
    parser.add_argument("--receiver-port", type=int, default=8787, help="Golioth webhook receiver port (default 8787)")
    parser.add_argument("--seed", type=int, default=42, help="sandbox data seed")
    parser.add_argument("--evolve-every", type=float, default=30.0, help="seconds between sandbox evolutions")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overridden = use_embedded_default()
    if overridden:
        print(f"ignoring {', '.join(overridden)}: make ui always runs on the embedded default (SQLite)")
    # The session token never leaves this process tree (the receiver and the sandbox's sender).
    token = settings.env(WEBHOOK_TOKEN_ENV) or secrets.token_urlsafe(32)
    os.environ[WEBHOOK_TOKEN_ENV] = token
    os.environ["SYNC_UI_BASE_URL"] = f"http://127.0.0.1:{args.port}"  # run links in logged alerts and `status`
    _stop_on_signals()

    from dagster import DagsterInstance

    from sync_pipelines.definitions import defs
    from sync_pipelines.demo import seed_sandbox_accounts
    from sync_pipelines.instance import prepare_dagster_home
    from sync_pipelines.sandbox import Sandbox
    from sync_pipelines.warehouse import Warehouse

    prepare_dagster_home(Path(os.environ["DAGSTER_HOME"]), refresh=True)
    sandbox, stopped, receiver, ui = Sandbox(seed=args.seed), threading.Event(), None, None
    try:
        sandbox.start()
        os.environ.update(sandbox.env())
        print(f"sandbox APIs ({', '.join(sorted(sandbox.vendors))}) at {sandbox.base_url}", flush=True)
        warehouse = Warehouse.for_url(settings.database_url())  # migrated before the receiver writes
        receiver, url = _start_receiver(sandbox, args.receiver_port, token)
        print(f"golioth webhook receiver at {url} (the sandbox's devices post to it)", flush=True)
        with DagsterInstance.get() as instance:
            for line in seed_sandbox_accounts(warehouse, instance):
                print(line, flush=True)
            due = make_sync_schedules_due(instance, defs, dt.datetime.now(dt.timezone.utc))
        if due:
            print(f"due at start (the daemon's first ticks): {', '.join(due)}", flush=True)
        threading.Thread(target=_evolve_every, args=(sandbox, args.evolve_every, stopped), daemon=True).start()
        command = [sys.executable, "-m", "dagster", "dev", "-m", CODE_LOCATION, "-h", "127.0.0.1", "-p", str(args.port)]
        # its own session: Ctrl-C reaches us only, and we stop the whole tree in order
        ui = subprocess.Popen(command, env=os.environ.copy(), preexec_fn=_child_setup, start_new_session=True)
        print(f"Dagster UI: http://127.0.0.1:{args.port}  (schedules and sensors on; Ctrl-C stops)", flush=True)
        return ui.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop_tree(ui)
        stopped.set()
        if receiver is not None:
            receiver.should_exit = True
        sandbox.stop()


def _stop_tree(ui: subprocess.Popen | None, grace: float = 60.0) -> None:
    """Interrupt ``dagster dev`` (it stops its webserver, daemon and code server), then
    terminate, and at last kill, whatever is left of its group (run workers it launched)."""
    if ui is None:
        return
    if ui.poll() is None:
        ui.send_signal(signal.SIGINT)
        try:
            ui.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if not _signal_group(ui.pid, sig):
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _signal_group(ui.pid, 0):
            time.sleep(0.2)
    ui.wait()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


if __name__ == "__main__":
    sys.exit(main())
