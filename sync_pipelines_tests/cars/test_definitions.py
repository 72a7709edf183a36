"""The cars Dagster definitions carry the contract's names, tags, pools and schedule."""

from __future__ import annotations

import datetime as dt

from dagster import AssetKey, DefaultScheduleStatus, DefaultSensorStatus, build_schedule_context
from dagster._config import process_config

from sync_pipelines.definitions import defs


def test_names_groups_pools_and_tags():
    graph = defs.resolve_asset_graph()
    for name, pool in (("encar_listings", "encar"), ("kbchachacha_listings", "kbchachacha"), ("cars", None)):
        node = graph.get(AssetKey(name))
        assert node.group_name == "cars"
        assert node.pools == ({pool} if pool else set()) or (pool is None and not node.pools)
    sync_job = defs.resolve_job_def("cars_sync_job")
    archive_job = defs.resolve_job_def("cars_archive_job")
    assert sync_job.tags["sync_pipelines/source"] == "cars"
    assert archive_job.tags["sync_pipelines/source"] == "cars"
    check_names = {key.name for key in graph.asset_check_keys if key.asset_key == AssetKey("cars")}
    assert {"no_duplicate_keys", "values_in_sane_ranges", "freshness_check"} <= check_names


def test_schedule_runs_incremental_every_6_hours_utc():
    schedule = defs.resolve_schedule_def("cars_sync_schedule")
    assert schedule.cron_schedule == "0 */6 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "cars_sync_job"
    context = build_schedule_context(scheduled_execution_time=dt.datetime(2026, 1, 1, 6, tzinfo=dt.timezone.utc))
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.tags["sync_pipelines/source"] == "cars"
    assert request.run_config["ops"]["encar_listings"]["config"]["mode"] == "incremental"
    assert process_config(defs.resolve_job_def("cars_sync_job").run_config_schema.config_type, request.run_config).success


def test_sync_jobs_open_pre_filled_incremental_and_full_under_the_one_source_tag():
    from sync_pipelines.cars.assets import run_config_for

    sync_job, full_job = defs.resolve_job_def("cars_sync_job"), defs.resolve_job_def("cars_full_sync_job")
    # the same selection and the same source tag: the one-sync-per-source queue limit holds both
    assert full_job.asset_layer.executable_asset_keys == sync_job.asset_layer.executable_asset_keys
    assert {k.path[-1] for k in full_job.asset_layer.executable_asset_keys} == {
        "encar_listings", "kbchachacha_listings", "cars"
    }
    assert full_job.tags["sync_pipelines/source"] == sync_job.tags["sync_pipelines/source"] == "cars"
    for job, mode in ((sync_job, "incremental"), (full_job, "full")):
        # the default run config the Launchpad shows: both listing ops in the job's mode
        assert job.run_config == run_config_for(mode)
        processed = process_config(job.run_config_schema.config_type, {})
        assert processed.success
        ops = processed.value["ops"]
        assert ops["encar_listings"]["config"]["mode"] == ops["kbchachacha_listings"]["config"]["mode"] == mode
    # an explicit run config (the schedule's, the CLI's) still wins
    explicit = process_config(full_job.run_config_schema.config_type, run_config_for("incremental", max_pages=2))
    assert explicit.success and explicit.value["ops"]["encar_listings"]["config"]["mode"] == "incremental"


def test_freshness_policy_warns_with_the_checks_grace_and_fails_later():
    from sync_pipelines.cars.settings import FRESHNESS_WINDOW

    policy = defs.resolve_asset_graph().get(AssetKey("cars")).freshness_policy
    assert policy.warn_window.to_timedelta() == FRESHNESS_WINDOW == dt.timedelta(hours=6, minutes=30)
    assert policy.fail_window.to_timedelta() == dt.timedelta(hours=12, minutes=30)


def test_freshness_sensor_runs_by_default():
    sensor = defs.resolve_sensor_def("cars_freshness_sensor")
    assert sensor.default_status == DefaultSensorStatus.RUNNING


def _store_cars_materialization(instance, age_hours: float) -> None:
    """A `cars` materialization recorded ``age_hours`` ago (the check reads the event log)."""
    import time

    from dagster import AssetMaterialization
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    event = DagsterEvent(
        DagsterEventType.ASSET_MATERIALIZATION.value,
        "cars_sync_job",
        event_specific_data=StepMaterializationData(AssetMaterialization(asset_key="cars")),
    )
    instance.store_event(
        EventLogEntry(error_info=None, level="debug", user_message="", run_id="backdated",
                      timestamp=time.time() - age_hours * 3600, dagster_event=event)
    )


def test_freshness_check_is_late_after_6_hours_plus_grace():
    from dagster import DagsterInstance

    from sync_pipelines.cars.checks import cars_freshness_checks

    instance = DagsterInstance.ephemeral()
    keys = {key for checks in cars_freshness_checks for key in checks.check_keys}
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(), asset_check_selection=keys)

    def evaluate() -> bool:
        [evaluation] = job.execute_in_process(instance=instance, raise_on_error=False).get_asset_check_evaluations()
        return evaluation.passed

    assert not evaluate()  # never materialized
    _store_cars_materialization(instance, age_hours=7)
    assert not evaluate()  # 7 h > 6 h 30 min
    _store_cars_materialization(instance, age_hours=5)
    assert evaluate()
