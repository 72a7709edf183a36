"""The clients against the sandbox over HTTP (no database)."""

from __future__ import annotations

import logging

import pytest

from sync_pipelines.cars.kbchachacha_client import KBChallengeError
from sync_pipelines.cars.resources import EncarResource, KBChachachaResource
from sync_pipelines.kit import paginate
from sync_pipelines.redaction import redact


def test_encar_paging_stops_on_the_short_page(sandbox):
    client = EncarResource().get_client()
    pages = list(paginate(
        client.list_page, keys=lambda p: [i["Id"] for i in p.items], is_last=lambda p: p.last,
        max_pages=500, vendor="encar", endpoint="list",
    ))
    assert [len(p.items) for p in pages] == [50, 50, 20]
    assert pages[-1].last and pages[0].total == 120
    ids = [i["Id"] for p in pages for i in p.items]
    assert ids == sandbox.vendors["encar"].listed_ids()


def test_encar_detail_status(sandbox):
    encar = sandbox.vendors["encar"]
    client = EncarResource().get_client()
    a, b, c, d = encar.listed_ids()[:4]
    encar.sell(a, how="404")
    encar.sell(b, how="status")
    encar.reserve(c)
    assert [client.car_status(i).status for i in (a, b, c, d)] == ["sold", "sold", "reserved", "active"]


def test_kb_session_cookie_from_the_list_is_kept_for_the_json(sandbox):
    kb = sandbox.vendors["kbchachacha"]
    client = KBChachachaResource().get_client()
    first = kb.listed_ids()[0]
    assert client.car_status(first).status == "active"  # fetched a session first
    assert "cha-cid" in client.http.session.cookies
    requests_before = client.stats.requests
    kb.sell(first)
    assert client.car_status(first).status == "sold"
    assert client.stats.requests == requests_before + 1


def test_kb_cookie_from_env_is_used_and_never_shown(sandbox, monkeypatch, caplog):
    monkeypatch.setenv("KBCHACHACHA_COOKIE", "cha-cid=s3cr3t-session-value")
    client = KBChachachaResource().get_client()
    assert client.car_status(sandbox.vendors["kbchachacha"].listed_ids()[0]).status == "active"
    assert client.stats.requests == 1  # no list call needed: the env cookie is the session
    assert "s3cr3t-session-value" not in redact("cookie cha-cid=s3cr3t-session-value")
    with caplog.at_level(logging.DEBUG):
        # the per-car JSON and then the list of the session refresh answer a challenge
        sandbox.vendors["kbchachacha"].control("challenge", {"times": 2})
        with pytest.raises(KBChallengeError, match="list answered a challenge page too") as info:
            client.car_status("1")
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in caplog.text


def test_kb_expired_session_cookie_is_refreshed_once_for_the_per_car_json(sandbox, monkeypatch):
    kb = sandbox.vendors["kbchachacha"]
    monkeypatch.setenv("KBCHACHACHA_COOKIE", "cha-cid=stale-session")
    kb.control("expire_sessions", {"values": ["stale-session"]})
    client = KBChachachaResource().get_client()
    assert client.car_status(kb.listed_ids()[0]).status == "active"
    assert client.session_refreshes == 1
    assert client.http.session.cookies.get("cha-cid") not in (None, "stale-session")
    assert client.car_status(kb.listed_ids()[1]).status == "active" and client.session_refreshes == 1


def test_kb_per_car_challenge_twice_in_a_row_is_a_clear_error_not_sold(sandbox):
    kb = sandbox.vendors["kbchachacha"]
    client = KBChachachaResource().get_client()
    client.ensure_session()
    kb.control("challenge", {"times": 2, "on": "json"})
    with pytest.raises(KBChallengeError, match="again after a session refresh.*Not treating it as sold"):
        client.car_status(kb.listed_ids()[0])
    assert client.session_refreshes == 1


def test_kb_paging_stops_on_the_empty_page(sandbox):
    kb = sandbox.vendors["kbchachacha"]
    kb.control("add", {"count": 5})
    client = KBChachachaResource().get_client()
    pages = []
    for number in range(1, 50):
        page = client.list_page(number)
        pages.append(page)
        if page.last:
            break
    assert [len(p.cards) for p in pages] == [20, 20, 20, 5]
    assert [c.key for p in pages for c in p.cards] == kb.listed_ids()


def test_the_sandbox_refuses_malformed_list_requests_and_the_clients_send_well_formed_ones(sandbox):
    import requests

    encar_url, kb_url = sandbox.url("encar"), sandbox.url("kbchachacha")
    bare = requests.get(f"{encar_url}/search/car/list/general", params={"sr": "|ModifiedDate|0|50"}, timeout=5)
    assert bare.status_code == 400 and "missing query parameter(s) q, count" in bare.json()["message"]
    no_xhr = requests.get(f"{kb_url}/public/search/list.empty", params={"page": 1}, timeout=5)
    assert no_xhr.status_code == 400
    assert "X-Requested-With: XMLHttpRequest header and a sort parameter" in no_xhr.text
    no_sort = requests.get(
        f"{kb_url}/public/search/list.empty", params={"page": 1}, headers={"X-Requested-With": "XMLHttpRequest"},
        timeout=5,
    )
    assert no_sort.status_code == 400 and "a sort parameter" in no_sort.text

    # the clients' requests have the contract's shape, so the sandbox answers them
    assert len(EncarResource().get_client().list_page(1).items) == 50
    kb = KBChachachaResource().get_client()
    assert len(kb.list_page(1).cards) == 20
    kb.refresh_session()  # the session refresh asks the list the same way
    assert kb.car_status(sandbox.vendors["kbchachacha"].listed_ids()[0]).status == "active"


@pytest.mark.parametrize("status", [403, 503])
def test_kb_list_challenge_served_with_403_or_503_is_a_challenge_error_asked_once(sandbox, status):
    kb = sandbox.vendors["kbchachacha"]
    client = KBChachachaResource().get_client()
    kb.control("challenge", {"times": 1, "on": "list", "status": status})
    served = kb.requests_served
    with pytest.raises(KBChallengeError, match=f"HTTP {status} with a challenge page.*Not treating it as zero cars") as info:
        client.list_page(1)
    assert info.value.status == status
    # not an outage to retry, nor refused credentials: one call, no retry
    assert kb.requests_served - served == 1 and client.stats.retries == 0
    assert len(client.list_page(1).cards) == 20  # the challenge is over: the list reads again


@pytest.mark.parametrize("status", [403, 503])
def test_kb_per_car_challenge_served_with_403_or_503_refreshes_the_session_once(sandbox, status):
    kb = sandbox.vendors["kbchachacha"]
    client = KBChachachaResource().get_client()
    client.ensure_session()
    kb.control("challenge", {"times": 1, "on": "json", "status": status})
    assert client.car_status(kb.listed_ids()[0]).status == "active"
    assert client.session_refreshes == 1 and client.stats.retries == 0

    kb.control("challenge", {"times": 2, "on": "json", "status": status})
    served = kb.requests_served
    with pytest.raises(KBChallengeError, match="again after a session refresh.*Not treating it as sold"):
        client.car_status(kb.listed_ids()[1])
    assert kb.requests_served - served == 3  # per-car, the list of the refresh, per-car again
    assert client.stats.retries == 0


def test_kb_503_and_403_without_a_challenge_page_stay_an_outage_and_a_refusal(sandbox):
    from sync_pipelines.http_client import VendorAuthError

    client = KBChachachaResource().get_client()
    outage = sandbox.faults.add("status", vendor="kbchachacha", status=503, retry_after=0.05, times=3, path=r"list\.empty")
    assert len(client.list_page(1).cards) == 20  # waited out like any outage (Retry-After)
    assert client.stats.retries == 3
    # the shared retry loop alone: three 503s and the answer, no call of the client's own
    assert outage.hits == 3 and client.stats.requests == 4
    refusal = sandbox.faults.add("status", vendor="kbchachacha", status=403, times=None, path=r"list\.empty")
    with pytest.raises(VendorAuthError, match="HTTP 403"):
        client.list_page(2)
    assert refusal.hits == 1 and client.stats.requests == 5  # one refusal, asked once
    assert client.stats.retries == 3


def test_kb_503_without_a_challenge_page_gives_up_as_any_vendor_after_max_attempts(sandbox):
    from sync_pipelines.http_client import VendorHTTPError

    client = KBChachachaResource().get_client()
    attempts = client.retry.max_attempts
    outage = sandbox.faults.add("status", vendor="kbchachacha", status=503, retry_after=0.01, times=None,
                                path=r"list\.empty")
    with pytest.raises(VendorHTTPError, match=f"HTTP 503.*gave up after {attempts} attempts"):
        client.list_page(1)
    # as many requests as the error says, each wait but the last one's
    assert outage.hits == attempts and client.stats.requests == attempts
    assert client.stats.retries == attempts - 1


def test_kb_503_asking_a_wait_beyond_the_cap_fails_at_once_without_asking_again(sandbox):
    from sync_pipelines.http_client import VendorHTTPError

    client = KBChachachaResource().get_client()
    beyond = client.retry.max_wait + 100
    outage = sandbox.faults.add("status", vendor="kbchachacha", status=503, retry_after=beyond, times=None,
                                path=r"list\.empty")
    with pytest.raises(VendorHTTPError, match="more than the 300s a run waits") as info:
        client.list_page(1)
    assert info.value.retry_after == beyond
    assert outage.hits == 1 and client.stats.requests == 1 and client.stats.retries == 0


def test_kb_per_car_answer_about_another_car_is_malformed_not_on_sale(sandbox):
    from sync_pipelines.cars.models import RecordError

    kb = sandbox.vendors["kbchachacha"]
    client = KBChachachaResource().get_client()
    newest, other = kb.listed_ids()[0], kb.listed_ids()[5]
    kb.sell(other)
    assert client.car_status(other).status == "sold"
    kb.control("ignore_car_seq", {"on": True})  # answers the newest car whatever is asked
    assert client.car_status(newest).status == "active"  # its own carSeq: fine
    with pytest.raises(RecordError, match=f"per-car answer for carSeq {other} is about carSeq {newest}"):
        client.car_status(other)
