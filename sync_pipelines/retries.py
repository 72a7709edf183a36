"""Step-level retries for transient failures, with backoff: one piece every source's steps use.

The HTTP layer already retries each call (backoff, ``Retry-After``) for up to a few
minutes. What it cannot ride out, a destination database restarting or a vendor outage
longer than one call's patience, fails the step; this turns exactly those failures into a
Dagster ``RetryRequested``, so the step runs again after 30 s, 1 min, 2 min (plus jitter)
in the same run (``SYNC_STEP_RETRIES``, ``SYNC_STEP_RETRY_SECONDS``). Re-running a step is safe: every write is an idempotent upsert and each
cursor advances with the batch it covers, so a retry resumes where the failure stopped.

Permanent failures (credentials refused, a malformed answer, a missing table, a bug) are
not retried: they fail the step at once with their own clear message. Configuration errors
(a malformed URL or number, credentials, database or SSL refused) also tag the run so the
run-retry policy does not launch it again: the alert goes out at once. The instance's run
retries (``dagster.yaml``: two, ``retry_on_asset_or_op_failure: true``) then re-launch a
failed run from its failed steps, at once (Dagster has no delay between run retries): that
re-runs the step retries above, so an outage of up to about three times their span is
ridden out, at the price of a permanent error being met three times before
``sync_failure_alert_sensor`` reports it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import OpExecutionContext, RetryRequested

from sync_pipelines import settings
from sync_pipelines.http_client import VendorAuthError, VendorHTTPError
from sync_pipelines.settings import ConfigurationError
from sync_pipelines.warehouse import WarehouseUnavailableError

# Dagster's run tag that keeps the run-retry policy from re-running a run failed by a step.
NO_RUN_RETRY_TAGS = {"dagster/retry_on_asset_or_op_failure": "false"}

STEP_RETRY_MAX_SECONDS = 900.0
# A vendor answer that may succeed later: timeouts, rate limits, server errors.
TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """Whether trying the same step again later may succeed."""
    if isinstance(exc, WarehouseUnavailableError):
        return exc.transient
    if isinstance(exc, VendorAuthError):
        return False
    if isinstance(exc, VendorHTTPError):
        # status None: the vendor could not be reached at all (refused, reset, timed out)
        return exc.status is None or exc.status in TRANSIENT_HTTP_STATUSES
    return False


def is_configuration_error(exc: BaseException) -> bool:
    """A setting that is wrong as written (bad URL or number, credentials or database refused):
    no retry of the step or of the run can help, so the run fails (and alerts) at once."""
    if isinstance(exc, (ConfigurationError, VendorAuthError)):
        return True
    return isinstance(exc, WarehouseUnavailableError) and not exc.transient


def step_retry_wait(retry_number: int, hint: float | None = None) -> float:
    """Backoff before retry ``retry_number + 1``, never earlier than the vendor asked."""
    wait = settings.step_retry_seconds() * (2**retry_number)
    wait += random.uniform(0, wait * 0.1)
    if hint:
        wait = max(wait, hint)
    return min(wait, STEP_RETRY_MAX_SECONDS)


@contextmanager
def retry_transient_failures(context: OpExecutionContext) -> Iterator[None]:
    """Wrap a step's body: a transient failure asks Dagster to retry the step later."""
    try:
        yield
    except RetryRequested:
        raise
    except Exception as exc:
        if is_configuration_error(exc):
            context.instance.add_run_tags(context.run_id, NO_RUN_RETRY_TAGS)
            raise
        if not is_transient(exc):
            raise
        attempt, retries = context.retry_number, settings.step_retries()
        if attempt >= retries:
            context.log.error(f"still failing after {retries} step retries: {exc}")
            raise
        wait = step_retry_wait(attempt, getattr(exc, "retry_after", None))
        context.log.warning(f"transient failure, step retry {attempt + 1} of {retries} in {wait:.1f}s: {exc}")
        raise RetryRequested(max_retries=retries, seconds_to_wait=wait) from exc
