"""Failure alerts: ``sync_failure_alert_sensor`` posts one redacted Slack-compatible message to
``SYNC_ALERT_WEBHOOK_URL`` for each run that failed and will not be retried (only logged when
unset, or when a run retry follows): source, job, partition, a one-line error and a link to
the run (``SYNC_UI_BASE_URL``). The story: README, "Alerts".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusChangeRecordsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sync_pipelines.http_client import RetryPolicy, VendorHTTPClient, VendorHTTPError
from sync_pipelines.redaction import redact
from sync_pipelines.settings import env

WILL_RETRY_TAG = "dagster/will_retry"
RETRY_NUMBER_TAG = "dagster/retry_number"
# What a run's partition means, per source (the tags their runs carry besides dagster/partition).
PARTITION_TAGS = {"procore/connection": "connection", "golioth/integration": "integration"}
# Failures read per tick; the rest wait for the next tick (the cursor stays before them).
BATCH = 20
# The webhook refusing this one message (Slack: invalid_payload, too long): sending it again
# cannot help, so it is logged and passed over; any other error is retried on the next tick.
MESSAGE_REFUSED = {400, 413, 422}


def alert_webhook_url() -> str | None:
    return env("SYNC_ALERT_WEBHOOK_URL")


def run_link(run_id: str) -> str | None:
    """The run's page in the Dagster UI at ``SYNC_UI_BASE_URL`` (e.g. https://dagster.example.com)."""
    base = env("SYNC_UI_BASE_URL")
    return f"{base.rstrip('/')}/runs/{run_id}" if base else None


def _partition_line(tags: dict[str, str]) -> str | None:
    parts = [f"{label} {tags[tag]}" for tag, label in PARTITION_TAGS.items() if tags.get(tag)]
    partition = tags.get("dagster/partition")
    if partition and not any(partition == tags.get(tag) for tag in PARTITION_TAGS):
        parts.insert(0, f"partition {partition}")
    return f"• {', '.join(parts)}" if parts else None


def alert_text(instance: DagsterInstance, run: Any) -> str:
    """One short, secret-free message: source, job, run, partition, the first error, the link."""
    from sync_pipelines.__main__ import source_names
    from sync_pipelines.status import first_error, source_of

    source = source_of(run, source_names()) or "sync_pipelines"
    lines = [f":rotating_light: {source}: {run.job_name} failed (run {run.run_id})"]
    retry_number = run.tags.get(RETRY_NUMBER_TAG)
    if retry_number:
        lines[0] += f" after {retry_number} automatic retr{'y' if retry_number == '1' else 'ies'}"
    if partition := _partition_line(run.tags):
        lines.append(partition)
    step_key, error = first_error(instance, run.run_id)
    failed_steps = len(instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_FAILURE).records)
    where = f"step `{step_key}`" if step_key else "run"
    more = f" (and {failed_steps - 1} more failed step(s))" if failed_steps > 1 else ""
    lines.append(f"• {where}: {error or 'no error message'}{more}")
    if link := run_link(run.run_id):
        lines.append(f"• {link}")
    return redact("\n".join(lines))


def failure_text(context: RunFailureSensorContext) -> str:
    """:func:`alert_text` of a run-failure sensor context's run."""
    return alert_text(context.instance, context.dagster_run)


def post_alert(url: str, text: str) -> None:
    """POST ``{"text": text}``; a few quick retries, then a clear error."""
    with VendorHTTPClient(
        vendor="alert webhook",
        base_url=url,
        # Errors name the endpoint by its path, which is where Slack keeps the token.
        secrets=[url, urlsplit(url).path],
        timeout=(5.0, 10.0),
        retry=RetryPolicy(max_attempts=3, max_wait=30.0),
    ) as client:
        client.post(url, json_body={"text": text})


def _newest_failure_id(instance: DagsterInstance) -> int:
    records = instance.fetch_run_status_changes(DagsterEventType.RUN_FAILURE, limit=1).records
    return records[0].storage_id if records else -1


def _alert(context: SensorEvaluationContext, run: Any) -> None:
    # Re-read the run: the retry decision is tagged onto it as it fails.
    run = context.instance.get_run_by_id(run.run_id) or run
    try:
        text = alert_text(context.instance, run)
    except Exception as error:  # a run the text cannot be built for must not hold up every later alert
        context.log.warning(f"alert text for run {run.run_id} fell back to the minimum: {redact(str(error))}")
        link = run_link(run.run_id)
        text = redact(f":rotating_light: {run.job_name} failed (run {run.run_id})" + (f"\n• {link}" if link else ""))
    if run.tags.get(WILL_RETRY_TAG) == "true":
        context.log.info(f"not alerting, the run will be retried automatically: {text}")
        return
    url = alert_webhook_url()
    if url is None:
        context.log.error(f"SYNC_ALERT_WEBHOOK_URL is not set; alert only logged: {text}")
        return
    post_alert(url, text)
    context.log.info(f"alert posted for run {run.run_id}")


@sensor(
    name="sync_failure_alert_sensor",
    description="Alerts (SYNC_ALERT_WEBHOOK_URL, else the log) once per run that fails and will not be retried; "
    "an alert the webhook refused is sent again on the next tick.",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
)
def sync_failure_alert_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    """The cursor is the storage id of the last failure handled: a failure whose alert could not
    be posted stays after it, so the next tick posts it again (Dagster's run_failure_sensor
    would move on and lose it)."""
    if context.cursor is None:  # first tick: alert from now on, as run_failure_sensor does
        return SensorResult(cursor=str(_newest_failure_id(context.instance)),
                            skip_reason=SkipReason("started: alerting failures from now on"))
    handled = int(context.cursor)
    records = context.instance.fetch_run_status_changes(
        RunStatusChangeRecordsFilter(event_type=DagsterEventType.RUN_FAILURE, after_storage_id=handled),
        limit=BATCH, ascending=True,
    ).records
    alerted = 0
    for record in records:
        run = context.instance.get_run_by_id(record.event_log_entry.run_id)
        try:
            if run is not None:
                _alert(context, run)
        except Exception as error:
            if isinstance(error, VendorHTTPError) and error.status in MESSAGE_REFUSED:
                context.log.error(f"the webhook refused the alert for run {run.run_id}, not sent again: {error}")
            elif not alerted:
                raise  # nothing sent this tick: fail it (the UI shows why), the cursor stays put
            else:
                context.log.error(f"alert for run {run.run_id} not posted, retried next tick: {redact(str(error))}")
                break
        handled, alerted = record.storage_id, alerted + 1
    return SensorResult(cursor=str(handled), skip_reason=SkipReason(f"{alerted} failed run(s) handled"))
