"""``python -m sync_pipelines <command>``: the operator commands (``runs heal``, ``status``) plus
each source's own, from ``sync_pipelines/<source>/cli.py`` ``register(subparsers)`` (sets
``func``, ``args -> int``); a source's module is imported only when its command is asked for.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def source_names() -> list[str]:
    """The sources named in ``definitions.SOURCE_MODULES``, read from its text (no import).

    Importing ``sync_pipelines.definitions`` would build every source's Dagster definitions;
    the list is a plain ``[cars, odoo, ...]`` of module names, so reading it is enough.
    """
    tree = ast.parse((PACKAGE_DIR / "definitions.py").read_text())
    for node in ast.walk(tree):
        targets = (
            [node.target] if isinstance(node, ast.AnnAssign) else node.targets if isinstance(node, ast.Assign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == "SOURCE_MODULES" for t in targets) and node.value is not None:
            if isinstance(node.value, (ast.List, ast.Tuple)):
                return [e.id for e in node.value.elts if isinstance(e, ast.Name)]
    # A SOURCE_MODULES not written as a literal list: ask the module itself.
    from sync_pipelines.definitions import SOURCE_MODULES

    return [module.__name__.rsplit(".", 1)[-1] for module in SOURCE_MODULES]


def source_commands() -> list[str]:
    """The sources that ship a ``cli.py``."""
    return [name for name in source_names() if (PACKAGE_DIR / name / "cli.py").is_file()]


def _register_runs(subparsers: argparse._SubParsersAction) -> None:
    runs = subparsers.add_parser("runs", help="Dagster runs of this project's instance")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True, metavar="{heal}")
    heal = runs_commands.add_parser(
        "heal",
        help="fail runs whose worker died and free the pool slots they hold",
        description=(
            "List the runs still STARTING/STARTED and the pool slots held, fail the runs whose "
            "worker is provably dead (same host: its process is gone; elsewhere: no heartbeat) "
            "and free their slots and the slots of finished runs. A run whose worker is alive is "
            "never touched. --run fails a run the automatic check cannot decide (no worker "
            "recorded, heartbeat too recent), unless its worker is provably alive."
        ),
    )
    heal.add_argument("--dry-run", action="store_true", help="only list what would be done")
    heal.add_argument(
        "--run", dest="run_ids", action="append", default=[], metavar="RUN_ID",
        help="also fail this run (repeatable) unless its worker is provably alive",
    )
    heal.set_defaults(func=_runs_heal)


def _runs_heal(args: argparse.Namespace) -> int:
    from sync_pipelines import run_health

    return run_health.heal_command(dry_run=args.dry_run, run_ids=args.run_ids)


def _register_status(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser(
        "status",
        help="per source: last run, success rate, rows changed, vendor lag, rejects, reauth, skips",
        description=(
            "Per source: the last run and its result, the success rate over 24 h and 7 days, rows "
            "changed, lag behind the vendor, open rejects, Procore connections needing reauth and "
            "Golioth integrations skipped. Read from the Dagster instance and the destination."
        ),
    )
    status.add_argument("--json", action="store_true", help="print the report as JSON, for scripts")
    status.add_argument("--source", metavar="NAME", help="only this source")
    status.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from sync_pipelines import status

    return status.status_command(as_json=args.json, source=args.source)


def _register_celery(subparsers: argparse._SubParsersAction) -> None:
    celery = subparsers.add_parser("celery", help="Celery workers running steps when SYNC_EXECUTOR=celery")
    celery_commands = celery.add_subparsers(dest="celery_command", required=True, metavar="{worker}")
    worker = celery_commands.add_parser(
        "worker",
        help="start a Celery worker (broker and queue from SYNC_CELERY_*, Dagster storage from DAGSTER_PG_*)",
        description="Runs `celery -A sync_pipelines.celery_app worker` (dagster-celery's tasks) in this process; "
        "arguments after -- go to celery.",
    )
    worker.add_argument("-n", "--name", help="worker name (its node is NAME@host); default sync-<random>")
    worker.add_argument("-c", "--concurrency", type=int, default=1, help="steps run at once (default 1)")
    worker.add_argument("-l", "--loglevel", default="INFO")
    worker.add_argument("extra", nargs="*", help="more celery worker arguments, after --")
    worker.set_defaults(func=_celery_worker)


def _celery_worker(args: argparse.Namespace) -> int:
    from sync_pipelines.executors import worker_command

    return worker_command(name=args.name, concurrency=args.concurrency, loglevel=args.loglevel, extra=args.extra)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sync_pipelines", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _register_runs(subparsers)
    _register_status(subparsers)
    _register_celery(subparsers)
    wanted = argv[0] if argv else None
    for name in source_commands():
        if name == wanted:
            importlib.import_module(f"sync_pipelines.{name}.cli").register(subparsers)
        else:  # listed in --help without importing the source
            subparsers.add_parser(name, help=f"{name} commands (python -m sync_pipelines {name} --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
