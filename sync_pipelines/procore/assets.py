"""Procore assets (group ``procore``), one partition per connection, and ``procore_sync_job``.

``procore_companies`` -> ``procore_projects`` -> ``procore_rfis``, materialized by one step
(``procore_sync``: one token, one rate budget per run), each writing its table itself and
reporting inserted / updated / unchanged / deleted / rejected, the backlog, requests made,
token refreshes and the rate-limit remaining. The partition key is the
connection's user id, so the UI shows a connection's history as its partition's runs. The
step first waits for a start slot (:mod:`sync_pipelines.procore.gate`) and at the end stamps
``last_sync_at``.
"""

from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    DynamicPartitionsDefinition,
    MaterializeResult,
    define_asset_job,
    in_process_executor,
    multi_asset,
)
from pydantic import Field

from sync_pipelines.executors import sync_executor
from sync_pipelines.kit import finish_sync_asset
from sync_pipelines.procore import settings
from sync_pipelines.procore.gate import wait_for_start_slot
from sync_pipelines.procore.resources import ProcoreResource
from sync_pipelines.procore.sync import ProcoreSyncReport, SyncScope, sync_companies, sync_projects, sync_rfis
from sync_pipelines.retries import retry_transient_failures
from sync_pipelines.status_checks import sync_selection
from sync_pipelines.sync_config import SyncConfig
from sync_pipelines.warehouse import WarehouseResource

CONNECTIONS_PARTITIONS = DynamicPartitionsDefinition(name="procore_connections")
CONNECTION_TAG = "procore/connection"
SYNC_TAG = "procore/sync"
# Runs of this job: a step failure is not re-run by the instance's run retries (a refused
# refresh token must alert once, not thrice); transient failures get step retries with
# backoff (retries.py), crashed workers still get run retries.
JOB_TAGS = {SYNC_TAG: "connection", "dagster/retry_on_asset_or_op_failure": "false", "dagster/max_runtime": "3600"}


class ProcoreSyncConfig(SyncConfig):
    """``mode``: ``full`` also marks projects and RFIs Procore no longer returns (``deleted_at``)."""

    overlap_seconds: int = Field(
        default=settings.DEFAULT_OVERLAP_SECONDS, ge=0,
        description="incremental listings start this many seconds before the stored cursor",
    )


STEPS = (("procore_companies", sync_companies), ("procore_projects", sync_projects), ("procore_rfis", sync_rfis))


def _finish(
    context: AssetExecutionContext, asset_name: str, report: ProcoreSyncReport, client, tokens, wh
) -> MaterializeResult:
    user_id = tokens.user_id
    spent = f"rate budget spent: {report.budget_spent}; {len(report.backlog)} left for the next run"
    notes = [spent] if report.budget_spent else []
    summary = (
        f"procore user {user_id} {report.entity} ({report.mode}): fetched {report.fetched}, inserted "
        f"{report.counts.inserted}, updated {report.counts.updated}, unchanged {report.counts.unchanged}, "
        f"deleted {report.deleted}, rejected {report.rejected}"
    )
    remaining = client.budget.remaining
    result = finish_sync_asset(
        context.log, report, summary, destination=wh.location, notes=notes,
        metadata={"connection": user_id, "requests": client.stats.requests, "token_refreshes": tokens.refreshes,
                  "rate_limit_remaining": remaining if remaining is not None else -1},
    )
    return MaterializeResult(asset_key=asset_name, metadata=result.metadata)


def sync_connection(
    context: AssetExecutionContext, config: ProcoreSyncConfig, procore: ProcoreResource, warehouse: WarehouseResource
) -> Iterator[MaterializeResult]:
    """One connection's companies, projects and RFIs, in that order, in one step (one token, one budget)."""
    if not context.has_partition_key:
        # The demo, or a launch without a connection: nothing to sync, nothing to fail.
        context.log.info("no connection partition selected: nothing to sync")
        for name, _ in STEPS:
            yield MaterializeResult(asset_key=name, metadata={"connection": "none"})
        return
    user_id = context.partition_key
    results = []
    with retry_transient_failures(context):
        wh = warehouse.get_warehouse()
        client, tokens = procore.client(wh, user_id, context.run.run_id)
        with client:
            waited = wait_for_start_slot(wh, user_id, settings.starts_per_minute())
            if waited:
                context.log.info(f"waited {waited:.1f}s for a start slot ({settings.starts_per_minute()}/minute)")
            scope = SyncScope(user_id, tokens.connection.company_id, config.mode, config.overlap_seconds)
            for name, step in STEPS:
                report = step(client, wh, scope)
                results.append(_finish(context, name, report, client, tokens, wh))
            if not report.budget_spent:
                tokens.store.note_sync(user_id, "last_sync_at")
    context.log.info(f"procore user {user_id}: {client.stats.requests} request(s), {tokens.refreshes} token refresh(es)")
    yield from results


@multi_asset(
    name="procore_sync",
    specs=[
        AssetSpec("procore_companies", group_name="procore", kinds={"procore"},
                  description="Companies the connection's user sees (GET /rest/v1.0/companies) -> procore_companies."),
        AssetSpec("procore_projects", group_name="procore", kinds={"procore"}, deps=["procore_companies"],
                  description="Projects of the connection's company (or companies) -> procore_projects."),
        AssetSpec("procore_rfis", group_name="procore", kinds={"procore"}, deps=["procore_projects"],
                  description="RFIs of every live project, a cursor per project -> procore_rfis; a spent rate "
                              "budget leaves a backlog for the next run."),
    ],
    partitions_def=CONNECTIONS_PARTITIONS,
    can_subset=False,
)
def procore_sync(
    context: AssetExecutionContext, config: ProcoreSyncConfig, procore: ProcoreResource, warehouse: WarehouseResource
) -> Iterator[MaterializeResult]:
    yield from sync_connection(context, config, procore, warehouse)


SYNC_ASSETS = [procore_sync]

procore_sync_job = define_asset_job(
    "procore_sync_job",
    selection=sync_selection(*SYNC_ASSETS),
    partitions_def=CONNECTIONS_PARTITIONS,
    tags=JOB_TAGS,
    executor_def=sync_executor(in_process_executor),
    description="Sync one Procore connection (partition = user id): companies, projects, RFIs.",
)


def run_config(mode: str = "incremental", **extra) -> dict:
    return {"ops": {"procore_sync": {"config": {"mode": mode, **extra}}}}
