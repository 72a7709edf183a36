"""Companies, projects and RFIs per connection: cursors, no-op re-runs, deletions, rate budget."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from sync_pipelines_tests.procore.conftest import failure_text, meta

TABLES = ("procore_companies", "procore_projects", "procore_rfis")


def _assert_landed_once(procore, users):
    for table, ids in procore.expected(users).items():
        landed = procore.ids(table)
        assert sorted(landed) == sorted(ids), table  # every record, each once (ids are the key)


def _write_counters(procore) -> dict[str, tuple]:
    """Postgres' tuple counters of the Procore tables, once every backend has flushed them
    (closing the pool's connections flushes theirs; then wait until they stop moving)."""
    wh = procore.warehouse
    last, stable_since, deadline = None, time.monotonic(), time.monotonic() + 15
    while True:
        wh.engine.dispose()
        with wh.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            rows = conn.execute(sa.text(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE relname IN "
                "('procore_companies', 'procore_projects', 'procore_rfis', 'sync_state', 'sync_rejects')"
            )).all()
        current = {r[0]: tuple(r[1:]) for r in rows}
        if current != last:
            last, stable_since = current, time.monotonic()
        elif time.monotonic() - stable_since >= 1.5 or time.monotonic() > deadline:
            return current
        time.sleep(0.25)


def test_first_run_lands_everything_and_a_no_op_rerun_writes_nothing_one_call_per_list(procore):
    user = procore.connect()
    first = procore.sync(user)
    assert first.success, failure_text(first)
    _assert_landed_once(procore, [user])
    assert meta(first, "procore_rfis")["inserted"] == len(procore.expected([user])["procore_rfis"])

    calls_before = procore.api_calls()
    postgres = procore.warehouse.dialect == "postgresql"
    counters_before = _write_counters(procore) if postgres else None
    second = procore.sync(user)
    assert second.success, failure_text(second)
    for table in TABLES:
        m = meta(second, table)
        assert (m["inserted"], m["updated"], m["deleted"]) == (0, 0, 0), (table, m)
    calls = {k: procore.api_calls()[k] - calls_before.get(k, 0) for k in ("companies", "projects", "rfis")}
    companies = procore.user_companies(user)
    assert calls == {"companies": 1, "projects": len(companies), "rfis": len(procore.expected([user])["procore_projects"])}
    if postgres:
        assert _write_counters(procore) == counters_before


def test_incremental_picks_up_changes_and_full_marks_what_procore_no_longer_returns(procore):
    user = procore.connect()
    assert procore.sync(user).success
    projects = sorted(procore.expected([user])["procore_projects"])
    rfi = min(procore.expected([user])["procore_rfis"])
    procore.sandbox.clock.advance(minutes=5)
    procore.control("touch_rfi", id=rfi, subject="new subject")
    added = procore.control("add_rfi", project_id=projects[0])["id"]
    run = procore.sync(user)
    assert run.success
    assert (meta(run, "procore_rfis")["inserted"], meta(run, "procore_rfis")["updated"]) == (1, 1)
    assert {r["id"]: r["subject"] for r in procore.rows("procore_rfis")}[rfi] == "new subject"

    procore.control("delete_rfi", id=added)
    procore.control("delete_project", id=projects[-1])
    assert meta(procore.sync(user), "procore_rfis")["deleted"] == 0  # incremental cannot see deletions
    full = procore.sync(user, mode="full")
    assert full.success, failure_text(full)
    assert meta(full, "procore_projects")["deleted"] == 1 and meta(full, "procore_rfis")["deleted"] == 1
    deleted = {r["id"] for r in procore.rows("procore_rfis") if r["deleted_at"] is not None}
    assert added in deleted
    assert [p["id"] for p in procore.rows("procore_projects") if p["deleted_at"]] == [projects[-1]]


def test_a_spent_hourly_budget_ends_the_run_successfully_with_a_backlog_that_the_next_run_finishes(procore, monkeypatch):
    monkeypatch.setenv("PROCORE_RATE_LIMIT_MAX_WAIT", "1")  # the hourly reset is never waited for
    user = procore.connect()
    projects = procore.expected([user])["procore_projects"]
    procore.control("reset_rate_windows")
    procore.control("rate_limits", hourly=5)  # companies + projects + 1 RFI list, then 2 in reserve
    run = procore.sync(user)
    assert run.success, failure_text(run)
    rfis = meta(run, "procore_rfis")
    assert rfis["backlog"] == len(projects) - 1 and rfis["listings"] == 1
    assert "429" not in failure_text(run)
    assert procore.vendor.stats["api_calls"]["rfis"] == 1  # stopped before the call, not on a 429

    procore.control("reset_rate_windows")  # an hour later
    procore.control("rate_limits", hourly=3600)
    second = procore.sync(user)
    assert second.success
    assert meta(second, "procore_rfis")["backlog"] == 0
    _assert_landed_once(procore, [user])


def test_a_429_whose_reset_is_far_is_a_backlog_and_a_503_with_retry_after_is_waited_out(procore, monkeypatch):
    monkeypatch.setenv("PROCORE_RATE_LIMIT_MAX_WAIT", "1")
    user = procore.connect()
    procore.control("overload", times=1, retry_after=0.2)
    first = procore.sync(user)
    assert first.success, failure_text(first)
    _assert_landed_once(procore, [user])
    procore.control("reset_rate_windows")
    procore.control("rate_limits", hourly=2, spike=1000)  # the reserve is above what is left: no call at all
    spent = procore.sync(user)
    assert spent.success, failure_text(spent)
    assert meta(spent, "procore_rfis")["backlog"] >= 1


@pytest.mark.slow
def test_a_nearly_spent_spike_window_is_waited_out_before_any_429(procore):
    user = procore.connect()
    procore.control("reset_rate_windows")
    procore.control("rate_limits", spike=4)  # 10-second windows of 4 calls; the run needs 6
    run = procore.sync(user)
    assert run.success, failure_text(run)
    assert procore.vendor.stats["rate_limited"] == 0  # slowed down instead
    assert meta(run, "procore_rfis")["backlog"] == 0
    _assert_landed_once(procore, [user])


def test_procore_refuses_a_call_without_procore_company_id_and_the_client_always_sends_it(procore):
    import requests

    user = procore.connect()
    token = procore.store.get(user).access_token
    company = procore.user_companies(user)[0]
    answer = requests.get(f"{procore.sandbox.url('procore')}/api/rest/v1.0/projects", params={"company_id": company},
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 400 and answer.json()["message"] == "Missing Procore-Company-Id header!"
    assert procore.sync(user).success  # every projects/RFIs call of the client carries it


def test_an_outage_past_the_http_layers_patience_is_retried_as_a_step_with_backoff(procore):
    user = procore.connect()
    procore.control("overload", times=7, retry_after=0)  # the HTTP layer gives up after 6 attempts
    run = procore.sync(user)
    assert run.success, failure_text(run)
    assert [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    _assert_landed_once(procore, [user])


def test_errors_name_the_endpoint_the_status_and_the_user_never_a_token(procore):
    user = procore.connect()
    procore.sandbox.faults.add("status", vendor="procore", path="/rfis", status=400, times=None)
    run = procore.sync(user)
    assert not run.success
    text = failure_text(run)
    assert f"procore (user {user}) GET /procore/api/rest/v1.0/projects/" in text and "/rfis: HTTP 400" in text
    for token in procore.vendor.issued_tokens:
        assert token not in text


def test_a_bad_record_is_set_aside_the_rest_lands_and_it_lands_once_fixed(procore):
    user = procore.connect()
    procore.sandbox.faults.add("wrong_type", vendor="procore", path="/rfis$", field="updated_at", times=1)
    run = procore.sync(user)
    assert run.success, failure_text(run)
    [reject] = procore.warehouse.rejects("procore", "rfis")
    assert "unreadable rfis record" in reject["reason"]
    assert len(procore.ids("procore_rfis")) == len(procore.expected([user])["procore_rfis"]) - 1
    again = procore.sync(user)  # the listing kept its cursor: the record is read again and lands
    assert again.success
    assert procore.warehouse.rejects("procore", "rfis") == []
    _assert_landed_once(procore, [user])


def _deleted_projects(procore) -> set[int]:
    return {p["id"] for p in procore.rows("procore_projects") if p["deleted_at"] is not None}


def test_full_runs_of_two_users_of_one_company_mark_deleted_only_what_no_connection_lists(procore):
    users = procore.connect_many(4)
    a, b = [u for u in users if 8001 in procore.user_companies(u)][:2]  # both in company 8001
    p0, p1, p2, p3 = sorted(p for p, rec in procore.vendor.projects.items() if rec["company"]["id"] == 8001)
    procore.control("project_access", user_id=a, projects=[p0, p2, p3])  # Procore lists what a user may see
    procore.control("project_access", user_id=b, projects=[p1, p2, p3])
    for user, mode in ((a, "incremental"), (b, "incremental"), (a, "full"), (b, "full"), (a, "full")):
        run = procore.sync(user, mode=mode)
        assert run.success, failure_text(run)
        assert (meta(run, "procore_projects")["deleted"], meta(run, "procore_rfis")["deleted"]) == (0, 0), (user, mode)
    assert _deleted_projects(procore) == set()
    assert {r["id"] for r in procore.rows("procore_rfis") if r["deleted_at"] is not None} == set()
    assert sorted(procore.ids("procore_projects")) == [p0, p1, p2, p3]  # between them a and b see all
    expected_rfis = {r for r, rec in procore.vendor.rfis.items() if rec["project_id"] in (p0, p1, p2, p3)}
    assert sorted(procore.ids("procore_rfis")) == sorted(expected_rfis)

    procore.control("delete_project", id=p0)  # only a listed it
    procore.control("delete_project", id=p2)  # both listed it
    procore.control("project_access", user_id=a, projects=[p0, p2])  # a loses p3; b still sees it
    full_a = procore.sync(a, mode="full")
    assert full_a.success, failure_text(full_a)
    assert _deleted_projects(procore) == {p0}  # p2 and p3: b listed them and has not said otherwise
    full_b = procore.sync(b, mode="full")
    assert full_b.success, failure_text(full_b)
    assert _deleted_projects(procore) == {p0, p2}  # p2 is gone for every connection now; p3 is not
    rfis_of_p3 = [r for r in procore.rows("procore_rfis") if r["project_id"] == p3]
    assert rfis_of_p3 and all(r["deleted_at"] is None for r in rfis_of_p3)
