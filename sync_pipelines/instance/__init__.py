"""Dagster instance settings of the embedded default (SQLite storage, same policies as production)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EMBEDDED_YAML = Path(__file__).with_name("dagster.embedded.yaml")


def prepare_dagster_home(home: Path, *, refresh: bool = False) -> Path:
    """Create ``home`` with the embedded ``dagster.yaml`` unless one is there already.

    ``refresh``: also replace a ``dagster.yaml`` that differs from the shipped one (a home
    made by an older version keeps no stale policy).
    """
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() or (refresh and target.read_bytes() != EMBEDDED_YAML.read_bytes()):
        shutil.copyfile(EMBEDDED_YAML, target)
    return target


PROJECT_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"


@contextmanager
def operator_instance() -> Iterator[Any]:
    """The Dagster instance the Dagster CLI would use here, for ``python -m sync_pipelines``.

    ``DAGSTER_HOME`` set: that instance. Unset, with no ``DAGSTER_PG_*`` and a home made by
    ``make demo`` (``$SYNC_DATA_DIR/dagster_home/dagster.yaml``): that home, where the demo and
    ``make ui`` keep their runs. Otherwise the repository's ``dagster.yaml`` (storage chosen
    from the environment, SQLite in the embedded default's home), as ``dagster job execute``
    from the repository uses it, but with its scratch folder outside the repository.
    """
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    from sync_pipelines import settings
    from sync_pipelines.instance.storage import postgres_url_from_env

    if os.environ.get("DAGSTER_HOME"):
        with DagsterInstance.get() as instance:
            yield instance
        return
    embedded_home = settings.data_dir() / "dagster_home"
    if postgres_url_from_env() is None and (embedded_home / "dagster.yaml").is_file():
        with DagsterInstance.from_config(str(embedded_home)) as instance:
            yield instance
        return
    if not PROJECT_DAGSTER_YAML.is_file():
        raise SystemExit("DAGSTER_HOME is unset and the project's dagster.yaml is not found: set DAGSTER_HOME")
    with tempfile.TemporaryDirectory(prefix="sync_pipelines_dagster_") as scratch:
        ref = InstanceRef.from_dir(scratch, config_dir=str(PROJECT_DAGSTER_YAML.parent))
        with DagsterInstance.from_ref(ref) as instance:
            yield instance


# Dagster CLI commands that run jobs on the instance they were started with.
_RUNNING_COMMANDS = {"execute", "materialize", "dev", "launch", "backfill"}


def refuse_throwaway_instance() -> None:
    """Stop a Dagster CLI run that would record into a throwaway instance.

    Without ``DAGSTER_HOME`` the Dagster CLI reads ``dagster.yaml`` from the working directory;
    outside the repository there is none, so runs went to a temporary SQLite home (history
    deleted on exit) without this project's pool and run limits. Called when the definitions load.
    """
    if os.environ.get("DAGSTER_HOME") or (Path.cwd() / "dagster.yaml").is_file():
        return
    program = Path(sys.argv[0]).name if sys.argv else ""
    if not (program.startswith("dagster") or sys.argv[0].endswith("dagster/__main__.py")):
        return
    if not _RUNNING_COMMANDS & set(sys.argv[1:3]):
        return
    from sync_pipelines import settings

    raise settings.ConfigurationError(
        f"DAGSTER_HOME is unset and {Path.cwd()} has no dagster.yaml, so this run's history would be "
        f"thrown away and the pool limits ignored: run from the repository ({PROJECT_DAGSTER_YAML.parent}) "
        "or set DAGSTER_HOME (a folder holding a copy of its dagster.yaml)"
    )
