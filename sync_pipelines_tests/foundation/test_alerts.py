"""sync_failure_alert_sensor: a run that fails for good POSTs one secret-free Slack message
naming source, job, partition, the error and the run's page; a webhook that is down or
refuses gets the alert on a later tick, never twice.

The webhook is a real HTTP server on loopback; the failed runs are real runs on an
ephemeral instance; the sensor is evaluated tick by tick with its cursor carried over.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import DagsterInstance, build_sensor_context, job, op

from sync_pipelines.alerts import sync_failure_alert_sensor
from sync_pipelines.http_client import VendorHTTPError
from sync_pipelines.kit import run_tags
from sync_pipelines.redaction import register_secret

SECRET = "odoo-api-key-7f3a9c"
WEBHOOK_TOKEN = "T0001/B0002/hook-token-xyz"
UI = "https://dagster.example.com/"


class Webhook:
    """A Slack-like receiver; ``statuses`` answers the next requests (then 200), ``stop()`` takes
    it down and ``start()`` brings it back on the same address."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        self.port = 0
        self.start()
        self.url = f"http://127.0.0.1:{self.port}/services/{WEBHOOK_TOKEN}"

    def start(self) -> None:
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = webhook.statuses.pop(0) if webhook.statuses else 200
                if status == 200:
                    webhook.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def texts(self) -> list[str]:
        return [body["text"] for body in self.bodies]


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv("SYNC_ALERT_WEBHOOK_URL", hook.url)
    monkeypatch.setenv("SYNC_UI_BASE_URL", UI)
    yield hook
    hook.stop()


@op
def fetch_invoices() -> None:
    register_secret(SECRET)
    raise RuntimeError(f"odoo POST /json/2/account.move/search_read: access denied for key {SECRET}\nsecond line")


@job(tags=run_tags("odoo"))
def odoo_like_sync_job() -> None:
    fetch_invoices()


@op
def procore_rfis() -> None:
    raise RuntimeError("Procore connection of user 4242 needs re-authorization")


@job
def procore_sync_job() -> None:  # no source tag: the source is the job's prefix, as for Procore's
    procore_rfis()


class Sensor:
    """The sensor ticking on ``instance``, its cursor carried from tick to tick as the daemon does."""

    def __init__(self, instance: DagsterInstance) -> None:
        self.instance, self.cursor = instance, None
        self.tick()  # the first tick only sets the cursor: failures from now on

    def tick(self):
        result = sync_failure_alert_sensor(build_sensor_context(instance=self.instance, cursor=self.cursor))
        self.cursor = result.cursor
        return result


def fail(instance: DagsterInstance, failing_job=odoo_like_sync_job, **tags: str) -> str:
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    assert not result.success
    return result.run_id


def test_a_failed_run_posts_once_source_job_partition_error_and_link_without_secrets(webhook: Webhook):
    with DagsterInstance.ephemeral() as instance:
        fail(instance)  # before the sensor started: not announced
        sensor = Sensor(instance)
        odoo_run = fail(instance)
        procore_run = fail(instance, procore_sync_job, **{"procore/connection": "4242", "dagster/partition": "4242"})
        sensor.tick()
        sensor.tick()  # once per run
    assert len(webhook.texts) == 2
    odoo, procore = webhook.texts
    assert odoo.splitlines() == [
        f":rotating_light: odoo: odoo_like_sync_job failed (run {odoo_run})",
        "• step `fetch_invoices`: RuntimeError: odoo POST /json/2/account.move/search_read: access denied for key ***",
        f"• https://dagster.example.com/runs/{odoo_run}",
    ]
    assert SECRET not in odoo
    assert procore.splitlines()[:3] == [
        f":rotating_light: procore: procore_sync_job failed (run {procore_run})",
        "• connection 4242",
        "• step `procore_rfis`: RuntimeError: Procore connection of user 4242 needs re-authorization",
    ]


def test_a_failure_the_daemon_will_retry_is_not_posted(webhook: Webhook):
    retries = {"run_retries": {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": True}}
    with DagsterInstance.ephemeral(settings=retries) as instance:
        sensor = Sensor(instance)
        run_id = fail(instance)
        assert instance.get_run_by_id(run_id).tags["dagster/will_retry"] == "true"
        sensor.tick()
    assert webhook.bodies == []


def test_without_a_webhook_the_alert_is_only_logged(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SYNC_ALERT_WEBHOOK_URL", raising=False)
    with DagsterInstance.ephemeral() as instance:
        sensor = Sensor(instance)
        before = sensor.cursor
        fail(instance)
        sensor.tick()  # no error, nothing to post to, the run counts as handled
        assert sensor.cursor != before


def test_a_webhook_that_is_down_gets_the_alert_on_the_next_tick_not_lost_not_twice(webhook: Webhook):
    with DagsterInstance.ephemeral() as instance:
        sensor = Sensor(instance)
        run_id = fail(instance)
        webhook.stop()
        for _ in range(2):  # ticks while it is down fail, the cursor stays before the run
            with pytest.raises(VendorHTTPError) as error:
                sensor.tick()
            assert "alert webhook" in str(error.value) and WEBHOOK_TOKEN not in str(error.value)
        webhook.start()
        sensor.tick()
        sensor.tick()
    assert len(webhook.texts) == 1 and run_id in webhook.texts[0]


def test_a_refused_alert_after_a_posted_one_waits_for_the_next_tick(webhook: Webhook):
    with DagsterInstance.ephemeral() as instance:
        sensor = Sensor(instance)
        first, second = fail(instance), fail(instance)
        webhook.statuses = [200, 500, 500, 500]  # the second alert is refused 3 times
        sensor.tick()  # the first is sent: this tick does not fail, it stops before the second
        assert len(webhook.texts) == 1 and first in webhook.texts[0]
        sensor.tick()
    assert len(webhook.texts) == 2 and second in webhook.texts[1]


def test_a_broken_webhook_fails_the_tick_clearly_without_showing_its_token(webhook: Webhook):
    webhook.statuses = [500] * 3
    with DagsterInstance.ephemeral() as instance:
        sensor = Sensor(instance)
        fail(instance)
        with pytest.raises(VendorHTTPError) as error:
            sensor.tick()
    assert "alert webhook" in str(error.value) and "500" in str(error.value)
    assert WEBHOOK_TOKEN not in str(error.value)
    assert webhook.statuses == [] and webhook.bodies == []  # retried 3 times, then gave up


def test_a_run_failed_outside_any_step_is_posted_with_the_run_s_reason(webhook: Webhook):
    """E.g. failed by run health after its worker died: no step failure, the run's own message."""
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    with DagsterInstance.ephemeral() as instance:
        sensor = Sensor(instance)
        run = instance.add_run(DagsterRun(job_name="golioth_sync_job", run_id="dead-run-1", status=DagsterRunStatus.STARTED,
                                          tags={**run_tags("golioth"), "golioth/integration": "acme"}))
        instance.report_run_failed(run, "Run worker died: pid 4242 on host-a is gone")
        sensor.tick()
    assert webhook.texts[0].splitlines() == [
        ":rotating_light: golioth: golioth_sync_job failed (run dead-run-1)",
        "• integration acme",
        "• run: Run worker died: pid 4242 on host-a is gone",
        "• https://dagster.example.com/runs/dead-run-1",
    ]


def test_a_message_the_webhook_refuses_as_such_is_logged_and_passed_over(webhook: Webhook):
    with DagsterInstance.ephemeral() as instance:
        sensor = Sensor(instance)
        fail(instance)
        webhook.statuses = [400]  # Slack's invalid_payload: sending it again cannot help
        sensor.tick()
        later = fail(instance)
        sensor.tick()
    assert len(webhook.texts) == 1 and later in webhook.texts[0]
