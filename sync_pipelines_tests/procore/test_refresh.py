"""Refresh that cannot lose a connection: single-use refresh tokens under the row lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from sync_pipelines.procore.connections import ACTIVE, NEEDS_REAUTH
from sync_pipelines.procore.schedules import sync_run_requests
from sync_pipelines_tests.procore.conftest import failure_text, meta


def _live_refresh_token(procore, user_id: str) -> str:
    [token] = [t for t, rec in procore.vendor.refresh_tokens.items() if rec["user_id"] == user_id and not rec["used"]]
    return token


def test_an_access_token_expiring_mid_run_is_refreshed_once_and_the_newest_pair_is_stored(procore):
    user = procore.connect()
    procore.control("expire_after_calls", user_id=user, calls=2)  # companies, projects, then 401
    run = procore.sync(user)
    assert run.success, failure_text(run)
    assert procore.vendor.stats["refresh_calls"] == 1
    assert meta(run, "procore_rfis")["token_refreshes"] == 1
    stored = procore.store.get(user)
    assert stored.refresh_token == _live_refresh_token(procore, user)  # the newest, unspent one
    assert stored.token_version == 2 and stored.status == ACTIVE
    assert procore.sync(user).success and procore.vendor.stats["refresh_calls"] == 1


def test_a_token_about_to_expire_is_refreshed_before_the_first_call(procore):
    user = procore.connect()
    procore.control("expire_access", user_id=user)
    with procore.warehouse.transaction() as tx:  # what a connection an hour and a half old looks like
        tx.execute("UPDATE procore_connections SET expires_at = :t", {"t": "2000-01-01 00:00:00"})
    run = procore.sync(user)
    assert run.success, failure_text(run)
    assert procore.vendor.stats["refresh_calls"] == 1
    assert procore.vendor.stats["unauthorized"] == 0  # no call spent on a 401 first


_REFRESHER = textwrap.dedent("""
    import json, sys
    from sync_pipelines.procore.resources import ProcoreResource
    from sync_pipelines.warehouse import Warehouse
    resource = ProcoreResource()
    store = resource.store(Warehouse.for_url(sys.argv[1]))
    stale = store.get(sys.argv[2]).token_version
    print("ready", flush=True)
    sys.stdin.readline()
    connection = store.refresh(sys.argv[2], stale, resource.oauth().refresh)
    print(json.dumps({"version": connection.token_version, "token": connection.access_token}))
""")


def test_two_processes_refreshing_one_connection_make_one_token_call(procore, database_url):
    user = procore.connect()
    procore.control("token_delay", seconds=1.0)  # the first call is still in flight when the second arrives
    env = {**os.environ}
    workers = [
        subprocess.Popen([sys.executable, "-c", _REFRESHER, database_url, user], env=env, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
    for worker in workers:  # both have read the same stale version; now both refresh
        worker.stdin.write("go\n")
        worker.stdin.flush()
    answers = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        answers.append(json.loads(out.strip().splitlines()[-1]))
    assert procore.vendor.stats["refresh_calls"] == 1
    assert answers[0] == answers[1] and answers[0]["version"] == 2  # the second used the first's token
    stored = procore.store.get(user)
    assert stored.status == ACTIVE and stored.refresh_token == _live_refresh_token(procore, user)


def test_a_spent_refresh_token_marks_needs_reauth_the_alert_names_the_user_and_nothing_retries(procore):
    user = procore.connect()
    procore.control("spend_refresh", user_id=user)
    procore.control("expire_access", user_id=user)
    run = procore.sync(user)
    assert not run.success
    text = failure_text(run)
    assert f"user {user} needs re-authorization" in text and "procore connect" in text
    assert procore.store.get(user).status == NEEDS_REAUTH
    assert run.dagster_run.tags["dagster/retry_on_asset_or_op_failure"] == "false"  # no run retry loop
    assert procore.vendor.stats["refresh_calls"] == 1

    again = procore.sync(user)  # launched by hand: fails at once, no token call
    assert not again.success and procore.vendor.stats["refresh_calls"] == 1
    requests = sync_run_requests(procore.instance, {user: NEEDS_REAUTH, "7002": ACTIVE}, procore.sandbox.clock.now())
    assert [r.partition_key for r in requests] == []  # 7002 has no partition; user is skipped


def test_a_refresh_whose_answer_is_lost_is_not_retried_blindly(procore):
    user = procore.connect()
    procore.control("expire_access", user_id=user)
    procore.control("lose_token_answers", times=1)
    run = procore.sync(user)
    assert not run.success
    assert "refresh answer lost" in failure_text(run)
    assert procore.vendor.stats["refresh_calls"] == 1  # one call, no retry of a spent token
    # the next run asks Procore once with the stored token; Procore had spent it: needs_reauth
    assert not procore.sync(user).success
    assert procore.vendor.stats["refresh_calls"] == 2
    assert procore.store.get(user).status == NEEDS_REAUTH


def test_the_failure_alert_names_the_user_and_how_to_reconnect(procore):
    from dagster import build_run_status_sensor_context

    from sync_pipelines.alerts import failure_text as alert_text

    user = procore.connect()
    procore.control("spend_refresh", user_id=user)
    procore.control("expire_access", user_id=user)
    run = procore.sync(user)
    context = build_run_status_sensor_context(
        sensor_name="sync_failure_alert_sensor", dagster_event=run.get_run_failure_event(),
        dagster_instance=procore.instance, dagster_run=run.dagster_run,
    ).for_run_failure()
    text = alert_text(context)
    assert f"user {user} needs re-authorization" in text and "python -m sync_pipelines procore connect" in text
