"""``python -m sync_pipelines.demo``: each source's ``<source>_sync_job`` (then its archive job)
against the bundled sandbox, on the embedded default only (SQLite destination and Dagster home
under ``$SYNC_DATA_DIR``; production variables ignored). ``--ui`` then serves the runs in the
Dagster UI (``make ui``). The story: README, "Two commands on a fresh machine".
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sync_pipelines import settings

# The console shows what each step did (INFO), not Dagster's DEBUG engine events; those are
# all in the run history (`make ui`).
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _sync_job_names(defs, source_modules) -> list[str]:
    """Each source's main job, ``<source>_sync_job`` (contract section 4), once per source.

    Named from the source subpackages rather than matched by suffix: a source may offer
    variants of its sync job (``cars_full_sync_job``) that the demo must not run again.
    """
    defined = {job.name for job in defs.resolve_all_job_defs()}
    names = (f"{module.__name__.rsplit('.', 1)[-1]}_sync_job" for module in source_modules)
    return [name for name in names if name in defined]


def use_embedded_default() -> list[str]:
    """Point this process (and the UI it may start) at the embedded default only.

    Returns the names of the variables that were set and are now overridden or dropped.
    """
    data_dir = settings.data_dir()
    overridden = [name for name in ("SYNC_DATABASE_URL", "DAGSTER_HOME") if settings.env(name)]
    # Dagster's Postgres storage, and the real alert webhook (`--ui` runs the alert sensor
    # on sandbox runs: they must not page anyone).
    for name in sorted(os.environ):
        if name.startswith("DAGSTER_PG_") or name == "SYNC_ALERT_WEBHOOK_URL":
            overridden.append(name)
            del os.environ[name]
    os.environ["SYNC_DATA_DIR"] = str(data_dir)
    os.environ["SYNC_DATABASE_URL"] = settings.default_database_url()
    os.environ["DAGSTER_HOME"] = str(data_dir / "dagster_home")
    return overridden


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sync_pipelines.demo",
        description=(
            "Run every source's sync job against the bundled sandbox APIs on the embedded default: "
            "SQLite destination $SYNC_DATA_DIR/warehouse.sqlite and SQLite Dagster home "
            "$SYNC_DATA_DIR/dagster_home (SYNC_DATA_DIR defaults to .sync_data). "
            "SYNC_DATABASE_URL, DAGSTER_HOME, DAGSTER_PG_* and SYNC_ALERT_WEBHOOK_URL are ignored: "
            "the demo never writes into a real database or Dagster instance, nor alerts anyone."
        ),
    )
    parser.add_argument("--mode", choices=["incremental", "full"], default="full")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--ui", action="store_true", help="then keep the sandbox up and serve the Dagster UI (and daemon) on these runs"
    )
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port with --ui")
    args = parser.parse_args(argv)

    overridden = use_embedded_default()
    if overridden:
        print(f"ignoring {', '.join(overridden)}: the demo always runs on the embedded default (SQLite)")

    from dagster import DagsterInstance

    from sync_pipelines.instance import prepare_dagster_home
    from sync_pipelines.sandbox import Sandbox

    # The demo's own home: it always carries the shipped embedded policies.
    prepare_dagster_home(Path(os.environ["DAGSTER_HOME"]), refresh=True)
    sandbox = Sandbox(seed=args.seed)
    sandbox.start()
    os.environ.update(sandbox.env())
    print(f"sandbox APIs ({', '.join(sorted(sandbox.vendors))}) at {sandbox.base_url}")

    from sync_pipelines.definitions import SOURCE_MODULES, defs
    from sync_pipelines.warehouse import Warehouse

    warehouse = Warehouse.for_url(settings.database_url())
    instance = DagsterInstance.get()
    failures = 0
    try:
        jobs = _sync_job_names(defs, SOURCE_MODULES)
        if not jobs:
            print("no source is built yet: nothing to sync (the warehouse schema is migrated)")
        for name in jobs:
            for job_name in (name, name.replace("_sync_job", "_archive_job")):
                job = _job_or_none(defs, job_name)
                if job is None:
                    continue
                started = time.monotonic()
                run_config = {**(_run_config_for(job, args.mode) if job_name == name else {}), **QUIET_LOGS}
                result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
                status = "succeeded" if result.success else "FAILED"
                failures += 0 if result.success else 1
                print(f"{job_name}: {status} in {time.monotonic() - started:.1f}s (run {result.run_id})")
        print()
        print(f"destination ({warehouse.dialect}): {warehouse.location}")
        for table, count in _table_counts(warehouse):
            print(f"  {table:32s} {count:>8d} rows")
        print(f"run history (Dagster, SQLite): {os.environ['DAGSTER_HOME']}")
        if args.ui:
            return _serve_ui(args.port) or failures
        print("browse it: make ui   (the Dagster UI on this history, with the sandbox kept up)")
    finally:
        sandbox.stop()
        instance.dispose()
    return 1 if failures else 0


def _serve_ui(port: int) -> int:
    """``dagster dev`` on this instance, with the sandbox's variables, until Ctrl-C.

    SIGINT is reset to its default in the child: a ``dagster dev`` that inherits an ignored
    SIGINT (non-interactive shells) would never stop."""
    print(f"Dagster UI: http://127.0.0.1:{port}  (schedules and sensors run against the sandbox; Ctrl-C stops)")
    command = [sys.executable, "-m", "dagster", "dev", "-m", "sync_pipelines.definitions", "-p", str(port)]
    ui = subprocess.Popen(command, env=os.environ.copy(), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def stop(signum, frame):  # Ctrl-C, or SIGTERM from a supervisor, even if the shell ignored SIGINT
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        return ui.wait()
    except KeyboardInterrupt:
        ui.send_signal(signal.SIGINT)
        try:
            return ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            ui.kill()
            return ui.wait()


def _job_or_none(defs, name: str):
    try:
        return defs.resolve_job_def(name)
    except Exception:
        return None


def _run_config_for(job, mode: str) -> dict:
    """Set ``mode`` on every op of the job whose config schema has it."""
    ops = {}
    for node in job.graph.node_dict.values():
        schema = node.definition.config_schema
        fields = getattr(getattr(schema, "config_type", None), "fields", {}) or {}
        if "mode" in fields:
            ops[node.name] = {"config": {"mode": mode}}
    return {"ops": ops} if ops else {}


def _table_counts(warehouse) -> list[tuple[str, int]]:
    import sqlalchemy as sa

    names = sorted(
        n for n in sa.inspect(warehouse.engine).get_table_names() if not n.startswith(("sync_alembic", "_"))
    )
    return [(n, warehouse.count(n)) for n in names]


if __name__ == "__main__":
    sys.exit(main())
