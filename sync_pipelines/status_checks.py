"""The status report as asset checks: per source a ``sync_status`` check, from
:func:`sync_pipelines.status.build_report`, failing when the source's last run failed or a
Procore connection needs re-authorization, warning on open rejects or Golioth integrations
whose last run failed. ``sync_status_job`` evaluates them (and ``integrations_on_time``) every
15 minutes; the sync jobs leave them out (inside a sync run "the last run" is that run).
"""


from collections.abc import Iterable

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    RunRequest,
    asset_check,
    define_asset_job,
    in_process_executor,
    schedule,
)

from sync_pipelines.status import SourceStatus, build_report
from sync_pipelines.warehouse import WarehouseResource

STATUS_CHECK = "sync_status"
# The asset of each source that carries its check (one per source, as the report is).
STATUS_ASSETS = {"cars": "cars", "odoo": "odoo_invoices", "procore": "procore_companies", "golioth": "golioth_telemetry"}


# Checks only sync_status_job runs: (asset, check name).
STATUS_JOB_ONLY = {*((asset, STATUS_CHECK) for asset in STATUS_ASSETS.values()), ("procore_companies", "connections_on_time")}


def sync_selection(*assets: AssetsDefinition | str) -> AssetSelection:
    """A sync job's selection: ``assets`` with their checks, except those of ``STATUS_JOB_ONLY``."""
    keys = {key for a in assets for key in ([AssetKey(a)] if isinstance(a, str) else a.keys)}
    status = [AssetCheckKey(key, name) for key in keys for asset, name in STATUS_JOB_ONLY if key.to_user_string() == asset]
    selection = AssetSelection.assets(*keys)
    return selection - AssetSelection.checks(*status) if status else selection


def judge(status: SourceStatus) -> AssetCheckResult:
    """Fails (ERROR) on a failed last run or connections needing reauth; warns on open rejects
    and integrations whose last run failed. The figures go along as metadata."""
    errors, warnings = [], []
    run = status.last_run
    if run is not None and run.status == "FAILURE":
        errors.append(f"last run {run.run_id} ({run.job_name}) failed: {run.error or 'no error message'}")
    if status.needs_reauth:
        errors.append(f"connection(s) needing re-authorization: {', '.join(status.needs_reauth)}")
    if status.open_rejects:
        warnings.append(f"{status.open_rejects} open reject(s) in sync_rejects")
    failing = [i["id"] for i in status.integrations_skipped or [] if i["reason"].startswith("last run failed")]
    if failing:
        warnings.append(f"integration(s) whose last run failed: {', '.join(failing)}")
    problems = errors + warnings
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR if errors else AssetCheckSeverity.WARN,
        description="; ".join(problems) or None,
        metadata={
            "last_run_status": run.status if run else "never",
            "last_run_id": run.run_id if run else "none",
            "success_rate_24h": status.success_24h.rate if status.success_24h.rate is not None else "no finished run",
            "success_rate_7d": status.success_7d.rate if status.success_7d.rate is not None else "no finished run",
            "rows_changed_24h": status.rows_changed_24h.total,
            "lag_seconds": status.lag_seconds if status.lag_seconds is not None else "no vendor timestamp",
            "open_rejects": status.open_rejects,
            "needs_reauth": len(status.needs_reauth or []),
            "integrations_skipped": len(status.integrations_skipped or []),
        },
    )


def build_status_check(source: str) -> AssetChecksDefinition:
    @asset_check(
        asset=STATUS_ASSETS[source],
        name=STATUS_CHECK,
        description=f"{source}: `python -m sync_pipelines status` as a check: fails when the last {source} run "
        "failed or a connection needs reauth, warns on open rejects or integrations whose last run failed.",
    )
    def _check(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        [status] = build_report(context.instance, warehouse.get_warehouse(), [source]).sources
        return judge(status)

    return _check


def build_status_defs(sources: Iterable[str], other_checks: Iterable[AssetChecksDefinition] = ()) -> Definitions:
    """The status checks of ``sources``, and the job and schedule evaluating them with ``other_checks``."""
    checks = [build_status_check(source) for source in sources]
    job = define_asset_job(
        "sync_status_job",
        selection=AssetSelection.checks(*checks, *other_checks),
        executor_def=in_process_executor,  # a few queries: not worth a process per check
        description="Evaluates each source's sync_status check (the status report), Golioth's integrations_on_time "
        "and Procore's connections_on_time.",
    )

    @schedule(
        name="sync_status_schedule",
        cron_schedule="*/15 * * * *",
        execution_timezone="UTC",
        job=job,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Every 15 minutes: the status checks, so a source that stopped running still shows it.",
    )
    def sync_status_schedule() -> RunRequest:
        return RunRequest()

    return Definitions(asset_checks=[*checks, *other_checks], jobs=[job], schedules=[sync_status_schedule])
