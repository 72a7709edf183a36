"""The status report as asset checks (issue 13): per source ``sync_status`` from
``build_report``, evaluated by ``sync_status_job`` only, never inside a sync run."""

from __future__ import annotations

from dagster import AssetCheckKey, AssetCheckSeverity, AssetKey, DagsterInstance, job, op

from sync_pipelines.definitions import defs
from sync_pipelines.kit import run_tags
from sync_pipelines.status import RowsChanged, RunSummary, SourceStatus, SuccessRate
from sync_pipelines.status_checks import STATUS_ASSETS, STATUS_CHECK, STATUS_JOB_ONLY, judge
from sync_pipelines.warehouse import Warehouse

SYNC_JOBS = ("cars_sync_job", "cars_full_sync_job", "odoo_sync_job", "procore_sync_job", "golioth_sync_job")


def _status(**values) -> SourceStatus:
    base = dict(
        source="procore", last_run=RunSummary("r1", "procore_sync_job", "SUCCESS", None, None),
        success_24h=SuccessRate(1, 1), success_7d=SuccessRate(1, 1), rows_changed_last_run=RowsChanged(),
        rows_changed_24h=RowsChanged(inserted=3), newest_vendor_timestamp=None, lag_seconds=None,
        lag_column="procore_*.updated_at", open_rejects=0, needs_reauth=[], integrations_skipped=None,
    )
    return SourceStatus(**{**base, **values})


def test_judging_a_source():
    healthy = judge(_status())
    assert healthy.passed and healthy.metadata["rows_changed_24h"].value == 3
    reauth = judge(_status(needs_reauth=["7001"]))
    assert not reauth.passed and reauth.severity == AssetCheckSeverity.ERROR
    assert reauth.description == "connection(s) needing re-authorization: 7001"
    rejects = judge(_status(open_rejects=2))
    assert not rejects.passed and rejects.severity == AssetCheckSeverity.WARN
    skipped = judge(_status(integrations_skipped=[{"id": "a", "reason": "disabled"},
                                                  {"id": "b", "reason": "last run failed: HTTP 500"}]))
    assert skipped.description == "integration(s) whose last run failed: b"  # disabled is a choice, not a fault
    never = judge(_status(last_run=None))
    assert never.passed and never.metadata["last_run_status"].value == "never"


def test_status_checks_run_in_the_status_job_only():
    status_keys = {AssetCheckKey(AssetKey(asset), name) for asset, name in STATUS_JOB_ONLY}
    assert {AssetCheckKey(AssetKey(asset), STATUS_CHECK) for asset in STATUS_ASSETS.values()} <= status_keys
    assert status_keys <= defs.resolve_job_def("sync_status_job").asset_layer.asset_graph.asset_check_keys
    for name in SYNC_JOBS:
        selected = defs.resolve_job_def(name).asset_layer.asset_graph.asset_check_keys
        assert not status_keys & selected, name
    assert defs.resolve_job_def("cars_sync_job").asset_layer.asset_graph.asset_check_keys  # other checks stay
    schedule = defs.resolve_schedule_def("sync_status_schedule")
    assert schedule.job_name == "sync_status_job" and schedule.cron_schedule == "*/15 * * * *"


@op
def refused() -> None:
    raise RuntimeError("encar GET /search: HTTP 403")


@job(tags=run_tags("cars"))
def cars_like_job() -> None:
    refused()


def test_the_status_job_fails_the_check_of_a_source_whose_last_run_failed(sqlite_url, monkeypatch):
    monkeypatch.setenv("SYNC_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SYNC_UI_BASE_URL", "https://dagster.example.com")
    warehouse = Warehouse.for_url(sqlite_url)
    with warehouse.transaction() as tx:
        tx.reject("odoo", "invoice", 42, "amount_total is not a number")
    with DagsterInstance.ephemeral() as instance:
        failed = cars_like_job.execute_in_process(instance=instance, raise_on_error=False)
        result = defs.resolve_job_def("sync_status_job").execute_in_process(instance=instance)
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    cars = checks[("cars", STATUS_CHECK)]
    assert not cars.passed and cars.severity == AssetCheckSeverity.ERROR
    assert cars.description == f"last run {failed.run_id} (cars_like_job) failed: RuntimeError: encar GET /search: HTTP 403"
    assert cars.metadata["last_run_status"].value == "FAILURE"
    odoo = checks[("odoo_invoices", STATUS_CHECK)]
    assert not odoo.passed and odoo.severity == AssetCheckSeverity.WARN and odoo.metadata["open_rejects"].value == 1
    assert checks[("procore_companies", STATUS_CHECK)].passed and checks[("golioth_telemetry", STATUS_CHECK)].passed
    assert checks[("golioth_telemetry_live", "integrations_on_time")].passed  # no integration at all
    assert checks[("procore_companies", "connections_on_time")].passed  # no connection at all
    warehouse.dispose()


def test_a_source_that_recovered_passes_again(sqlite_url, monkeypatch):
    monkeypatch.setenv("SYNC_DATABASE_URL", sqlite_url)

    @op
    def fine() -> None:
        pass

    @job(tags=run_tags("cars"))
    def cars_again() -> None:
        fine()

    with DagsterInstance.ephemeral() as instance:
        cars_like_job.execute_in_process(instance=instance, raise_on_error=False)
        cars_again.execute_in_process(instance=instance)
        result = defs.resolve_job_def("sync_status_job").execute_in_process(instance=instance)
    [cars] = [e for e in result.get_asset_check_evaluations() if e.asset_key == AssetKey("cars") and e.check_name == STATUS_CHECK]
    assert cars.passed and cars.metadata["success_rate_24h"].value == 0.5
