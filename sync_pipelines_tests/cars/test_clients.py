"""The clients against the sandbox over HTTP (no database)."""

from __future__ import annotations

import logging

import pytest

from sync_pipelines.cars.kbchachacha_client import KBChallengeError
from sync_pipelines.cars.resources import EncarResource, KBChachachaResource
from sync_pipelines.redaction import redact


def test_encar_paging_stops_on_the_short_page(sandbox):
    client = EncarResource().get_client()
    pages = list(client.iter_pages(500))
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
        sandbox.vendors["kbchachacha"].control("challenge", {"times": 1})
        with pytest.raises(KBChallengeError) as info:
            client.car_status("1")
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in caplog.text


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
