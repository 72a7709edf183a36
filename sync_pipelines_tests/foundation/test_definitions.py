"""The whole project loads: every job, schedule, sensor and resource resolves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from dagster import DagsterInstance, Definitions

from sync_pipelines.definitions import defs
from sync_pipelines.instance import EMBEDDED_YAML

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_GROUPS = {"cars", "procore", "golioth", "odoo"}


def test_definitions_load_and_resolve():
    assert isinstance(defs, Definitions)
    repo = defs.get_repository_def()
    for job in repo.get_all_jobs():
        assert job.name
    for schedule in repo.schedule_defs:
        assert repo.has_job(schedule.job_name), schedule.name
    for sensor in repo.sensor_defs:
        for target in sensor.targets:
            assert repo.has_job(target.job_name), sensor.name
    assert "warehouse" in defs.resources
    for key in repo.assets_defs_by_key:
        group = repo.assets_defs_by_key[key].get_asset_spec(key).group_name
        assert group in CONTRACT_GROUPS, f"{key} in group {group}"


def test_schedules_and_sensors_start_running():
    repo = defs.get_repository_def()
    from dagster import DefaultScheduleStatus, DefaultSensorStatus

    for schedule in repo.schedule_defs:
        assert schedule.default_status == DefaultScheduleStatus.RUNNING, schedule.name
        assert schedule.execution_timezone in (None, "UTC"), schedule.name
    for sensor in repo.sensor_defs:
        assert sensor.default_status == DefaultSensorStatus.RUNNING, sensor.name


def test_dagster_cli_validates_the_code_location():
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "sync_pipelines.definitions"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_embedded_instance_config_loads(tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text(EMBEDDED_YAML.read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        _assert_policies(instance)


def _assert_policies(instance: DagsterInstance) -> None:
    config = instance.get_concurrency_config()
    assert config.run_queue_config.max_concurrent_runs == 16
    assert config.pool_config.default_pool_limit == 1
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_runtime_seconds == 10800
    # slots of a run whose worker died are given back by the daemon (else the pool stays blocked)
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 300


def test_production_instance_config_on_postgres(pg_url, tmp_path, monkeypatch):
    """The root dagster.yaml, as shipped, against a real Postgres database."""
    import sqlalchemy as sa

    url = sa.engine.make_url(pg_url)
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host)
    monkeypatch.setenv("DAGSTER_PG_USER", url.username)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", url.password or "")
    monkeypatch.setenv("DAGSTER_PG_DB", url.database)
    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        _assert_policies(instance)
        assert instance.get_runs() == []


def test_embedded_yaml_matches_production_policies():
    """Both instance files carry the same policies; only storage differs."""
    prod = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    embedded = yaml.safe_load(EMBEDDED_YAML.read_text())
    assert prod.pop("storage")["custom"]["class"] == "EnvironmentSelectedStorage"
    assert "storage" not in embedded  # Dagster's default: SQLite under $DAGSTER_HOME
    assert embedded == prod

    # and the policies themselves, as the README states them
    assert prod["retention"]["schedule"]["purge_after_days"] == {"skipped": 7, "success": 30, "failure": 90}
    assert prod["retention"]["sensor"]["purge_after_days"] == {"skipped": 3, "success": 30, "failure": 90}
    monitoring = prod["run_monitoring"]
    assert monitoring["enabled"] is True and monitoring["start_timeout_seconds"] == 300
    assert monitoring["max_runtime_seconds"] == 10800
    assert monitoring["free_slots_after_run_end_seconds"] == 300
    runs = prod["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] == 16
    assert runs["tag_concurrency_limits"] == [
        {"key": "sync_pipelines/source", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
        {"key": "procore/connection", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
        {"key": "procore/sync", "limit": 10},
    ]
    assert prod["concurrency"]["pools"]["default_limit"] == 1
    assert prod["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": True}
