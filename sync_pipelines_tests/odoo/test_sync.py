"""Issue 4 acceptance, against the sandboxed Odoo, on SQLite and Postgres."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from sync_pipelines.odoo.settings import (
    INVOICES,
    MODEL_SPECS,
    PRODUCTS,
    PURCHASE_ORDER_LINES,
    PURCHASE_ORDERS,
    SOURCE,
)
from sync_pipelines.sandbox.vendors.odoo import API_KEY

OTHER_SPECS = [s for s in MODEL_SPECS if s is not PURCHASE_ORDER_LINES]


def test_initial_sync_lands_every_record_of_the_five_models_exactly_once(odoo):
    run = odoo.sync()  # no cursor yet: an incremental run reads everything
    assert run.success
    for spec in MODEL_SPECS:
        rows = odoo.rows(spec.table)
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids))
        assert set(ids) == odoo.odoo_ids(spec), spec.table
        meta = run.meta(spec)
        assert meta["inserted"] == len(ids) and meta["fetched"] == len(ids)
        assert meta["updated"] == meta["rejected"] == meta["deleted"] == 0
        assert odoo.warehouse.get_cursor(SOURCE, spec.entity)["write_date"] == max(
            r["write_date"] for r in odoo.vendor.records[spec.model].values() if r["id"] in set(ids)
        )
    # every move type and state is there (cancellations propagate), journal entries are not
    invoices = odoo.rows(INVOICES.table)
    assert {r["state"] for r in invoices} == {"draft", "posted", "cancel"}
    assert "entry" not in {r["move_type"] for r in invoices}
    assert len({r["move_type"] for r in invoices}) == 6
    assert not all(r["active"] for r in odoo.rows(PRODUCTS.table))  # archived products too
    line = odoo.rows(PURCHASE_ORDER_LINES.table)[0]
    assert line["order_id"] and line["product_name"] and line["qty_received"] is not None
    # a second run finds nothing new and writes nothing
    again = odoo.sync()
    for spec in MODEL_SPECS:
        meta = again.meta(spec)
        assert meta["inserted"] == meta["updated"] == 0


def test_qty_received_change_on_an_old_po_line_updates_only_that_row(odoo):
    odoo.sync()
    oldest = min(odoo.vendor.records["purchase.order.line"].values(), key=lambda r: (r["write_date"], r["id"]))
    new_qty = oldest["product_qty"] + 3
    before = {s.table: odoo.rows(s.table) for s in OTHER_SPECS}
    odoo.control("set_qty_received", line_id=oldest["id"], qty=new_qty)

    run = odoo.sync()
    lines = run.meta(PURCHASE_ORDER_LINES)
    assert (lines["updated"], lines["inserted"], lines["rejected"]) == (1, 0, 0)
    assert float(odoo.row(PURCHASE_ORDER_LINES.table, oldest["id"])["qty_received"]) == new_qty
    for spec in OTHER_SPECS:
        meta = run.meta(spec)
        assert meta["inserted"] == meta["updated"] == meta["deleted"] == 0, spec.table
        assert odoo.rows(spec.table) == before[spec.table]


def test_records_written_in_the_same_second_across_a_batch_boundary_are_all_synced(odoo):
    odoo.sync()
    ids = sorted(odoo.vendor.records["account.move"])[::7][:5]  # five invoices, one write, same second
    stamp = odoo.control("touch", model="account.move", ids=ids, values={"ref": "same-second"})
    run = odoo.sync(types="invoices", batch_size=2)
    meta = run.meta(INVOICES)
    assert meta["updated"] == 5 and meta["batches"] >= 3
    assert {r["id"] for r in odoo.rows(INVOICES.table, "ref = 'same-second'")} == set(ids)
    assert odoo.warehouse.get_cursor(SOURCE, INVOICES.entity) == {"write_date": stamp, "id": ids[-1]}


def test_three_batches_written_within_one_second_in_non_id_order_all_land_exactly_once(odoo):
    """Odoo keeps write_date with microseconds, compares domains with it and sorts by it, but
    serves whole seconds: 15 invoices written in one second (separate writes, in an order
    unlike their ids) with batches of 5 are each read once, with neighbours in the seconds
    before and after, and the cursor ends on the last second's highest id."""
    odoo.sync()
    ids = sorted(odoo.odoo_ids(INVOICES))
    same_second, before, after = ids[:15], ids[15:17], ids[17:19]
    now = odoo.sandbox.clock.now().replace(microsecond=0)
    second = (now + dt.timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    odoo.control("touch", model="account.move", ids=before, values={"ref": "before"},
                 write_date=now.strftime("%Y-%m-%d %H:%M:%S"), microseconds=[900_000, 100_000])
    odoo.control("touch", model="account.move", ids=same_second, values={"ref": "same second"},
                 write_date=second, microseconds=[999_000 - 61_000 * n for n in range(15)])  # newest id first
    odoo.control("touch", model="account.move", ids=after, values={"ref": "after"},
                 write_date=(now + dt.timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S"), microseconds=[5, 3])
    cursor = odoo.warehouse.get_cursor(SOURCE, INVOICES.entity)["write_date"]
    overlap = (dt.datetime.strptime(cursor, "%Y-%m-%d %H:%M:%S") - dt.timedelta(seconds=60)).strftime(
        "%Y-%m-%d %H:%M:%S")
    in_overlap = [i for i in ids if overlap <= odoo.vendor.records["account.move"][i]["write_date"] <= cursor]

    run = odoo.sync(types="invoices", batch_size=5)
    meta = run.meta(INVOICES)
    assert meta["updated"] == 19 and meta["inserted"] == meta["rejected"] == 0
    assert meta["fetched"] == 19 + len(in_overlap)  # nothing read twice
    assert meta["unchanged"] == len(in_overlap)
    assert {r["id"] for r in odoo.rows(INVOICES.table, "ref = 'same second'")} == set(same_second)
    assert {r["id"] for r in odoo.rows(INVOICES.table, "ref IN ('before', 'after')")} == set(before + after)
    last_second = (now + dt.timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S")
    assert odoo.warehouse.get_cursor(SOURCE, INVOICES.entity) == {"write_date": last_second, "id": max(after)}
    assert sorted(r["id"] for r in odoo.rows(INVOICES.table)) == sorted(odoo.odoo_ids(INVOICES))

    # the same from scratch (a full read), with the big second across batch boundaries
    run = odoo.sync(mode="full", types="invoices", batch_size=5)
    meta = run.meta(INVOICES)
    assert meta["fetched"] == len(odoo.odoo_ids(INVOICES)) == meta["unchanged"]
    assert meta["deleted"] == 0


def test_overlap_catches_a_lower_id_written_in_the_cursor_second_after_a_run(odoo):
    """Odoo stamps write_date at transaction start: a record can show up after the sync read
    a later id of the same second. The overlap re-read catches it."""
    odoo.sync()
    odoo.sandbox.clock.freeze()
    ids = sorted(odoo.vendor.records["account.move"])
    odoo.control("write", model="account.move", id=ids[-1], values={"ref": "first"})
    odoo.sync(types="invoices")
    odoo.control("write", model="account.move", id=ids[0], values={"ref": "late, same second, lower id"})
    run = odoo.sync(types="invoices")
    assert run.meta(INVOICES)["updated"] == 1
    assert odoo.row(INVOICES.table, ids[0])["ref"] == "late, same second, lower id"


def test_a_record_modified_while_the_run_pages_is_neither_skipped_nor_duplicated(odoo):
    first = min(odoo.vendor.records["account.move"].values(), key=lambda r: (r["write_date"], r["id"]))
    # after the 2nd search_read the first invoice (already read) is written again: with
    # offset paging every later record would shift one place and one would be skipped.
    odoo.control("bump_after_calls", model="account.move", id=first["id"], after=2, values={"amount_total": 999.0})
    run = odoo.sync(types="invoices", batch_size=5)
    assert run.success
    rows = odoo.rows(INVOICES.table)
    assert sorted(r["id"] for r in rows) == sorted(odoo.odoo_ids(INVOICES))
    assert float(odoo.row(INVOICES.table, first["id"])["amount_total"]) == 999.0
    meta = run.meta(INVOICES)
    assert meta["fetched"] == len(rows) + 1  # the modified one was read twice, stored once
    assert meta["inserted"] == len(rows) and meta["updated"] == 1


def test_cancelled_invoice_becomes_cancel_and_deleted_one_gets_deleted_at_after_full(odoo):
    odoo.sync()
    posted = [r["id"] for r in odoo.vendor.records["account.move"].values()
              if r["state"] == "posted" and r["move_type"] != "entry"]
    cancelled, deleted = posted[0], posted[1]
    odoo.control("cancel_invoice", id=cancelled)
    gone = dict(odoo.vendor.records["account.move"][deleted])
    odoo.control("delete", model="account.move", id=deleted)

    odoo.sync()
    assert odoo.row(INVOICES.table, cancelled)["state"] == "cancel"
    assert odoo.row(INVOICES.table, deleted)["deleted_at"] is None  # incremental cannot see deletions

    run = odoo.sync(mode="full")
    assert run.meta(INVOICES)["deleted"] == 1
    assert odoo.row(INVOICES.table, deleted)["deleted_at"] is not None
    assert odoo.rows(INVOICES.table, "deleted_at IS NOT NULL")[0]["id"] == deleted
    assert odoo.row(INVOICES.table, cancelled)["deleted_at"] is None
    assert sum(run.meta(s)["deleted"] for s in MODEL_SPECS) == 1

    # a record that reappears (restored from a backup, say) is live again
    odoo.vendor.records["account.move"][deleted] = gone
    odoo.control("write", model="account.move", id=deleted, values={})
    odoo.sync(types="invoices")
    assert odoo.row(INVOICES.table, deleted)["deleted_at"] is None


def test_access_denied_fault_fails_the_run_with_a_clear_message_and_no_secret(odoo):
    # login succeeds, then execute_kw answers odoo.exceptions.AccessDenied (HTTP 200, JSON-RPC
    # error whose debug traceback echoes the request, API key included)
    odoo.control("fault", name="odoo.exceptions.AccessDenied", message="Access Denied", times=1)
    run = odoo.sync(types="invoices", raise_on_error=False)
    assert not run.success
    text = run.failure_text()
    assert "access denied" in text.lower() and "odoo.exceptions.AccessDenied" in text
    assert API_KEY not in text
    assert "request: {" not in text  # Odoo's debug member is never shown
    assert odoo.rows(INVOICES.table) == []

    # and when the key is refused at login
    odoo.control("access_denied", on=True)
    run = odoo.sync(types="invoices", raise_on_error=False)
    assert not run.success
    text = run.failure_text()
    assert "access denied" in text.lower() and "ODOO_API_KEY" in text
    assert API_KEY not in text


def test_batch_size_and_delay_default_to_the_old_setups_environment_knobs(odoo, monkeypatch):
    """ODOO_INVOICE_BATCH_SIZE and ODOO_INVOICE_DELAY_MS set every asset's batch size and the
    pause between batches when the run config does not; run config wins over them."""
    from dagster import AssetKey

    from sync_pipelines.definitions import defs
    from sync_pipelines.odoo import assets
    from sync_pipelines.odoo.assets import run_config_for

    calls = []
    real_sync_model = assets.sync_entity

    def spy(spec, client, warehouse, **kwargs):
        calls.append((spec.entity, kwargs["batch_size"], kwargs["delay_seconds"]))
        return real_sync_model(spec, client, warehouse, **kwargs)

    monkeypatch.setattr(assets, "sync_entity", spy)
    monkeypatch.setenv("ODOO_INVOICE_BATCH_SIZE", "7")
    monkeypatch.setenv("ODOO_INVOICE_DELAY_MS", "20")
    before = odoo.control("stats")["search_read_calls"][PRODUCTS.model]
    result = defs.resolve_job_def("odoo_sync_job").execute_in_process(
        run_config=run_config_for([PRODUCTS], "incremental"),  # no batch_size / delay_ms
        instance=odoo.instance, asset_selection=[AssetKey(PRODUCTS.asset_name)],
    )
    assert result.success
    assert calls == [(PRODUCTS.entity, 7, 0.02)]
    products = len(odoo.odoo_ids(PRODUCTS))
    [materialization] = result.asset_materializations_for_node(PRODUCTS.asset_name)
    assert materialization.metadata["batches"].value == -(-products // 7)  # batches of 7
    assert odoo.control("stats")["search_read_calls"][PRODUCTS.model] - before == -(-products // 7)

    run = odoo.sync(types="products", mode="full", batch_size=50, delay_ms=0)
    assert calls[-1] == (PRODUCTS.entity, 50, 0.0)
    assert run.meta(PRODUCTS)["batches"] == 1


def test_a_batch_size_of_zero_or_less_is_refused_as_a_config_error_not_read_as_the_default(odoo, monkeypatch):
    monkeypatch.setenv("ODOO_INVOICE_BATCH_SIZE", "7")
    before = odoo.control("stats")["search_read_calls"][PRODUCTS.model]
    for bad in (0, -5):
        run = odoo.sync(types="products", batch_size=bad, raise_on_error=False)
        assert not run.success
        text = run.failure_text()
        assert f"ops.odoo_products.config.batch_size must be a positive number of records per search_read, got {bad}" in text
    assert odoo.control("stats")["search_read_calls"][PRODUCTS.model] == before  # refused before any read
    assert odoo.rows(PRODUCTS.table) == []
    run = odoo.sync(types="products", delay_ms=-1, raise_on_error=False)
    assert not run.success and "ops.odoo_products.config.delay_ms must be >= 0, got -1" in run.failure_text()


def test_an_outage_longer_than_the_http_retries_is_ridden_out_by_a_step_retry(odoo):
    # the client tries each call 6 times; 8 answers of 503 outlast that, the step retry does not
    odoo.sandbox.faults.add("status", vendor="odoo", status=503, retry_after=0, times=8)
    run = odoo.sync(types="products")
    assert run.success
    retried = [e for e in run.result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert [e.step_key for e in retried] == [PRODUCTS.asset_name]
    assert {r["id"] for r in odoo.rows(PRODUCTS.table)} == odoo.odoo_ids(PRODUCTS)
    assert run.meta(PRODUCTS)["inserted"] == len(odoo.odoo_ids(PRODUCTS))


def test_duplicate_name_and_malformed_records_go_to_rejects_and_the_check_fails(odoo):
    odoo.sync()
    posted = next(r for r in odoo.vendor.records["account.move"].values()
                  if r["state"] == "posted" and r["move_type"] != "entry")
    duplicate = odoo.control("duplicate_invoice_name", id=posted["id"])
    malformed = next(r["id"] for r in odoo.vendor.records["account.move"].values()
                     if r["id"] != posted["id"] and r["move_type"] != "entry")
    odoo.control("wrong_type", model="account.move", id=malformed, field="amount_total", value="12,50 EUR")
    fine = odoo.control("cancel_invoice", id=max(odoo.odoo_ids(INVOICES) - {duplicate, malformed}))["id"]

    run = odoo.sync(types="invoices")
    assert run.success  # the rest of the batch landed
    meta = run.meta(INVOICES)
    assert meta["rejected"] == 2 and meta["updated"] == 1
    assert odoo.row(INVOICES.table, fine)["state"] == "cancel"
    assert odoo.row(INVOICES.table, duplicate) is None
    reasons = {r["record_key"]: r["reason"] for r in odoo.rejects(INVOICES.entity)}
    assert "duplicate invoice name" in reasons[str(duplicate)] and str(posted["id"]) in reasons[str(duplicate)]
    assert "amount_total must be a number" in reasons[str(malformed)]
    checks = run.checks()
    assert checks[("odoo_invoices", "no_open_rejects")] is False
    assert checks[("odoo_invoices", "no_duplicate_invoice_names")] is True

    # fixed in Odoo: the next runs retry open rejects by id and clear them
    odoo.control("write", model="account.move", id=malformed, values={"amount_total": 12.5})
    odoo.control("delete", model="account.move", id=duplicate)
    run = odoo.sync(types="invoices")
    assert odoo.rejects(INVOICES.entity) == []
    assert float(odoo.row(INVOICES.table, malformed)["amount_total"]) == 12.5
    assert run.checks()[("odoo_invoices", "no_open_rejects")] is True


def test_a_malformed_write_date_never_becomes_the_cursor_and_a_batch_of_rejects_is_passed(odoo):
    odoo.sync()
    ids = sorted(odoo.odoo_ids(INVOICES))[:3]
    stamp = odoo.control("touch", model="account.move", ids=ids, values={"ref": "touched"})
    # the first search_read answer (after login) gives its first record write_date "not-a-number"
    odoo.sandbox.faults.add("wrong_type", vendor="odoo", path="/jsonrpc", skip=1, field="write_date")
    run = odoo.sync(types="invoices")
    assert run.success
    meta = run.meta(INVOICES)
    assert meta["rejected"] == 1 and meta["updated"] == 3
    [reject] = odoo.rejects(INVOICES.entity)
    assert "write_date" in reject["reason"]
    assert odoo.warehouse.get_cursor(SOURCE, INVOICES.entity) == {"write_date": stamp, "id": max(ids)}

    # the next run works from that cursor and lands the record (its real write_date is fine)
    run = odoo.sync(types="invoices")
    assert run.success and odoo.rejects(INVOICES.entity) == []
    assert {r["id"] for r in odoo.rows(INVOICES.table)} == odoo.odoo_ids(INVOICES)

    # a last batch made only of rejects (valid write_date) still moves the cursor past them
    odoo.sandbox.clock.advance(seconds=1)
    bad = odoo.control("wrong_type", model="account.move", id=ids[0], field="amount_total", value="12,50")
    run = odoo.sync(types="invoices", batch_size=1)
    assert run.meta(INVOICES)["rejected"] == 1
    assert odoo.warehouse.get_cursor(SOURCE, INVOICES.entity) == {"write_date": bad["write_date"], "id": ids[0]}

    # a cursor saved unusable by an older version is not fatal: the run reads from the start
    with odoo.warehouse.transaction() as tx:
        tx.set_cursor(SOURCE, INVOICES.entity, {"write_date": "not-a-number", "id": ids[0]})
    run = odoo.sync(types="invoices")
    assert run.success and run.meta(INVOICES)["fetched"] >= len(odoo.odoo_ids(INVOICES))


def test_an_invoice_taking_the_number_of_a_deleted_one_lands_in_the_same_run(odoo):
    """Odoo reuses a deleted invoice's number: the new invoice is not refused until midnight."""
    odoo.sync()
    old = next(r for r in odoo.vendor.records["account.move"].values()
               if r["state"] == "posted" and r["move_type"] != "entry")
    new_id = odoo.control("duplicate_invoice_name", id=old["id"])
    odoo.control("delete", model="account.move", id=old["id"])

    run = odoo.sync(types="invoices")  # incremental: no full read to notice the delete
    assert run.success
    assert odoo.row(INVOICES.table, new_id)["name"] == old["name"]
    assert odoo.row(INVOICES.table, old["id"])["deleted_at"] is not None
    assert odoo.rejects(INVOICES.entity) == []
    meta = run.meta(INVOICES)
    assert meta["deleted"] == 1 and meta["inserted"] == 1
    checks = run.checks()
    assert checks[("odoo_invoices", "no_open_rejects")] is True
    assert checks[("odoo_invoices", "no_duplicate_invoice_names")] is True

    # a holder that still exists keeps its name: the newcomer waits in sync_rejects
    holder = next(r for r in odoo.vendor.records["account.move"].values()
                  if r["state"] == "posted" and r["move_type"] != "entry" and r["id"] != new_id)
    refused = odoo.control("duplicate_invoice_name", id=holder["id"])
    run = odoo.sync(types="invoices")
    assert odoo.row(INVOICES.table, refused) is None and odoo.row(INVOICES.table, holder["id"])["deleted_at"] is None
    assert [r["record_key"] for r in odoo.rejects(INVOICES.entity)] == [str(refused)]


def _posted_invoices(odoo, n: int) -> list[dict]:
    """Copies (as synced) of the first n posted invoices."""
    return [dict(r) for r in odoo.vendor.records["account.move"].values()
            if r["state"] == "posted" and r["move_type"] != "entry"][:n]


def test_a_stored_invoice_coming_back_keeps_its_name_against_a_newer_duplicate(odoo):
    """A synced; B created in Odoo with A's number; then A modified: B and A land in one batch,
    B first. A keeps its name (it was not renamed), B waits in sync_rejects, the run succeeds."""
    odoo.sync()
    [a] = _posted_invoices(odoo, 1)
    b = odoo.control("duplicate_invoice_name", id=a["id"])
    odoo.sandbox.clock.advance(seconds=1)
    odoo.control("write", model="account.move", id=a["id"], values={"ref": "A changed"})

    run = odoo.sync(types="invoices")
    assert run.success
    meta = run.meta(INVOICES)
    assert (meta["updated"], meta["inserted"], meta["rejected"]) == (1, 0, 1)
    row = odoo.row(INVOICES.table, a["id"])
    assert row["name"] == a["name"] and row["ref"] == "A changed"
    assert odoo.row(INVOICES.table, b) is None
    [reject] = odoo.rejects(INVOICES.entity)
    assert reject["record_key"] == str(b) and f"invoice id {a['id']}" in reject["reason"]
    assert run.checks()[("odoo_invoices", "no_duplicate_invoice_names")] is True
    # the cursor moved on: the next run is a normal one (B's reject retried, still refused)
    again = odoo.sync(types="invoices")
    assert again.success and again.meta(INVOICES)["updated"] == 0
    assert [r["record_key"] for r in odoo.rejects(INVOICES.entity)] == [str(b)]


def test_a_name_given_up_by_a_rename_is_taken_in_the_same_batch_in_either_order(odoo):
    odoo.sync()
    d, g = _same_kind_pair(odoo)
    a, c = [r for r in _posted_invoices(odoo, 4) if r["id"] not in (d["id"], g["id"])][:2]
    # 1. A renamed first, then B created with A's old number: [A, B]
    odoo.control("write", model="account.move", id=a["id"], values={"name": "INV/RENAMED/00001"})
    odoo.sandbox.clock.advance(seconds=1)
    b = odoo.control("duplicate_invoice_name", id=a["id"])
    odoo.control("write", model="account.move", id=b, values={"name": a["name"]})
    # 2. E created with C's number first, C renamed after: [E, C] (E inserted before C's update)
    odoo.sandbox.clock.advance(seconds=1)
    e = odoo.control("duplicate_invoice_name", id=c["id"])
    odoo.sandbox.clock.advance(seconds=1)
    odoo.control("write", model="account.move", id=c["id"], values={"name": "INV/RENAMED/00002"})
    # 3. D and G (same company and type) swap numbers
    odoo.control("write", model="account.move", id=d["id"], values={"name": g["name"]})
    odoo.control("write", model="account.move", id=g["id"], values={"name": d["name"]})

    run = odoo.sync(types="invoices")
    assert run.success
    assert odoo.rejects(INVOICES.entity) == []
    names = {r["id"]: r["name"] for r in odoo.rows(INVOICES.table)}
    assert names[a["id"]] == "INV/RENAMED/00001" and names[b] == a["name"]
    assert names[c["id"]] == "INV/RENAMED/00002" and names[e] == c["name"]
    assert (names[d["id"]], names[g["id"]]) == (g["name"], d["name"])
    meta = run.meta(INVOICES)
    assert (meta["inserted"], meta["updated"], meta["rejected"]) == (2, 4, 0)
    assert run.checks()[("odoo_invoices", "no_duplicate_invoice_names")] is True


def test_a_renamed_invoice_refused_its_new_name_keeps_its_old_one(odoo):
    """A renamed to a number G still holds, and B takes A's old number: A is refused its new
    name, so it still holds the old one and B is refused too; nothing fails."""
    odoo.sync()
    a, g = _same_kind_pair(odoo)
    b = odoo.control("duplicate_invoice_name", id=a["id"])
    odoo.sandbox.clock.advance(seconds=1)
    odoo.control("write", model="account.move", id=a["id"], values={"name": g["name"]})

    run = odoo.sync(types="invoices")
    assert run.success
    assert {r["record_key"] for r in odoo.rejects(INVOICES.entity)} == {str(a["id"]), str(b)}
    assert odoo.row(INVOICES.table, a["id"])["name"] == a["name"]
    assert odoo.row(INVOICES.table, g["id"])["name"] == g["name"]
    assert odoo.row(INVOICES.table, b) is None


def _in_overlap_window(odoo, spec=INVOICES) -> set[int]:
    """Ids an incremental run re-reads in its 60 s overlap before the saved cursor."""
    cursor = odoo.warehouse.get_cursor(SOURCE, spec.entity)["write_date"]
    start = (dt.datetime.strptime(cursor, "%Y-%m-%d %H:%M:%S") - dt.timedelta(seconds=60)).strftime(
        "%Y-%m-%d %H:%M:%S")
    return {r["id"] for r in odoo.vendor.records[spec.model].values()
            if r["id"] in odoo.odoo_ids(spec) and r["write_date"] >= start}


def test_an_invoice_refused_a_name_its_holder_gives_up_in_a_later_batch_lands_in_the_same_run(odoo):
    """B takes A's number and is written (so read) first; A is renamed a second later and
    read in a later batch. B is refused while A holds the name, then read again by id once
    the run is through: it lands in this run, no reject is left, the checks pass."""
    odoo.sync()
    [a] = _posted_invoices(odoo, 1)
    window = _in_overlap_window(odoo)
    b = odoo.control("duplicate_invoice_name", id=a["id"])
    odoo.sandbox.clock.advance(seconds=1)
    odoo.control("write", model="account.move", id=a["id"], values={"name": "INV/RENAMED/00009"})

    run = odoo.sync(types="invoices", batch_size=1)
    assert run.success
    assert odoo.rejects(INVOICES.entity) == []
    assert odoo.row(INVOICES.table, b)["name"] == a["name"]
    assert odoo.row(INVOICES.table, a["id"])["name"] == "INV/RENAMED/00009"
    meta = run.meta(INVOICES)
    assert (meta["inserted"], meta["updated"], meta["rejected"]) == (1, 1, 0)
    # B is one record, read twice (refused, then by id) but counted once
    assert meta["fetched"] == len(window) + 2 and meta["unchanged"] == len(window - {a["id"]})
    checks = run.checks()
    assert checks[("odoo_invoices", "no_open_rejects")] is True
    assert checks[("odoo_invoices", "no_duplicate_invoice_names")] is True


def test_a_reject_retried_before_its_holder_is_renamed_in_the_same_run_lands_too(odoo):
    """B is refused in one run (A holds the number); then A is renamed in Odoo. The next run
    retries B first (A still holds the name in the table), re-reads it unchanged in the
    overlap (not processed again), lands A's rename, and then lands B."""
    odoo.sync()
    [a] = _posted_invoices(odoo, 1)
    b = odoo.control("duplicate_invoice_name", id=a["id"])
    first = odoo.sync(types="invoices")
    assert [r["record_key"] for r in odoo.rejects(INVOICES.entity)] == [str(b)]
    assert first.meta(INVOICES)["rejected"] == 1
    odoo.sandbox.clock.advance(seconds=1)
    odoo.control("write", model="account.move", id=a["id"], values={"name": "INV/RENAMED/00010"})

    run = odoo.sync(types="invoices")
    assert run.success and odoo.rejects(INVOICES.entity) == []
    assert odoo.row(INVOICES.table, b)["name"] == a["name"]
    meta = run.meta(INVOICES)
    assert (meta["inserted"], meta["updated"], meta["rejected"]) == (1, 1, 0)
    assert run.checks()[("odoo_invoices", "no_open_rejects")] is True


def test_an_open_reject_inside_the_overlap_window_is_counted_once(odoo):
    """The reject retry and the overlap re-read both read a rejected record: it is one
    record, counted once in fetched and rejected (it was 2 and 2), and processed once."""
    odoo.sync()
    ids = sorted(odoo.odoo_ids(INVOICES))
    seeded_window = _in_overlap_window(odoo)
    assert not seeded_window & {ids[0], ids[1]}
    odoo.control("write", model="account.move", id=ids[1], values={"ref": "in the window"})
    odoo.sandbox.clock.advance(seconds=1)
    odoo.control("wrong_type", model="account.move", id=ids[0], field="amount_total", value="12,50 EUR")
    run = odoo.sync(types="invoices")
    meta = run.meta(INVOICES)
    assert (meta["fetched"], meta["updated"], meta["rejected"]) == (len(seeded_window) + 2, 1, 1)
    assert _in_overlap_window(odoo) == {ids[0], ids[1]}

    # still malformed: read by the retry and again, unchanged, by the overlap
    run = odoo.sync(types="invoices")
    meta = run.meta(INVOICES)
    assert meta["retried_rejects"] == 1
    assert (meta["fetched"], meta["rejected"], meta["unchanged"]) == (2, 1, 1)
    assert meta["inserted"] == meta["updated"] == 0
    [reject] = odoo.rejects(INVOICES.entity)
    assert reject["record_key"] == str(ids[0])
    assert run.meta(INVOICES)["reject_samples"].count(f"id {ids[0]}:") == 1

    # fixed in Odoo: the retry lands it, the overlap's read of the same version is not counted
    odoo.sandbox.clock.advance(seconds=1)
    odoo.control("write", model="account.move", id=ids[0], values={"amount_total": 12.5})
    run = odoo.sync(types="invoices")
    meta = run.meta(INVOICES)
    assert (meta["fetched"], meta["updated"], meta["unchanged"], meta["rejected"]) == (2, 1, 1, 0)
    assert odoo.rejects(INVOICES.entity) == []
    assert float(odoo.row(INVOICES.table, ids[0])["amount_total"]) == 12.5


def test_only_records_the_run_read_by_id_are_fingerprinted_in_its_batches(odoo, monkeypatch):
    """The overlap read compares a record with the version the reject retry read only when
    the retry read it: the other records of the batch are not serialised for nothing."""
    from sync_pipelines.odoo import sync as odoo_sync

    odoo.sync()
    ids = sorted(odoo.odoo_ids(INVOICES))
    odoo.control("write", model="account.move", id=ids[1], values={"ref": "in the window"})
    odoo.sandbox.clock.advance(seconds=1)
    odoo.control("wrong_type", model="account.move", id=ids[0], field="amount_total", value="12,50 EUR")
    odoo.sync(types="invoices")
    window = _in_overlap_window(odoo)
    assert {ids[0], ids[1]} <= window and [r["record_key"] for r in odoo.rejects(INVOICES.entity)] == [str(ids[0])]

    fingerprinted: list[int] = []
    real = odoo_sync._fingerprint

    def recording(record):
        fingerprinted.append(record.get("id") if isinstance(record, dict) else None)
        return real(record)

    monkeypatch.setattr(odoo_sync, "_fingerprint", recording)
    run = odoo.sync(types="invoices")  # retries ids[0] by id, then re-reads the window
    meta = run.meta(INVOICES)
    assert (meta["retried_rejects"], meta["fetched"], meta["rejected"], meta["unchanged"]) == (1, 2, 1, 1)
    assert fingerprinted and set(fingerprinted) == {ids[0]}


def _same_kind_pair(odoo) -> tuple[dict, dict]:
    """Copies of the last two posted invoices of one company and move type."""
    posted = _posted_invoices(odoo, 1000)
    for first in reversed(posted):
        for second in reversed(posted):
            if first["id"] != second["id"] and (first["company_id"], first["move_type"]) == (
                second["company_id"], second["move_type"]
            ):
                return first, second
    raise AssertionError("no two posted invoices of one kind in the sandbox")


def test_archive_job_moves_exactly_the_rows_past_retention_and_a_rerun_moves_none(odoo):
    odoo.sync()
    now = odoo.sandbox.clock.now()
    posted = [r["id"] for r in odoo.vendor.records["account.move"].values()
              if r["state"] == "posted" and r["move_type"] != "entry"]
    odoo.control("cancel_invoice", id=posted[0])
    odoo.control("delete", model="account.move", id=posted[1])
    odoo.sync(mode="full")

    def due(cutoff: dt.datetime) -> dict[str, set[int]]:
        out = {}
        for spec in MODEL_SPECS:
            rows = odoo.rows(spec.table)
            out[spec.table] = {
                r["id"] for r in rows
                if (r["deleted_at"] is not None and _utc(r["deleted_at"]) < cutoff)
                or (spec.cancellable and r["state"] == "cancel" and _utc(r["write_date"]) < cutoff)
                # lines go with their order (MODEL_SPECS lists orders first)
                or (spec is PURCHASE_ORDER_LINES and r["order_id"] in out[PURCHASE_ORDERS.table])
            }
        return out

    # 10 days on: the seeded cancellations (a month old) are due, today's are not
    as_of = now + dt.timedelta(days=10)
    expected = due(as_of - dt.timedelta(days=30))
    assert expected[INVOICES.table] and posted[0] not in expected[INVOICES.table]
    assert expected[PURCHASE_ORDERS.table] and expected[PURCHASE_ORDER_LINES.table]
    moved = odoo.archive(as_of=as_of.isoformat(), retention_days=30)
    assert moved == {table: len(ids) for table, ids in expected.items()}
    for table, ids in expected.items():
        archived = {r["id"] for r in odoo.rows(f"{table}_archive")}
        assert archived == ids, table
        assert not ids & {r["id"] for r in odoo.rows(table)}
    assert odoo.archive(as_of=as_of.isoformat(), retention_days=30) == {
        spec.table: 0 for spec in MODEL_SPECS
    }

    # a full sync does not bring unchanged archived (cancelled) records back
    live_before = len(odoo.rows(INVOICES.table))
    run = odoo.sync(mode="full", types="invoices")
    assert run.meta(INVOICES)["skipped_archived"] == len(expected[INVOICES.table])
    assert len(odoo.rows(INVOICES.table)) == live_before

    # 31 days on: today's cancelled and deleted invoices are due too
    later = now + dt.timedelta(days=31)
    moved = odoo.archive(as_of=later.isoformat())
    assert moved[INVOICES.table] == 2
    archived = {r["id"] for r in odoo.rows(f"{INVOICES.table}_archive")}
    assert {posted[0], posted[1]} <= archived
    assert odoo.archive(as_of=later.isoformat())[INVOICES.table] == 0


def _refuse_inserts(odoo, table: str, on: bool) -> None:
    """A trigger that makes every insert into ``table`` fail (a full disk, say), or drops it."""
    with odoo.warehouse.engine.begin() as conn:
        if odoo.warehouse.dialect == "postgresql":
            if on:
                conn.execute(sa.text(
                    "CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused by test' USING ERRCODE = 'check_violation'; END $$"))
                conn.execute(sa.text(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
                                     "FOR EACH ROW EXECUTE FUNCTION refuse_insert()"))
            else:
                conn.execute(sa.text(f"DROP TRIGGER refuse ON {table}"))
                conn.execute(sa.text("DROP FUNCTION refuse_insert()"))
        elif on:
            conn.execute(sa.text(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
                                 "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"))
        else:
            conn.execute(sa.text("DROP TRIGGER refuse"))


def test_the_archive_job_moves_every_table_in_one_transaction(odoo):
    """Invoices and purchase orders are moved before their lines in the same run: when
    archiving the lines fails, nothing of the run is moved (no order archived with its lines
    still live), and the next run moves it all."""
    from sync_pipelines.definitions import defs

    odoo.sync()
    as_of = (odoo.sandbox.clock.now() + dt.timedelta(days=40)).isoformat()
    live_before = {spec.table: {r["id"] for r in odoo.rows(spec.table)} for spec in MODEL_SPECS}
    _refuse_inserts(odoo, f"{PURCHASE_ORDER_LINES.table}_archive", on=True)
    result = defs.resolve_job_def("odoo_archive_job").execute_in_process(
        run_config={"ops": {"odoo_archive_rows": {"config": {"as_of": as_of}}}},
        instance=odoo.instance, raise_on_error=False,
    )
    assert not result.success
    for spec in MODEL_SPECS:
        assert {r["id"] for r in odoo.rows(spec.table)} == live_before[spec.table], spec.table
        assert odoo.rows(spec.archive_table) == [], spec.table

    _refuse_inserts(odoo, f"{PURCHASE_ORDER_LINES.table}_archive", on=False)
    moved = odoo.archive(as_of=as_of)
    assert moved[INVOICES.table] and moved[PURCHASE_ORDERS.table] and moved[PURCHASE_ORDER_LINES.table]
    for spec in MODEL_SPECS:
        archived = {r["id"] for r in odoo.rows(spec.archive_table)}
        assert len(archived) == moved[spec.table], spec.table
        assert archived | {r["id"] for r in odoo.rows(spec.table)} == live_before[spec.table], spec.table
    assert odoo.archive(as_of=as_of) == {spec.table: 0 for spec in MODEL_SPECS}


def _cancelled_orders_with_their_lines(odoo) -> tuple[list[int], dict[int, set[int]]]:
    """The sandbox's cancelled purchase order ids, and each one's line ids."""
    cancelled = sorted(r["id"] for r in odoo.vendor.records["purchase.order"].values() if r["state"] == "cancel")
    lines_of = {
        order: {r["id"] for r in odoo.vendor.records["purchase.order.line"].values() if r["order_id"][0] == order}
        for order in cancelled
    }
    return cancelled, lines_of


def test_purchase_order_lines_leave_and_come_back_with_their_order(odoo):
    """A purchase order line never outlives its order in the live table: the archive job moves
    the lines of an archived order (cancelled past retention, whatever the lines' own dates),
    and when the order is live again its lines come back too."""
    odoo.sync()
    now = odoo.sandbox.clock.now()
    cancelled, lines_of = _cancelled_orders_with_their_lines(odoo)
    assert cancelled and all(lines_of.values())
    moved = odoo.archive(as_of=(now + dt.timedelta(days=40)).isoformat())
    assert moved[PURCHASE_ORDERS.table] == len(cancelled)
    assert moved[PURCHASE_ORDER_LINES.table] == sum(len(ids) for ids in lines_of.values())
    archived_lines = {r["id"] for r in odoo.rows(f"{PURCHASE_ORDER_LINES.table}_archive")}
    assert archived_lines == set().union(*lines_of.values())
    live_orders = {r["id"] for r in odoo.rows(PURCHASE_ORDERS.table)}
    assert all(r["order_id"] in live_orders for r in odoo.rows(PURCHASE_ORDER_LINES.table))
    assert odoo.archive(as_of=(now + dt.timedelta(days=40)).isoformat())[PURCHASE_ORDER_LINES.table] == 0

    # a full read skips the unchanged archived orders and lines
    run = odoo.sync(mode="full", types="purchases")
    assert run.meta(PURCHASE_ORDER_LINES)["skipped_archived"] == len(archived_lines)
    assert run.meta(PURCHASE_ORDER_LINES)["deleted"] == 0

    # the first order is set back to draft in Odoo: it is live again, and so are its lines
    # (unchanged in Odoo themselves) on the next full read
    back = cancelled[0]
    odoo.control("write", model="purchase.order", id=back, values={"state": "draft"})
    run = odoo.sync(mode="full", types="purchases")
    assert odoo.row(PURCHASE_ORDERS.table, back)["state"] == "draft"
    assert {r["id"] for r in odoo.rows(PURCHASE_ORDER_LINES.table, "order_id = :o", o=back)} == lines_of[back]
    assert not lines_of[back] & {r["id"] for r in odoo.rows(f"{PURCHASE_ORDER_LINES.table}_archive")}
    assert run.meta(PURCHASE_ORDER_LINES)["skipped_archived"] == len(archived_lines - lines_of[back])
    live_orders = {r["id"] for r in odoo.rows(PURCHASE_ORDERS.table)}
    assert all(r["order_id"] in live_orders for r in odoo.rows(PURCHASE_ORDER_LINES.table))


def test_lines_archived_with_their_order_come_back_on_the_incremental_run_that_brings_the_order_back(odoo):
    """The order is set back to draft in Odoo; its lines are unchanged there, so no
    incremental read returns them: the lines sync re-reads the archived lines of live orders
    by id and brings them back in the same run. A line Odoo deleted meanwhile is marked
    deleted in the archive (and asked about only once)."""
    odoo.sync()
    now = odoo.sandbox.clock.now()
    cancelled = sorted(r["id"] for r in odoo.vendor.records["purchase.order"].values() if r["state"] == "cancel")
    lines_of = {
        order: sorted(r["id"] for r in odoo.vendor.records["purchase.order.line"].values() if r["order_id"][0] == order)
        for order in cancelled
    }
    back = next(order for order in cancelled if len(lines_of[order]) >= 2)
    odoo.archive(as_of=(now + dt.timedelta(days=40)).isoformat())
    archived_lines = {r["id"] for r in odoo.rows(f"{PURCHASE_ORDER_LINES.table}_archive")}
    assert set(lines_of[back]) <= archived_lines

    odoo.sandbox.clock.advance(seconds=1)
    deleted_line, *kept_lines = lines_of[back]
    odoo.control("delete", model="purchase.order.line", id=deleted_line)
    odoo.control("write", model="purchase.order", id=back, values={"state": "draft"})
    run = odoo.sync(types="purchases")  # incremental
    assert run.success
    assert odoo.row(PURCHASE_ORDERS.table, back)["state"] == "draft"
    assert {r["id"] for r in odoo.rows(PURCHASE_ORDER_LINES.table, "order_id = :o", o=back)} == set(kept_lines)
    still_archived = {r["id"]: r for r in odoo.rows(f"{PURCHASE_ORDER_LINES.table}_archive")}
    assert set(still_archived) == archived_lines - set(kept_lines)
    assert still_archived[deleted_line]["deleted_at"] is not None
    meta = run.meta(PURCHASE_ORDER_LINES)
    assert (meta["inserted"], meta["deleted_archived"], meta["retried_rejects"]) == (len(kept_lines), 1, 0)
    live_orders = {r["id"] for r in odoo.rows(PURCHASE_ORDERS.table)}
    assert all(r["order_id"] in live_orders for r in odoo.rows(PURCHASE_ORDER_LINES.table))

    # the next run asks about nothing again: the deleted line is marked, the others' orders are archived
    before = odoo.control("stats")["search_read_calls"][PURCHASE_ORDER_LINES.model]
    run = odoo.sync(types="purchases")
    meta = run.meta(PURCHASE_ORDER_LINES)
    assert meta["inserted"] == meta["deleted_archived"] == 0
    assert odoo.control("stats")["search_read_calls"][PURCHASE_ORDER_LINES.model] - before == meta["batches"]


def _archive_orders_with_lines(odoo) -> tuple[int, set[int]]:
    """Sync, archive the cancelled purchase orders with their lines; returns one archived
    order with lines, and its line ids."""
    odoo.sync()
    now = odoo.sandbox.clock.now()
    cancelled, lines_of = _cancelled_orders_with_their_lines(odoo)
    back = next(order for order in cancelled if lines_of[order])
    odoo.archive(as_of=(now + dt.timedelta(days=40)).isoformat())
    assert lines_of[back] <= {r["id"] for r in odoo.rows(PURCHASE_ORDER_LINES.archive_table)}
    return back, lines_of[back]


def test_lines_come_back_on_a_lines_run_after_an_orders_only_run_brought_their_order_back(odoo):
    """The lines look at the orders synced since their own last look, not only in this run:
    an order brought back by a run of the orders alone brings its lines back on the next
    run of the lines."""
    back, lines = _archive_orders_with_lines(odoo)
    odoo.sandbox.clock.advance(seconds=1)
    odoo.control("write", model="purchase.order", id=back, values={"state": "draft"})
    odoo.sync(types="purchase_orders")
    assert odoo.row(PURCHASE_ORDERS.table, back)["state"] == "draft"
    assert odoo.rows(PURCHASE_ORDER_LINES.table, "order_id = :o", o=back) == []

    run = odoo.sync(types="purchase_order_lines")
    assert {r["id"] for r in odoo.rows(PURCHASE_ORDER_LINES.table, "order_id = :o", o=back)} == lines
    assert not lines & {r["id"] for r in odoo.rows(PURCHASE_ORDER_LINES.archive_table)}
    assert run.meta(PURCHASE_ORDER_LINES)["inserted"] == len(lines)


def test_the_lines_sync_asks_only_about_orders_synced_since_its_last_look(odoo):
    """The archived lines of an order synced well before the lines' last look are not looked
    up (nor asked of Odoo) again; with no last look recorded (a database just upgraded),
    every live order is looked at once."""
    back, lines = _archive_orders_with_lines(odoo)
    odoo.sandbox.clock.advance(seconds=1)
    odoo.control("write", model="purchase.order", id=back, values={"state": "draft"})
    odoo.sync(types="purchase_orders")
    orders = odoo.warehouse.table(PURCHASE_ORDERS.table)
    with odoo.warehouse.transaction() as tx:  # as if it had come back a day before the lines last looked
        tx.execute(orders.update().where(orders.c.id == back).values(
            synced_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)))

    before = odoo.control("stats")["search_read_calls"][PURCHASE_ORDER_LINES.model]
    run = odoo.sync(types="purchase_order_lines")
    assert odoo.control("stats")["search_read_calls"][PURCHASE_ORDER_LINES.model] - before == run.meta(
        PURCHASE_ORDER_LINES)["batches"]
    assert lines <= {r["id"] for r in odoo.rows(PURCHASE_ORDER_LINES.archive_table)}

    state = odoo.warehouse.table("sync_state")
    with odoo.warehouse.transaction() as tx:
        assert tx.execute(state.delete().where(
            state.c.source == SOURCE, state.c.entity == "purchase_order_lines_parents_checked")).rowcount == 1
    run = odoo.sync(types="purchase_order_lines")
    assert {r["id"] for r in odoo.rows(PURCHASE_ORDER_LINES.table, "order_id = :o", o=back)} == lines
    assert not lines & {r["id"] for r in odoo.rows(PURCHASE_ORDER_LINES.archive_table)}
    assert run.meta(PURCHASE_ORDER_LINES)["inserted"] == len(lines)


def test_an_archived_record_deleted_in_odoo_is_marked_deleted_in_the_archive_by_a_full_run(odoo):
    odoo.sync()
    now = odoo.sandbox.clock.now()
    moved = odoo.archive(as_of=(now + dt.timedelta(days=40)).isoformat())
    assert moved[INVOICES.table]
    archived = sorted(r["id"] for r in odoo.rows(INVOICES.archive_table))
    gone = dict(odoo.vendor.records["account.move"][archived[0]])
    odoo.control("delete", model="account.move", id=archived[0])

    run = odoo.sync(mode="full", types="invoices")
    meta = run.meta(INVOICES)
    assert (meta["deleted"], meta["deleted_archived"]) == (0, 1)
    rows = {r["id"]: r for r in odoo.rows(INVOICES.archive_table)}
    assert rows[archived[0]]["deleted_at"] is not None
    assert all(rows[i]["deleted_at"] is None for i in archived[1:])
    assert odoo.row(INVOICES.table, archived[0]) is None  # still archived, not back
    assert odoo.sync(mode="full", types="invoices").meta(INVOICES)["deleted_archived"] == 0

    # restored in Odoo as it was (from a backup, say): the archive row is not deleted any more
    odoo.vendor.records["account.move"][archived[0]] = gone
    odoo.sync(mode="full", types="invoices")
    assert odoo.row(INVOICES.archive_table, archived[0])["deleted_at"] is None
    assert odoo.row(INVOICES.table, archived[0]) is None


def test_a_full_run_reads_only_the_archive_ids_it_may_mark_never_the_whole_archive(odoo):
    """Marking deletions after a full read asks the archive for its unmarked ids (gone unless
    Odoo returned them) and its marked ids (back if it did), never for every row: every
    archive read of the run names the rows it wants."""
    odoo.sync()
    now = odoo.sandbox.clock.now()
    assert odoo.archive(as_of=(now + dt.timedelta(days=40)).isoformat())[INVOICES.table] >= 2
    archived = sorted(r["id"] for r in odoo.rows(INVOICES.archive_table))
    restored = dict(odoo.vendor.records["account.move"][archived[1]])
    odoo.control("delete", model="account.move", id=archived[1])
    odoo.sync(mode="full", types="invoices")
    odoo.vendor.records["account.move"][archived[1]] = restored  # back in Odoo as it was
    odoo.control("delete", model="account.move", id=archived[0])

    archive_reads: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        text = " ".join(statement.split())
        if text.upper().startswith("SELECT") and f"FROM {INVOICES.archive_table}" in text:
            archive_reads.append(text)

    sa.event.listen(odoo.warehouse.engine, "before_cursor_execute", note)
    try:
        run = odoo.sync(mode="full", types="invoices")
    finally:
        sa.event.remove(odoo.warehouse.engine, "before_cursor_execute", note)
    meta = run.meta(INVOICES)
    assert (meta["deleted"], meta["deleted_archived"]) == (0, 1)
    rows = {r["id"]: r for r in odoo.rows(INVOICES.archive_table)}
    assert rows[archived[0]]["deleted_at"] is not None and rows[archived[1]]["deleted_at"] is None
    assert all(rows[i]["deleted_at"] is None for i in archived[2:])
    assert archive_reads and all(" WHERE " in text for text in archive_reads), archive_reads


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def test_a_full_run_resolves_the_reject_of_a_record_fixed_in_odoo_in_the_batch_landing_it(odoo):
    """A full run retries no rejects by id: the batch that lands the fixed record resolves its
    reject (open when the run started)."""
    odoo.sync()
    malformed = min(odoo.odoo_ids(INVOICES))
    odoo.control("wrong_type", model="account.move", id=malformed, field="amount_total", value="12,50 EUR")
    odoo.sync(types="invoices")
    assert [r["record_key"] for r in odoo.rejects(INVOICES.entity)] == [str(malformed)]
    odoo.control("write", model="account.move", id=malformed, values={"amount_total": 12.5})
    run = odoo.sync(mode="full", types="invoices")
    assert run.success and odoo.rejects(INVOICES.entity) == []
    assert float(odoo.row(INVOICES.table, malformed)["amount_total"]) == 12.5
