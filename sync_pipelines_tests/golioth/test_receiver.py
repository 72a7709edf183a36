"""The webhook receiver: auth, limits, durable inbox before 2xx, 503 when it cannot store (SQLite and Postgres)."""

from __future__ import annotations

import json

import pytest
import requests
import sqlalchemy as sa

from sync_pipelines.golioth.receiver import ReceiverConfigError, create_app
from sync_pipelines.golioth.sync import drain_inbox
from sync_pipelines_tests.golioth.conftest import PROJECT, TOKEN, Receiver

pytestmark = pytest.mark.timeout(300)

HEADERS = {
    "Content-Type": "application/json", "Ce-Id": "evt-1", "Ce-Source": "dev-1", "Ce-Subject": PROJECT,
    "Ce-Time": "2026-12-01T10:00:00.123456789Z", "Ce-Type": "io.golioth.data.v1/.s/env",
}


def _inbox(warehouse) -> int:
    return warehouse.count("golioth_webhook_inbox")


def _post(url: str, body: bytes | str = b'{"temp": 21}', token: str | None = TOKEN, **headers: str):
    sent = {**HEADERS, **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return requests.post(url, data=body, headers=sent, timeout=30)


@pytest.mark.slow
def test_2000_events_from_8_concurrent_clients_all_2xx_each_stored_once(golioth, database_url):
    golioth.add("acme")
    golioth.sync()
    with Receiver(create_app(token=TOKEN, database_url=database_url)) as receiver:
        golioth.control("webhook", url=receiver.url, token=TOKEN, workers=8, redeliver_rate=0.1, reorder=True, seed=1)
        golioth.control("emit", count=80, devices=20)
        messages = list(golioth.vendor.outbox)
        assert len(messages) >= 2000
        delivery = golioth.control("deliver")
    assert delivery["failed"] == 0 and set(delivery["statuses"]) == {202}
    assert _inbox(golioth.warehouse) == delivery["sent"] > len(messages)  # redeliveries included
    before = len(golioth.rows())
    report = drain_inbox(golioth.warehouse)
    points = {p for m in messages for p in m.points()}
    assert report.points_inserted == len(points)
    assert len(golioth.rows()) == before + len(points) and _inbox(golioth.warehouse) == 0
    assert len(golioth.rows("received_via = 'push'")) == len(points)
    assert drain_inbox(golioth.warehouse).points_pulled == 0  # drained: nothing twice


def test_wrong_or_missing_token_401_oversized_413_non_json_400_unknown_project_400(golioth, database_url):
    golioth.add("acme")
    app = create_app(token=TOKEN, database_url=database_url, max_bytes=1024)
    with Receiver(app) as receiver:
        assert _post(receiver.url, token="not-the-token-1234").status_code == 401
        assert _post(receiver.url, token=None).status_code == 401
        assert _post(receiver.url, token=TOKEN + "x").status_code == 401
        assert requests.post(receiver.url, data=b"{}", headers={**HEADERS, "Authorization": f"Basic {TOKEN}"},
                             timeout=10).status_code == 401
        assert _post(receiver.url, json.dumps({"blob": "x" * 2000})).status_code == 413
        # a body larger than announced (chunked, no Content-Length) is cut off too
        chunks = (b'{"a": "' + b"x" * 600 + b'"' for _ in range(1))
        big = requests.post(receiver.url, data=iter([next(chunks), b', "b": "' + b"y" * 900 + b'"}']),
                            headers={**HEADERS, "Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert big.status_code == 413
        assert _post(receiver.url, b"<html>not json</html>").status_code == 400
        assert _post(receiver.url, **{"Ce-Subject": "someone-elses-project"}).status_code == 400
        missing = {k: v for k, v in HEADERS.items() if k != "Ce-Type"}
        assert requests.post(receiver.url, data=b"{}", headers={**missing, "Authorization": f"Bearer {TOKEN}"},
                             timeout=10).status_code == 400
        assert _inbox(golioth.warehouse) == 0  # nothing refused was stored
        assert _post(receiver.url).status_code == 202
    assert _inbox(golioth.warehouse) == 1


def test_destination_down_answers_503_and_nothing_acknowledged_is_lost(golioth, database_url, tmp_path):
    golioth.add("acme")
    with Receiver(create_app(token=TOKEN, database_url=database_url)) as receiver:
        acked = [_post(receiver.url, **{"Ce-Id": f"ok-{i}", "Ce-Time": f"2026-12-01T10:00:0{i}Z"}) for i in range(5)]
        assert {r.status_code for r in acked} == {202}
        with _destination_down(golioth.warehouse, database_url):
            refused = [_post(receiver.url, **{"Ce-Id": f"down-{i}"}) for i in range(3)]
            assert {r.status_code for r in refused} == {503}
        assert _post(receiver.url, **{"Ce-Id": "after", "Ce-Time": "2026-12-01T10:01:00Z"}).status_code == 202
    with golioth.warehouse.engine.connect() as conn:
        ids = set(conn.execute(sa.text("SELECT event_id FROM golioth_webhook_inbox")).scalars())
    assert ids == {f"ok-{i}" for i in range(5)} | {"after"}
    drain_inbox(golioth.warehouse)
    assert len(golioth.rows()) == 6


class _destination_down:
    """Postgres: connections refused (and the pool's killed); SQLite: the inbox table is gone."""

    def __init__(self, warehouse, database_url: str):
        self.warehouse, self.url = warehouse, database_url

    def __enter__(self):
        if self.url.startswith("postgresql"):
            name = sa.engine.make_url(self.url).database
            self._admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
                        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        else:
            with self.warehouse.engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE golioth_webhook_inbox RENAME TO inbox_away")
        return self

    def __exit__(self, *exc):
        if self.url.startswith("postgresql"):
            self._admin(f'ALTER DATABASE "{sa.engine.make_url(self.url).database}" ALLOW_CONNECTIONS true')
            self.warehouse.engine.dispose()
        else:
            with self.warehouse.engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE inbox_away RENAME TO golioth_webhook_inbox")

    def _admin(self, *statements: str) -> None:
        from sync_pipelines_tests.conftest import _admin_engine

        engine = _admin_engine()
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
        engine.dispose()


def test_receiver_refuses_to_start_without_a_token(monkeypatch):
    monkeypatch.delenv("GOLIOTH_WEBHOOK_TOKEN", raising=False)
    with pytest.raises(ReceiverConfigError, match="GOLIOTH_WEBHOOK_TOKEN is not set"):
        create_app()


def test_the_token_is_compared_in_constant_time():
    import inspect

    from sync_pipelines.golioth import receiver

    assert "hmac.compare_digest" in inspect.getsource(receiver._authorized)


def test_receiver_beside_a_command_as_make_ui_starts_it(tmp_path, monkeypatch):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = (
        "import requests, time, sys\n"
        "for _ in range(200):\n"
        "    try:\n"
        f"        r = requests.get('http://127.0.0.1:{port}/golioth/health', timeout=5); break\n"
        "    except (requests.ConnectionError, requests.Timeout):\n"
        "        time.sleep(0.05)\n"
        f"r = requests.post('http://127.0.0.1:{port}/golioth/webhook', data=b'{{}}', timeout=5)\n"
        "sys.exit(7 if r.status_code == 401 else 1)\n"
    )
    env = {**os.environ, "GOLIOTH_WEBHOOK_TOKEN": TOKEN, "SYNC_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "sync_pipelines.golioth", "receiver", "--embedded", "--port", str(port),
                             "--with", sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 7, result.stdout + result.stderr  # the child reached the receiver (401: no token)
    assert TOKEN not in result.stdout + result.stderr
    without = subprocess.run([sys.executable, "-m", "sync_pipelines.golioth", "receiver", "--with", sys.executable, "-c",
                              "pass"], env={**env, "GOLIOTH_WEBHOOK_TOKEN": ""}, capture_output=True, text=True, timeout=120)
    assert without.returncode == 0 and "receiver not started: set GOLIOTH_WEBHOOK_TOKEN" in without.stdout


def test_the_sandbox_sender_can_deliver_after_every_evolve(golioth, database_url):
    import time

    golioth.add("acme")
    with Receiver(create_app(token=TOKEN, database_url=database_url)) as receiver:
        golioth.control("webhook", url=receiver.url, token=TOKEN, auto_deliver=True)
        golioth.control("emit", count=2, devices=2)
        golioth.sandbox.evolve()
        deadline = time.monotonic() + 20
        while _inbox(golioth.warehouse) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert _inbox(golioth.warehouse) >= 4 and golioth.vendor.delivered >= 4
