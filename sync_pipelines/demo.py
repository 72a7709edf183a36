"""``python -m sync_pipelines.demo``: each source's ``<source>_sync_job`` (then its archive job)
against the bundled sandbox, on the embedded default only (SQLite destination and Dagster home
under ``$SYNC_DATA_DIR``; production variables ignored), with a Procore connection and a Golioth
integration seeded against the sandbox. ``make ui`` is :mod:`sync_pipelines.ui`. The story:
README, "Two commands on a fresh machine".
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from sync_pipelines import settings

# The console shows what each step did (INFO), not Dagster's DEBUG engine events; those are
# all in the run history (`make ui`).
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
SANDBOX_GOLIOTH_INTEGRATION = "sandbox"  # the integration seeded for the sandbox's first Golioth project


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
        for line in seed_sandbox_accounts(warehouse, instance):
            print(line)
        jobs = _sync_job_names(defs, SOURCE_MODULES)
        if not jobs:
            print("no source is built yet: nothing to sync (the warehouse schema is migrated)")
        for name in jobs:
            for job_name in (name, name.replace("_sync_job", "_archive_job")):
                job = _job_or_none(defs, job_name)
                if job is None:
                    continue
                run_config = {**(_run_config_for(job, args.mode) if job_name == name else {}), **QUIET_LOGS}
                failures += _run_job(job, instance, run_config)
        print()
        print(f"destination ({warehouse.dialect}): {warehouse.location}")
        for table, count in _table_counts(warehouse):
            print(f"  {table:32s} {count:>8d} rows")
        print(f"run history (Dagster, SQLite): {os.environ['DAGSTER_HOME']}")
        print("browse it: make ui   (the Dagster UI and daemon on this history, syncing from a live sandbox)")
    finally:
        sandbox.stop()
        instance.dispose()
    return 1 if failures else 0


def _run_job(job, instance, run_config: dict) -> int:
    """Run ``job`` once, or once per partition of a dynamic partitioning (Procore's
    connections); print each result. Returns the number of failed runs."""
    dynamic = getattr(job.partitions_def, "name", None)  # only DynamicPartitionsDefinition has one
    partitions = instance.get_dynamic_partitions(dynamic) if dynamic else []
    failed = 0
    for partition in partitions or [None]:
        started = time.monotonic()
        result = job.execute_in_process(
            instance=instance, run_config=run_config, partition_key=partition, raise_on_error=False
        )
        status = "succeeded" if result.success else "FAILED"
        failed += 0 if result.success else 1
        where = f" [{partition}]" if partition else ""
        print(f"{job.name}{where}: {status} in {time.monotonic() - started:.1f}s (run {result.run_id})")
    return failed


def seed_sandbox_accounts(warehouse, instance) -> list[str]:
    """What an operator does once, done against the sandbox: connect its first Procore user
    (OAuth out of band, as ``procore connect``) with the user's partition, and add the Golioth
    integration ``sandbox`` for its first project with its ``golioth_telemetry`` partition (as
    ``golioth integrations add``). Safe to repeat (a fresh sandbox mints new tokens). Returns
    what was done, for people."""
    import requests

    from sync_pipelines.golioth import integrations
    from sync_pipelines.golioth.partitions import add_partition
    from sync_pipelines.procore.assets import CONNECTIONS_PARTITIONS
    from sync_pipelines.procore.cli import complete_connect
    from sync_pipelines.procore.resources import ProcoreResource
    from sync_pipelines.procore.settings import OOB_REDIRECT_URI
    from sync_pipelines.sandbox.vendors.golioth import PROJECTS

    procore = ProcoreResource()
    oauth = procore.oauth()
    page = requests.get(oauth.authorize_url(OOB_REDIRECT_URI), timeout=10)
    page.raise_for_status()
    code = re.search(r"<code id='code'>([^<]+)</code>", page.text)[1]  # the sandbox's out-of-band page
    user_id, _ = complete_connect(oauth, procore.store(warehouse), code, OOB_REDIRECT_URI)
    if user_id not in instance.get_dynamic_partitions(CONNECTIONS_PARTITIONS.name):
        instance.add_dynamic_partitions(CONNECTIONS_PARTITIONS.name, [user_id])
    project, spec = next(iter(PROJECTS.items()))
    if SANDBOX_GOLIOTH_INTEGRATION not in {i.id for i in integrations.load(warehouse)}:
        integrations.add(warehouse, integrations.Integration(
            id=SANDBOX_GOLIOTH_INTEGRATION, project_id=project, api_key_env=spec["env"]))
    add_partition(instance, SANDBOX_GOLIOTH_INTEGRATION)  # golioth_telemetry: backfillable from the UI at once
    return [f"seeded: Procore user {user_id} connected; Golioth integration {SANDBOX_GOLIOTH_INTEGRATION} "
            f"(project {project})"]


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
