"""Transient or not, decided in one place: step failures that an outage explains (destination
restarting, vendor outage past the HTTP layer's patience) become ``RetryRequested`` with backoff
(``SYNC_STEP_RETRIES``, ``SYNC_STEP_RETRY_SECONDS``); permanent ones fail at once, configuration
errors also tag the run so run retries skip it. The story: README, "Production".
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
