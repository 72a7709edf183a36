"""The JSON-RPC client against the sandboxed Odoo: login, keyset paging, fault mapping."""

from __future__ import annotations

import datetime as dt

import pytest

from sync_pipelines.odoo.client import (
    OdooAccessDeniedError,
    OdooClient,
    OdooError,
    OdooModelMissingError,
    OdooSessionExpiredError,
    keyset_domain,
)
from sync_pipelines.odoo.resources import OdooConfigError, OdooResource
from sync_pipelines.odoo.settings import INVOICES, PRODUCTS
from sync_pipelines.sandbox.vendors.odoo import API_KEY


@pytest.fixture
def client(sandbox):
    with OdooResource().get_client() as c:
        yield c


def test_login_and_keyset_paging_reads_every_record_once(client, sandbox):
    assert client.login() == 2
    seen = []
    for batch in client.iter_batches(INVOICES.model, INVOICES.fields, domain=list(INVOICES.domain), batch_size=4):
        assert len(batch) <= 4
        seen.extend((r["write_date"], r["id"]) for r in batch)
    assert seen == sorted(seen)
    assert len(seen) == len({i for _, i in seen})
    expected = client.search_count(INVOICES.model, list(INVOICES.domain))
    assert len(seen) == expected > 0
    record = next(r for b in client.iter_batches(INVOICES.model, INVOICES.fields, batch_size=100) for r in b)
    assert isinstance(record["partner_id"], list) or record["partner_id"] is False


def test_archived_products_only_with_active_test_false(client):
    visible = client.search_count(PRODUCTS.model, [])
    everything = client.search_count(PRODUCTS.model, [], context={"active_test": False})
    assert everything > visible


def test_wrong_api_key_is_a_clear_access_denied_without_the_key(sandbox):
    bad = OdooClient(url=sandbox.url("odoo"), db="sandbox", username="sync@example.com", api_key="wrong-key-123456")
    with pytest.raises(OdooAccessDeniedError) as err:
        bad.login()
    assert "access denied" in str(err.value).lower()
    assert "wrong-key-123456" not in str(err.value)


def test_access_denied_fault_maps_without_debug_or_key(client, sandbox):
    client.login()
    sandbox.vendors["odoo"].control("access_denied", {"on": True})
    with pytest.raises(OdooAccessDeniedError) as err:
        client.search_count(INVOICES.model, [])
    text = str(err.value)
    assert "access denied" in text.lower()
    assert API_KEY not in text
    assert "Traceback" not in text


def test_missing_model_and_other_faults(client):
    with pytest.raises(OdooModelMissingError, match="mrp.production"):
        client.search_count("mrp.production", [])
    with pytest.raises(OdooError, match="Invalid field"):
        client.search_read(INVOICES.model, [], ["no_such_field"], limit=1)


def test_a_missing_model_is_answered_and_recognised_as_real_odoo_does(client, sandbox):
    """Odoo 16-19 (odoo/service/model.py execute_cr) answer an unknown model with
    UserError "Object <model> doesn't exist", fault code 200: the sandbox answers that
    shape, and the client maps it, while another UserError stays a plain OdooError."""
    import requests

    body = requests.post(sandbox.url("odoo") + "/jsonrpc", timeout=5, json={
        "jsonrpc": "2.0", "method": "call", "id": 1, "params": {
            "service": "object", "method": "execute_kw",
            "args": ["sandbox", 2, API_KEY, "mrp.production", "search_count", [[]], {}]},
    }).json()
    error = body["error"]
    assert error["code"] == 200 and error["message"] == "Odoo Server Error"
    assert error["data"]["name"] == "odoo.exceptions.UserError"
    assert error["data"]["message"] == "Object mrp.production doesn't exist"
    with pytest.raises(OdooModelMissingError) as err:
        client.search_count("mrp.production", [])
    assert "'mrp.production' missing on database 'sandbox'" in str(err.value)
    assert "odoo.exceptions.UserError" in str(err.value) and "Traceback" not in str(err.value)

    # a business UserError (even one naming a model) is not "model missing"
    vendor = sandbox.vendors["odoo"]
    vendor.control("fault", {"name": "odoo.exceptions.UserError", "message": "Fiscal year locked", "times": 1})
    with pytest.raises(OdooError, match="Fiscal year locked") as err:
        client.search_count(INVOICES.model, [])
    assert not isinstance(err.value, OdooModelMissingError)
    vendor.control("fault", {"name": "odoo.exceptions.UserError", "message": "Object account.move is locked",
                             "times": 1})
    with pytest.raises(OdooError) as err:
        client.search_count(INVOICES.model, [])
    assert not isinstance(err.value, OdooModelMissingError)
    # the older shapes still mean "missing"
    vendor.control("fault", {"code": 404, "name": "werkzeug.exceptions.NotFound", "message": "404", "times": 1})
    with pytest.raises(OdooModelMissingError):
        client.search_count(INVOICES.model, [])


def test_missing_settings_name_the_variable(monkeypatch, sandbox):
    monkeypatch.delenv("ODOO_API_KEY")
    with pytest.raises(OdooConfigError, match="ODOO_API_KEY"):
        OdooResource().get_client()


def test_transient_503_is_retried(client, sandbox):
    sandbox.faults.add("status", vendor="odoo", status=503, retry_after=0, times=2, path="/jsonrpc")
    assert client.search_count(INVOICES.model, list(INVOICES.domain)) > 0
    assert client.stats.retries == 2


def test_wrong_type_fault_record_is_rejected_while_the_rest_lands(odoo):
    # skip the login call; the first search_read answer gets a text amount in one record
    odoo.sandbox.faults.add("wrong_type", vendor="odoo", path="/jsonrpc", skip=1, field="amount_total")
    run = odoo.sync(types="invoices")
    assert run.success
    meta = run.meta(INVOICES)
    assert meta["rejected"] == 1 and meta["inserted"] == meta["fetched"] - 1
    [reject] = odoo.rejects(INVOICES.entity)
    assert "amount_total must be a number" in reject["reason"]
    assert run.checks()[("odoo_invoices", "no_open_rejects")] is False
    # the next run re-reads the rejected record by id and lands it
    odoo.sync(types="invoices")
    assert odoo.rejects(INVOICES.entity) == []
    assert {r["id"] for r in odoo.rows(INVOICES.table)} == odoo.odoo_ids(INVOICES)


def test_session_expired_is_cured_by_one_relogin_else_a_clear_error(client, sandbox):
    vendor = sandbox.vendors["odoo"]
    expired = {"code": 100, "name": "odoo.http.SessionExpiredException", "message": "Session expired"}
    vendor.control("fault", {**expired, "times": 1})
    assert client.search_count(INVOICES.model, []) > 0
    vendor.control("fault", {**expired, "times": 2})
    with pytest.raises(OdooSessionExpiredError, match="session expired"):
        client.search_count(INVOICES.model, [])


def test_other_faults_carry_odoo_message(client, sandbox):
    sandbox.vendors["odoo"].control(
        "fault", {"name": "odoo.exceptions.UserError", "message": "Fiscal year locked", "times": 1}
    )
    with pytest.raises(OdooError, match="Fiscal year locked"):
        client.search_count(INVOICES.model, [])


def test_sandbox_controls_over_http(sandbox):
    import requests

    response = requests.post(f"{sandbox.base_url}/_sandbox/odoo/cancel_invoice", json={"id": 1}, timeout=5)
    assert response.status_code == 200 and response.json()["result"]["state"] == "cancel"


def test_json2_protocol_reads_the_same_records_and_maps_errors(sandbox, client):
    # the sandbox says it is Odoo 19, the first version serving JSON-2
    assert client.call("common", "version")["server_version_info"][0] == 19
    json2 = OdooResource(protocol="json2").get_client()
    domain = list(INVOICES.domain)
    assert json2.search_count(INVOICES.model, domain) == client.search_count(INVOICES.model, domain)
    paged = [r["id"] for b in json2.iter_batches(INVOICES.model, INVOICES.fields, domain=domain, batch_size=7) for r in b]
    assert paged == [r["id"] for b in client.iter_batches(INVOICES.model, INVOICES.fields, domain=domain) for r in b]
    assert json2.search_count(PRODUCTS.model, [], context={"active_test": False}) > json2.search_count(PRODUCTS.model, [])
    with pytest.raises(OdooModelMissingError):
        json2.search_count("mrp.production", [])
    with pytest.raises(OdooError, match="Invalid field"):
        json2.search_read(INVOICES.model, [], ["no_such_field"], limit=1)
    bad = OdooClient(url=sandbox.url("odoo"), db="sandbox", username="x", api_key="json2-wrong-key", protocol="json2")
    with pytest.raises(OdooAccessDeniedError) as err:
        bad.search_count(INVOICES.model, [])
    assert "json2-wrong-key" not in str(err.value) and "access denied" in str(err.value).lower()


@pytest.mark.parametrize("seed", range(6))
def test_keyset_paging_reads_each_record_once_when_many_share_a_second_in_non_id_order(client, sandbox, seed):
    """Odoo compares and orders write_date by its microsecond value but serves whole seconds:
    seconds holding up to several batches of records, written in an order unlike their ids,
    are read completely and without repeats, across every batch boundary."""
    import random

    vendor = sandbox.vendors["odoo"]
    rng = random.Random(seed)
    ids = sorted(vendor.records[PRODUCTS.model])
    rng.shuffle(ids)
    start = vendor.clock.now().replace(microsecond=0)
    groups, taken = [], 0
    for n in (rng.randint(1, 4), rng.randint(9, 15), rng.randint(0, 3), rng.randint(4, 8)):
        groups.append(ids[taken:taken + n])
        taken += n
    for offset, group in enumerate(groups):
        stamp = (start + dt.timedelta(seconds=offset)).strftime("%Y-%m-%d %H:%M:%S")
        micros = rng.sample(range(1_000_000), len(group))  # separate writes, in no id order
        if group:
            vendor.control("touch", {"model": PRODUCTS.model, "ids": group, "write_date": stamp, "microseconds": micros})
    context = PRODUCTS.context
    everything = {r["id"] for b in client.iter_batches(PRODUCTS.model, ["name"], context=context) for r in b}
    for batch_size in (1, 2, 3, 4, 5, 7):
        for after in (None, (start.strftime("%Y-%m-%d %H:%M:%S"), 0)):
            read = [r["id"] for b in client.iter_batches(
                PRODUCTS.model, ["name"], after=after, batch_size=batch_size, context=context) for r in b]
            expected = everything if after is None else set(ids[:taken])
            assert len(read) == len(set(read)), (batch_size, after)
            assert set(read) == expected, (batch_size, after)


def test_keyset_domain_is_at_whole_second_granularity():
    assert keyset_domain(None) == []
    assert keyset_domain(("2026-11-24 10:00:00", 0)) == [("write_date", ">=", "2026-11-24 10:00:00")]
    assert keyset_domain(("2026-11-24 10:00:59", 7)) == [
        "|", ("write_date", ">=", "2026-11-24 10:01:00"),
        "&", "&", ("write_date", ">=", "2026-11-24 10:00:59"), ("write_date", "<", "2026-11-24 10:01:00"),
        ("id", ">", 7),
    ]
