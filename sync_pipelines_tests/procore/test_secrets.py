"""No token, client secret or key in clear: canaries searched in tables, logs, metadata, events, errors."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from dagster import DagsterEventType, EventRecordsFilter

from sync_pipelines.procore import cli
from sync_pipelines_tests.procore.conftest import failure_text

CLIENT_SECRET_CANARY = "canary-client-secret-5d1e0c77"


def _all_table_text(warehouse) -> str:
    texts = []
    with warehouse.engine.connect() as conn:
        for name in sa.inspect(warehouse.engine).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{name}"')):
                texts.append(repr(tuple(row)))
    return "\n".join(texts)


def _event_log_text(instance) -> str:
    texts = []
    for event_type in (DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.STEP_FAILURE,
                       DagsterEventType.RUN_FAILURE, DagsterEventType.LOGS_CAPTURED):
        for record in instance.get_event_records(EventRecordsFilter(event_type=event_type)):
            texts.append(repr(record.event_log_entry))
    for run in instance.get_runs():
        texts += [repr(entry) for entry in instance.all_logs(run.run_id)]
        texts.append(repr(run.tags) + repr(run.run_config))
    return "\n".join(texts)


def test_no_secret_appears_in_clear_anywhere(procore, secret_key, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PROCORE_CLIENT_SECRET", CLIENT_SECRET_CANARY)
    procore.control("client_secret", value=CLIENT_SECRET_CANARY)
    users = [procore.connect(), procore.connect("7002")]
    procore.control("expire_after_calls", user_id=users[0], calls=3)  # a refresh mid-run
    results = [procore.sync(users[0]), procore.sync(users[1])]
    procore.control("spend_refresh", user_id=users[1])
    procore.control("expire_access", user_id=users[1])
    results.append(procore.sync(users[1]))  # fails: needs_reauth
    assert results[0].success and results[1].success and not results[2].success
    assert cli.main(["list"]) == 0

    canaries = [CLIENT_SECRET_CANARY, secret_key, *procore.vendor.issued_tokens]
    assert len(procore.vendor.issued_tokens) >= 6  # 2 connects + 1 refresh, a pair each
    stored = procore.store.get(users[0])
    assert stored.access_token in canaries and stored.refresh_token in canaries  # they are stored, encrypted
    printed = capsys.readouterr()
    places = {
        "tables": _all_table_text(procore.warehouse),
        "log lines": caplog.text + printed.out + printed.err,
        "run metadata and events": _event_log_text(procore.instance),
        "errors": "\n".join(failure_text(r) for r in results),
    }
    assert "needs re-authorization" in places["errors"]
    for where, text in places.items():
        for canary in canaries:
            assert canary not in text, f"a secret ({canary[:7]}...) appears in clear in {where}"
