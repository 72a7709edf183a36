"""sync_failure_alert_sensor: a run that fails for good POSTs one secret-free Slack message.

The webhook is a real HTTP server on loopback; the failed runs are real runs on an
ephemeral instance.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import DagsterInstance, build_run_status_sensor_context, job, op

from sync_pipelines.alerts import sync_failure_alert_sensor
from sync_pipelines.http_client import VendorHTTPError
from sync_pipelines.redaction import register_secret

SECRET = "odoo-api-key-7f3a9c"
WEBHOOK_TOKEN = "T0001/B0002/hook-token-xyz"


class Webhook:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status = 200
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook.bodies.append(json.loads(body))
                self.send_response(webhook.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{WEBHOOK_TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv("SYNC_ALERT_WEBHOOK_URL", hook.url)
    yield hook
    hook.server.shutdown()


@op
def fetch_invoices() -> None:
    register_secret(SECRET)
    raise RuntimeError(f"odoo POST /json/2/account.move/search_read: access denied for key {SECRET}")


@job
def odoo_like_sync_job() -> None:
    fetch_invoices()


def failed_run_context(instance: DagsterInstance):
    result = odoo_like_sync_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return build_run_status_sensor_context(
        sensor_name="sync_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()


def test_a_failed_run_posts_one_message_naming_job_step_and_reason_without_secrets(webhook: Webhook):
    with DagsterInstance.ephemeral() as instance:
        sync_failure_alert_sensor(failed_run_context(instance))
    assert len(webhook.bodies) == 1
    text = webhook.bodies[0]["text"]
    assert "odoo_like_sync_job failed" in text
    assert "step `fetch_invoices`" in text and "access denied" in text
    assert SECRET not in text and "***" in text


def test_a_failure_the_daemon_will_retry_is_not_posted(webhook: Webhook):
    retries = {"run_retries": {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": True}}
    with DagsterInstance.ephemeral(settings=retries) as instance:
        context = failed_run_context(instance)
        assert instance.get_run_by_id(context.dagster_run.run_id).tags["dagster/will_retry"] == "true"
        sync_failure_alert_sensor(context)
    assert webhook.bodies == []


def test_without_a_webhook_the_alert_is_only_logged(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SYNC_ALERT_WEBHOOK_URL", raising=False)
    with DagsterInstance.ephemeral() as instance:
        sync_failure_alert_sensor(failed_run_context(instance))  # no error, nothing to post to


def test_a_broken_webhook_fails_the_tick_clearly_without_showing_its_token(webhook: Webhook):
    webhook.status = 500
    with DagsterInstance.ephemeral() as instance, pytest.raises(VendorHTTPError) as error:
        sync_failure_alert_sensor(failed_run_context(instance))
    assert "alert webhook" in str(error.value) and "500" in str(error.value)
    assert WEBHOOK_TOKEN not in str(error.value)
    assert len(webhook.bodies) == 3  # retried, then gave up
