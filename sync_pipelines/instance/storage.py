"""Dagster storage chosen by the environment, as CONTRACT.md section 1 specifies.

``DAGSTER_PG_URL`` (or ``DAGSTER_PG_HOST``/``_USER``/``_PASSWORD``/``_DB``, ``_PORT``) set:
run, event-log and schedule storage in Postgres through dagster-postgres (production).
Unset: SQLite in ``$DAGSTER_HOME`` (Dagster's own layout), so the Dagster CLI works from a fresh clone
(``dagster definitions validate``, ``dagster dev``) with no server and no credentials.

The root ``dagster.yaml`` names this class; the choice is re-made from the environment
in every process (webserver, daemon, run workers), which all share one environment.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import quote

import yaml
from dagster import Field, StringSource
from dagster._core.storage.base_storage import DagsterStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from sync_pipelines.redaction import register_secret
from sync_pipelines.settings import ConfigurationError

log = logging.getLogger("sync_pipelines.instance")


def postgres_url_from_env() -> str | None:
    """The Dagster storage URL from the environment, pinned to psycopg2; None when unset."""
    from sync_pipelines.warehouse.engine import check_database_url

    url = os.environ.get("DAGSTER_PG_URL")
    if url:
        if not url.lower().startswith(("postgres://", "postgresql://", "postgresql+psycopg2://")):
            raise ConfigurationError("DAGSTER_PG_URL must be a postgresql://user:password@host:5432/database URL")
        return check_database_url(url, "DAGSTER_PG_URL")
    host = os.environ.get("DAGSTER_PG_HOST")
    if not host:
        return None
    user = quote(os.environ.get("DAGSTER_PG_USER", "postgres"))
    password = os.environ.get("DAGSTER_PG_PASSWORD", "")
    register_secret(password)
    userinfo = f"{user}:{quote(password, safe='')}" if password else user
    port = os.environ.get("DAGSTER_PG_PORT", "5432")
    db = quote(os.environ.get("DAGSTER_PG_DB", "dagster"))
    return f"postgresql+psycopg2://{userinfo}@{host}:{port}/{db}"


class EnvironmentSelectedStorage(DagsterStorage, ConfigurableClass):
    """A factory, never instantiated: ``from_config_value`` returns dagster-postgres or SQLite storage.

    It subclasses DagsterStorage only because Dagster checks the class named in ``storage:
    custom:`` is one.
    """

    @classmethod
    def config_type(cls):
        return {
            "sqlite_base_dir": Field(StringSource, is_required=False),
            "should_autocreate_tables": Field(bool, is_required=False, default_value=True),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value):
        url = postgres_url_from_env()
        if url:
            from dagster_postgres import DagsterPostgresStorage

            return DagsterPostgresStorage(
                postgres_url=url,
                should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                inst_data=inst_data,
            )
        from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

        base_dir = config_value.get("sqlite_base_dir")
        if not base_dir:
            # The layout of Dagster's default SQLite storage ($HOME/history, $HOME/schedules) in
            # the embedded default's home: the CLI from the repository, `make demo` and `make ui`
            # then read and write one run history.
            from sync_pipelines import settings

            base_dir = os.environ.get("DAGSTER_HOME") or str(settings.data_dir() / "dagster_home")
            if inst_data is not None:
                # Pin the resolved folder in the instance ref handed to run workers.
                inst_data = ConfigurableClassData(
                    inst_data.module_name,
                    inst_data.class_name,
                    yaml.safe_dump({**dict(config_value), "sqlite_base_dir": base_dir}),
                )
        log.info("DAGSTER_PG_URL / DAGSTER_PG_HOST unset: Dagster storage is SQLite in %s", base_dir)
        return DagsterSqliteStorage.from_local(base_dir, inst_data=inst_data)
