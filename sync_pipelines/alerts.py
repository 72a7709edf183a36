"""Failure alerts: ``sync_failure_alert_sensor`` posts one redacted Slack-compatible message to
``SYNC_ALERT_WEBHOOK_URL`` for each run that failed and will not be retried (only logged when
unset, or when a run retry follows). The story: README, "Sources" and "Configuration".
"""

from __future__ import annotations

from urllib.parse import urlsplit

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from sync_pipelines.http_client import RetryPolicy, VendorHTTPClient
from sync_pipelines.redaction import redact
from sync_pipelines.settings import env

WILL_RETRY_TAG = "dagster/will_retry"
RETRY_NUMBER_TAG = "dagster/retry_number"
# Slack truncates long messages; the run page has the whole story.
MAX_ERROR_CHARS = 600


def alert_webhook_url() -> str | None:
    return env("SYNC_ALERT_WEBHOOK_URL")


def failure_text(context: RunFailureSensorContext) -> str:
    """One short, secret-free message: which job, which run, which step failed and why."""
    run = context.dagster_run
    lines = [f":rotating_light: {run.job_name} failed (run {run.run_id})"]
    retry_number = run.tags.get(RETRY_NUMBER_TAG)
    if retry_number:
        lines[0] += f" after {retry_number} automatic retr{'y' if retry_number == '1' else 'ies'}"
    step_failures = context.get_step_failure_events()
    for event in step_failures[:3]:
        reason = _root_cause(event.step_failure_data.error) or event.message or "no error message"
        lines.append(f"• step `{event.step_key}`: {reason[:MAX_ERROR_CHARS]}")
    if len(step_failures) > 3:
        lines.append(f"• and {len(step_failures) - 3} more failed step(s)")
    if not step_failures:
        lines.append(f"• {(context.failure_event.message or 'the run failed')[:MAX_ERROR_CHARS]}")
    return redact("\n".join(lines))


def _root_cause(error) -> str | None:
    """The user code's own error, not Dagster's "Error occurred while executing op" wrapper."""
    if error is None:
        return None
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def post_alert(url: str, text: str) -> None:
    """POST ``{"text": text}``; a few quick retries, then a clear error (the sensor tick fails
    and Dagster shows it; the run is alerted again on the next tick)."""
    with VendorHTTPClient(
        vendor="alert webhook",
        base_url=url,
        # Errors name the endpoint by its path, which is where Slack keeps the token.
        secrets=[url, urlsplit(url).path],
        timeout=(5.0, 10.0),
        retry=RetryPolicy(max_attempts=3, max_wait=30.0),
    ) as client:
        client.post(url, json_body={"text": text})


@run_failure_sensor(
    name="sync_failure_alert_sensor",
    description="Alerts (SYNC_ALERT_WEBHOOK_URL, else the log) when a run fails and will not be retried.",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
)
def sync_failure_alert_sensor(context: RunFailureSensorContext) -> None:
    # Re-read the run: the retry decision is tagged onto it as it fails.
    run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run
    text = failure_text(context)
    if run.tags.get(WILL_RETRY_TAG) == "true":
        context.log.info(f"not alerting, the run will be retried automatically: {text}")
        return
    url = alert_webhook_url()
    if url is None:
        context.log.error(f"SYNC_ALERT_WEBHOOK_URL is not set; alert only logged: {text}")
        return
    post_alert(url, text)
    context.log.info(f"alert posted for run {run.run_id}")
