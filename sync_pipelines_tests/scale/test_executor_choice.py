"""SYNC_EXECUTOR: the definitions are the same with and without the Celery variables (and load
without touching the broker); a Celery run on SQLite storage is refused at its start, saying
which variables to set; unusable values name their variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from dagster import DagsterInstance

from sync_pipelines import executors
from sync_pipelines.settings import ConfigurationError
from sync_pipelines_tests.processes import ROOT

# Nothing listens on port 9: a definitions load that dialled the broker would fail or hang.
UNREACHABLE_BROKER = "pyamqp://guest:guest@127.0.0.1:9//"
CELERY_ENV = {"SYNC_EXECUTOR": "celery", "SYNC_CELERY_BROKER_URL": UNREACHABLE_BROKER}


def _dagster(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dagster", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


@pytest.mark.parametrize("extra", [{}, CELERY_ENV], ids=["default", "celery"])
def test_definitions_validate_with_and_without_the_celery_variables(extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNC_EXECUTOR", "SYNC_CELERY"))}
    env.update(extra, DAGSTER_HOME=str(tmp_path))
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    result = _dagster(["definitions", "validate", "-m", "sync_pipelines.definitions"], env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Validation successful" in result.stdout + result.stderr


def test_a_celery_run_on_sqlite_storage_is_refused_at_its_start_naming_the_variables(tmp_path, sandbox):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PG")}
    env.update({**sandbox.env(), **CELERY_ENV}, DAGSTER_HOME=str(tmp_path), SYNC_DATABASE_URL=f"sqlite:///{tmp_path}/wh.sqlite")
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    result = _dagster(["job", "execute", "-m", "sync_pipelines.definitions", "-j", "odoo_sync_job"], env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SYNC_EXECUTOR=celery needs Dagster storage in Postgres" in output, output[-3000:]
    assert "DAGSTER_PG_URL" in output
    assert "Executing steps" not in output  # refused before any step was sent anywhere


def test_unset_means_each_jobs_own_executor(monkeypatch):
    monkeypatch.delenv("SYNC_EXECUTOR", raising=False)
    assert executors.chosen_executor() == "default"
    from sync_pipelines.definitions import defs

    assert defs.resolve_job_def("odoo_sync_job").executor_def.name == "in_process"
    assert defs.resolve_job_def("cars_sync_job").executor_def.name == "in_process"
    assert defs.resolve_job_def("cars_full_sync_job").executor_def.name == "multi_or_in_process_executor"


def test_unusable_values_name_their_variable(monkeypatch):
    monkeypatch.setenv("SYNC_EXECUTOR", "kubernetes")
    with pytest.raises(ConfigurationError, match="SYNC_EXECUTOR must be one of default, celery"):
        executors.chosen_executor()
    monkeypatch.setenv("SYNC_EXECUTOR", "celery")
    monkeypatch.delenv("SYNC_CELERY_BROKER_URL", raising=False)
    with pytest.raises(ConfigurationError, match="SYNC_EXECUTOR=celery needs SYNC_CELERY_BROKER_URL"):
        executors.celery_app_config()


def test_the_broker_password_is_masked(monkeypatch):
    from sync_pipelines.redaction import redact

    monkeypatch.setenv("SYNC_CELERY_BROKER_URL", "pyamqp://sync:s3cret-broker@rabbit:5672//")
    assert executors.celery_app_config()["broker"].endswith("@rabbit:5672//")
    assert "s3cret-broker" not in redact("connecting to pyamqp://sync:s3cret-broker@rabbit:5672//")


def test_an_ephemeral_instance_is_refused():
    with DagsterInstance.ephemeral() as instance, pytest.raises(ConfigurationError, match="DAGSTER_PG_URL"):
        executors.refuse_unless_postgres(instance)


def test_a_vendor_pool_above_one_is_refused_naming_it():
    from dagster import InitExecutorContext
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.test_utils import instance_for_test

    job = ReconstructableRepository.for_module("sync_pipelines.definitions", "defs").get_reconstructable_job("odoo_sync_job")
    with instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1}}}) as instance:
        context = InitExecutorContext(job=job, executor_def=job.get_definition().executor_def, executor_config={},
                                      instance=instance)
        executors.refuse_shared_vendor_pools(context)  # the default, 1: fine
        instance.event_log_storage.set_concurrency_slots("odoo", 2)
        with pytest.raises(ConfigurationError, match="pool 'odoo' lets 2 steps talk to the vendor at once"):
            executors.refuse_shared_vendor_pools(context)
