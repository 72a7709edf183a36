"""Step retries for transient failures: a vendor outage past the HTTP layer's patience and a
destination database outage are retried with backoff; permanent errors fail at once.

(No ``from __future__ import annotations`` here: Dagster checks the ``context`` annotation of
the assets defined in the tests at definition time.)"""

import pytest
from dagster import AssetExecutionContext, DagsterInstance, asset, materialize

from sync_pipelines.http_client import RetryPolicy, VendorAuthError, VendorHTTPClient, VendorHTTPError
from sync_pipelines.retries import is_transient, retry_transient_failures, step_retry_wait
from sync_pipelines.settings import step_retries
from sync_pipelines.warehouse import Warehouse, WarehouseUnavailableError
from sync_pipelines_tests.foundation.test_http_client import ProbeVendor, probe  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (WarehouseUnavailableError("destination database down"), True),
        (WarehouseUnavailableError("table 'cars' does not exist", transient=False), False),
        (VendorHTTPError("probe", "GET /x", "connection failed"), True),
        (VendorHTTPError("probe", "GET /x", "HTTP 503", status=503), True),
        (VendorHTTPError("probe", "GET /x", "HTTP 429", status=429), True),
        (VendorHTTPError("probe", "GET /x", "HTTP 404", status=404), False),
        (VendorAuthError("probe", "GET /x", "HTTP 401", status=401), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_transient_failures_are_retried(error, transient):
    assert is_transient(error) is transient


def test_backoff_doubles_is_capped_and_honours_the_vendors_wait(monkeypatch):
    monkeypatch.setenv("SYNC_STEP_RETRY_SECONDS", "30")
    assert 30 <= step_retry_wait(0) <= 33 and 60 <= step_retry_wait(1) <= 66 and 120 <= step_retry_wait(2) <= 132
    assert step_retry_wait(10) == 900
    assert step_retry_wait(0, hint=200) == 200
    monkeypatch.setenv("SYNC_STEP_RETRIES", "many")
    with pytest.raises(ValueError, match="SYNC_STEP_RETRIES must be an integer"):
        step_retries()


def _run(asset_def):
    with DagsterInstance.ephemeral() as instance:
        return materialize([asset_def], instance=instance, raise_on_error=False)


def test_vendor_outage_longer_than_the_http_retries_is_ridden_out_by_a_step_retry(probe):  # noqa: F811
    # 4 HTTP attempts per step; 6 failures: the first step attempt gives up, the retry lands
    probe.faults.add("status", vendor="probe", status=503, retry_after=0, times=6, path=r"/items")
    attempts: list[int] = []

    @asset
    def probe_items(context: AssetExecutionContext) -> None:
        attempts.append(context.retry_number)
        with retry_transient_failures(context):
            client = VendorHTTPClient(
                vendor="probe", base_url=probe.url("probe"), timeout=(2, 2),
                retry=RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05),
            )
            assert len(client.get_json("/items")["list"]) == 5

    result = _run(probe_items)
    assert result.success
    assert attempts == [0, 1]


def test_database_outage_is_retried_then_fails_with_a_clear_redacted_error(monkeypatch):
    monkeypatch.setenv("SYNC_STEP_RETRIES", "2")
    # nothing listens on port 1: every connection is refused
    url = "postgresql+psycopg2://sync:hunter2secret@127.0.0.1:1/warehouse"
    attempts: list[int] = []

    @asset
    def lands_rows(context: AssetExecutionContext) -> None:
        attempts.append(context.retry_number)
        with retry_transient_failures(context):
            Warehouse.for_url(url).count("sync_state")

    result = _run(lands_rows)
    assert not result.success
    assert attempts == [0, 1, 2]
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = failure.event_specific_data.error.to_string()
    assert "WarehouseUnavailableError" in text and "127.0.0.1:1" in text
    assert "hunter2secret" not in text


def test_permanent_failure_is_not_retried():
    attempts: list[int] = []

    @asset
    def refused(context: AssetExecutionContext) -> None:
        attempts.append(context.retry_number)
        with retry_transient_failures(context):
            raise VendorAuthError("probe", "GET /secure", "HTTP 403: bad key", status=403)

    result = _run(refused)
    assert not result.success and attempts == [0]
