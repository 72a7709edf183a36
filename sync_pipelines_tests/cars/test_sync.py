"""Issue 3 acceptance against the sandbox, on SQLite and Postgres (the ``warehouse`` fixture)."""

from __future__ import annotations

import datetime as dt

import pytest

from sync_pipelines_tests.cars.conftest import days_from_now

pytestmark = pytest.mark.timeout(300)


def test_full_sync_lands_every_listed_car_then_incremental_changes_nothing(cars):
    run = cars.sync("full")
    rows = cars.rows()
    assert set(rows) == cars.listed()
    encar, kb = run.meta("encar_listings"), run.meta("kbchachacha_listings")
    assert encar["inserted"] == 120 and encar["pages_fetched"] == 3 and encar["listing_complete"] == 1
    assert kb["inserted"] == 60 and kb["pages_fetched"] == 4  # 3 full pages, then an empty one
    assert kb["listing_complete"] == 1
    assert all(isinstance(v, (int, float)) for k, v in encar.items() if k != "destination")
    assert run.meta("cars")["cars_total"] == 180
    assert run.meta("cars")["duration_seconds"] >= 0 and isinstance(run.meta("cars")["duration_seconds"], float)
    assert run.checks() == {"no_duplicate_keys": True, "values_in_sane_ranges": True, "freshness_check": True}

    car = rows[("encar", cars.encar.listed_ids()[0])]
    vendor_car = cars.encar.cars[car["source_id"]]
    assert car["price_krw"] == int(vendor_car["Price"]) * 10_000
    assert car["mileage_km"] == int(vendor_car["Mileage"])
    assert car["year_month"] == int(vendor_car["Year"])
    assert car["sale_status"] == "active" and car["sold_at"] is None
    modified = car["vendor_modified_at"]
    modified = modified if modified.tzinfo else modified.replace(tzinfo=dt.timezone.utc)
    assert abs(modified - vendor_car["_modified"].replace(microsecond=0)) < dt.timedelta(seconds=1)

    again = cars.sync("incremental")
    for name in ("encar_listings", "kbchachacha_listings"):
        meta = again.meta(name)
        assert (meta["inserted"], meta["updated"], meta["rejected"]) == (0, 0, 0), meta
        assert meta["newly_sold"] == meta["newly_reserved"] == meta["reactivated"] == 0
        assert meta["pages_fetched"] == 1
    after = cars.rows()
    # nothing written but the bookkeeping of the round-robin status checks
    assert {k: {**v, "status_checked_at": None} for k, v in after.items()} == {
        k: {**v, "status_checked_at": None} for k, v in rows.items()
    }


def test_25000_cars_land_exactly_once_and_a_rerun_changes_nothing(cars):
    """500 pages x 50 Encar cars (plus a small KB listing: 25 pages x 20)."""
    cars.encar.control("set_size", {"count": 25_000})
    cars.kb.control("set_size", {"count": 500})
    run = cars.sync("full", status_checks_per_run=50)
    encar = run.meta("encar_listings")
    assert encar["pages_fetched"] == 500 and encar["fetched"] == 25_000 and encar["inserted"] == 25_000
    assert encar["listing_complete"] == 1
    assert cars.warehouse.count("cars", "source = 'encar'") == 25_000
    assert cars.warehouse.count("cars") == 25_500
    assert set(cars.rows()) == cars.listed()

    again = cars.sync("incremental", status_checks_per_run=50)
    for name in ("encar_listings", "kbchachacha_listings"):
        meta = again.meta(name)
        assert (meta["inserted"], meta["updated"], meta["newly_sold"]) == (0, 0, 0), meta
    assert cars.warehouse.count("cars") == 25_500


def test_sold_car_is_sold_after_next_sync_and_archived_8_days_later_reserved_stays(cars):
    cars.sync("full")
    encar_ids, kb_ids = cars.encar.listed_ids(), cars.kb.listed_ids()
    # the reserved car is on page 1 and stays there: Encar's list has no status field, so
    # only the round-robin's detail call (300 per run > 120 cars) can see the reservation
    sold_status, sold_404, reserved = encar_ids[3], encar_ids[70], encar_ids[5]
    kb_sold = kb_ids[30]
    cars.encar.sell(sold_status, how="status")
    cars.encar.sell(sold_404, how="404")
    cars.encar.reserve(reserved)
    cars.kb.sell(kb_sold)

    run = cars.sync("incremental")  # the schedule's mode: round-robin status checks find them
    assert reserved in cars.encar.listed_ids()[:50]  # shown by this run's listing
    rows = cars.rows()
    for key in (("encar", sold_status), ("encar", sold_404), ("kbchachacha", kb_sold)):
        assert rows[key]["sale_status"] == "sold" and rows[key]["sold_at"] is not None, key
    assert rows[("encar", reserved)]["sale_status"] == "reserved"
    assert run.meta("encar_listings")["newly_sold"] == 2
    assert run.meta("encar_listings")["newly_reserved"] == 1
    assert run.meta("kbchachacha_listings")["newly_sold"] == 1
    sold_at = rows[("encar", sold_status)]["sold_at"]

    # sold only just now: an archive run today moves nothing, and a re-sync keeps sold_at
    assert cars.archive().result.output_for_node("archive_sold_cars_op") == 0
    cars.sync("full")
    assert cars.rows()[("encar", sold_status)]["sold_at"] == sold_at

    cars.sandbox.clock.advance(days=8)
    archive = cars.archive(as_of=days_from_now(8))
    assert archive.result.output_for_node("archive_sold_cars_op") == 3
    live, archived = cars.rows(), cars.rows("cars_archive")
    assert set(archived) == {("encar", sold_status), ("encar", sold_404), ("kbchachacha", kb_sold)}
    assert not set(archived) & set(live)
    assert archived[("encar", sold_status)]["archived_at"] is not None
    assert archived[("encar", sold_status)]["price_krw"] == rows[("encar", sold_status)]["price_krw"]
    assert live[("encar", reserved)]["sale_status"] == "reserved"
    assert len(live) == 180 - 3
    # re-running the archive is safe
    assert cars.archive(as_of=days_from_now(8)).result.output_for_node("archive_sold_cars_op") == 0


def test_every_sync_archives_through_the_cars_asset(cars):
    cars.sync("full")
    victim = cars.encar.listed_ids()[0]
    cars.encar.sell(victim)
    cars.sync("incremental")
    run = cars.sync("incremental", archive={"as_of": days_from_now(8)})
    assert run.meta("cars")["archived"] == 1
    assert ("encar", victim) in cars.rows("cars_archive") and ("encar", victim) not in cars.rows()


def test_archived_car_listed_again_comes_back_from_the_archive_once(cars):
    """A sold, archived car advertised again under its id lives in `cars` only, with its history."""
    cars.sync("full")
    victim = cars.encar.listed_ids()[10]
    first_seen = cars.rows()[("encar", victim)]["first_seen_at"]
    cars.encar.sell(victim)
    cars.sync("incremental")
    cars.sandbox.clock.advance(days=8)
    assert cars.archive(as_of=days_from_now(8)).result.output_for_node("archive_sold_cars_op") == 1
    assert ("encar", victim) in cars.rows("cars_archive") and ("encar", victim) not in cars.rows()

    cars.encar.relist(victim)  # back on page 1
    run = cars.sync("incremental")
    meta = run.meta("encar_listings")
    assert meta["unarchived"] == 1 and meta["reactivated"] == 1 and meta["inserted"] == 0
    live = cars.rows()
    assert ("encar", victim) not in cars.rows("cars_archive")
    assert live[("encar", victim)]["sale_status"] == "active" and live[("encar", victim)]["sold_at"] is None
    assert live[("encar", victim)]["first_seen_at"] == first_seen
    assert run.checks()["no_duplicate_keys"] is True
    # and a re-run finds nothing more to restore
    assert cars.sync("incremental").meta("encar_listings")["unarchived"] == 0


def test_last_seen_at_is_refreshed_for_stored_and_restored_cars_not_rewritten_for_new_ones(cars):
    """A car the listing shows again, unchanged, gets last_seen_at refreshed (once it is a day
    old), also when it comes back from the archive; a car the listing inserts has it already."""
    cars.sync("full")
    first_run = cars.rows()
    stored, restored = cars.encar.listed_ids()[:2]
    cars_table, archive = cars.warehouse.table("cars"), cars.warehouse.table("cars_archive")
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)
    with cars.warehouse.transaction() as tx:
        tx.execute(cars_table.update().where(cars_table.c.source_id.in_([stored, restored]))
                   .values(last_seen_at=long_ago))
        tx.execute(archive.insert().values({k: v for k, v in first_run[("encar", restored)].items() if k in archive.c}
                                           | {"last_seen_at": long_ago, "archived_at": long_ago}))
        tx.execute(cars_table.delete().where(cars_table.c.source_id == restored))
    meta = cars.sync("full").meta("encar_listings")
    assert (meta["unarchived"], meta["inserted"], meta["updated"]) == (1, 0, 0)
    assert meta["last_seen_refreshed"] == 2
    now = dt.datetime.now(dt.timezone.utc)
    for source_id in (stored, restored):
        seen = cars.rows()[("encar", source_id)]["last_seen_at"]
        assert now - (seen if seen.tzinfo else seen.replace(tzinfo=dt.timezone.utc)) < dt.timedelta(minutes=5)


def test_car_pushed_off_page_1_by_a_price_change_stays_active(cars):
    cars.sync("full")
    before = cars.encar.listed_ids()
    pushed_off = before[49]  # the last car of page 1
    moved_up = cars.encar.bump(before[60], price=1234)
    assert cars.encar.listed_ids()[0] == moved_up and cars.encar.listed_ids()[50] == pushed_off

    run = cars.sync("incremental", status_checks_per_run=0)  # page 1 only, no round-robin
    meta = run.meta("encar_listings")
    rows = cars.rows()
    # it left page 1: asked through the detail (ADVERTISE), so still active, not lost
    assert meta["left_head_checked"] == 1 and meta["status_checked"] == 1
    assert rows[("encar", pushed_off)]["sale_status"] == "active"
    assert rows[("encar", moved_up)]["price_krw"] == 12_340_000
    assert meta["updated"] == 1 and meta["newly_sold"] == 0
    assert len(rows) == 180


def test_a_page_1_car_sold_is_confirmed_by_the_next_incremental_run(cars):
    cars.sync("full")
    sold = cars.encar.listed_ids()[4]
    kb_sold = cars.kb.listed_ids()[0]
    cars.encar.sell(sold, how="404")
    cars.kb.sell(kb_sold)
    run = cars.sync("incremental", status_checks_per_run=0)
    rows = cars.rows()
    assert rows[("encar", sold)]["sale_status"] == "sold"
    assert rows[("kbchachacha", kb_sold)]["sale_status"] == "sold"
    # the car that slid up onto page 1 was seen; the one that left page 1 was the sold one
    assert run.meta("encar_listings")["left_head_checked"] == 1
    assert run.meta("encar_listings")["newly_sold"] == 1


def test_a_recent_car_sold_is_confirmed_next_run_though_the_round_robin_budget_is_smaller(cars):
    """120 Encar cars, 5 round-robin checks per run: a sold car inside the ModifiedDate window
    the run reads (but not on last run's page 1) is still asked, as a "leaver"."""
    cars.sync("full", status_checks_per_run=5)
    ids = cars.encar.listed_ids()
    sold = ids[70]  # page 2: not in last run's head (page 1), not first in the round-robin order
    cars.encar.sell(sold, how="404")
    run = cars.sync("incremental", incremental_pages=2, status_checks_per_run=5)
    meta = run.meta("encar_listings")
    assert cars.rows()[("encar", sold)]["sale_status"] == "sold"
    assert meta["newly_sold"] == 1 and meta["leavers_checked"] == 1 and meta["left_head_checked"] == 0
    # the round-robin spends exactly its 5 checks, on the least recently checked cars: the
    # full run checked 5 (never asked yet, lowest ids first), so this run asks 5 others
    assert meta["status_checked"] == 1 + 5
    checked = {k[1] for k, v in cars.rows(source="encar").items() if v["status_checked_at"] is not None}
    assert len(checked - {sold}) == 10


def test_car_skipped_by_an_offset_shift_mid_paging_is_not_marked_sold(cars):
    cars.sync("full")
    ids = cars.encar.listed_ids()
    sold, skipped = ids[10], ids[50]
    # while page 2 is served, a page-1 car is sold: every later car moves up one place, so
    # the first car of page 2 slides onto page 1 (already read) and the full listing misses it
    cars.encar.control("on_page", {"page": 2, "action": "sell", "id": sold})
    run = cars.sync("full", status_checks_per_run=0)
    meta = run.meta("encar_listings")
    # the skipped car is a "leaver" (not in the complete listing): asked through the detail,
    # which says ADVERTISE, so it stays active. The sold car was read on page 1 before the
    # sale: this run cannot know, the next status check does.
    assert meta["leavers_checked"] == 1 and meta["newly_sold"] == 0
    rows = cars.rows()
    assert rows[("encar", skipped)]["sale_status"] == "active"
    assert len(rows) == 180

    cars.sync("full", status_checks_per_run=0)
    assert cars.rows()[("encar", sold)]["sale_status"] == "sold"  # now a leaver, confirmed by the detail


def test_429_and_503_storms_are_ridden_out_with_retry_after(cars):
    faults = cars.sandbox.faults
    faults.add("status", vendor="encar", status=429, retry_after=0.2, times=3, path=r"/search/")
    faults.add("status", vendor="kbchachacha", status=503, retry_after=0.1, times=2, path=r"list\.empty")
    run = cars.sync("full")
    assert set(cars.rows()) == cars.listed()
    assert run.meta("encar_listings")["encar_http_retries"] >= 3
    assert run.meta("kbchachacha_listings")["kbchachacha_http_retries"] >= 2

    # the per-car calls (an incremental run asks the cars its first page did not show)
    faults.add("status", vendor="encar", status=503, retry_after=0.1, times=3, path=r"/v1/readside/")
    faults.add("status", vendor="kbchachacha", status=429, retry_after=0.1, times=2, path=r"list\.json")
    again = cars.sync("incremental")
    encar, kb = again.meta("encar_listings"), again.meta("kbchachacha_listings")
    # Encar's round-robin asks all 120 cars (the listed ones too: only the detail shows a
    # reservation); KB's asks the 40 its page 1 did not show (its per-car call says no more)
    assert encar["encar_http_retries"] >= 3 and encar["status_checked"] == 120 and encar["newly_sold"] == 0
    assert kb["kbchachacha_http_retries"] >= 2 and kb["status_checked"] == 40 and kb["newly_sold"] == 0
    assert all(f["hits"] == f["times"] for f in faults.list())


def test_a_storm_longer_than_the_retries_fails_the_run_clearly_and_marks_nothing_sold(cars):
    cars.sync("full")
    cars.sandbox.faults.add("status", vendor="encar", status=503, retry_after=0.05, times=None, path=r"/search/")
    run = cars.sync("full", raise_on_error=False)
    assert not run.success
    assert "encar GET /encar/search/car/list/general: HTTP 503" in run.failure_text()
    assert cars.warehouse.count("cars", "sale_status = 'sold'") == 0


def test_wrong_typed_record_goes_to_sync_rejects_and_the_rest_of_the_page_lands(cars):
    cars.sandbox.faults.add("wrong_type", vendor="encar", field="Price", times=1, path=r"/search/")
    first_id = cars.encar.listed_ids()[0]
    run = cars.sync("full")
    meta = run.meta("encar_listings")
    assert meta["rejected"] == 1 and meta["inserted"] == 119
    [reject] = cars.warehouse.rejects("cars", "encar")
    assert reject["record_key"] == first_id
    assert "Price must be a number" in reject["reason"] and "not-a-number" in reject["reason"]
    assert reject["payload"]["Price"] == "not-a-number"
    assert ("encar", first_id) not in cars.rows()

    # the next sync reads it clean: it lands and its reject is resolved
    cars.sync("incremental")
    assert ("encar", first_id) in cars.rows()
    assert cars.warehouse.rejects("cars", "encar") == []


def test_an_incremental_run_reads_on_to_an_open_reject_beyond_page_1_and_stops_there(cars):
    deep, gone = cars.encar.listed_ids()[60], cars.encar.listed_ids()[110]  # pages 2 and 3 of 50
    for car_id in (deep, gone):
        cars.encar.control("corrupt", {"id": car_id, "field": "Price", "value": "문의"})
    cars.sync("full")
    assert {r["record_key"] for r in cars.warehouse.rejects("cars", "encar")} == {deep, gone}

    cars.encar.control("repair", {"id": deep})
    meta = cars.sync("incremental").meta("encar_listings")
    assert ("encar", deep) in cars.rows() and meta["reject_reread_pages"] == 2  # page 3: gone is still bad
    assert [r["record_key"] for r in cars.warehouse.rejects("cars", "encar")] == [gone]

    cars.encar.sell(gone)  # no longer listed: a complete listing drops its reject
    meta = cars.sync("incremental").meta("encar_listings")
    assert meta["listing_complete"] == 1 and cars.warehouse.rejects("cars", "encar") == []
    assert cars.sync("incremental").meta("encar_listings")["reject_reread_pages"] == 0


def test_an_encar_record_without_id_keeps_one_stable_reject_cleared_once_no_listing_shows_it(cars):
    victim = cars.encar.listed_ids()[5]
    cars.encar.control("corrupt", {"id": victim, "field": "Id", "drop": True})
    cars.sync("full")
    [reject] = cars.warehouse.rejects("cars", "encar")
    key = reject["record_key"]
    assert key.startswith("noid-") and reject["reason"] == "Id is missing" and "Id" not in reject["payload"]
    cars.encar.bump(cars.encar.listed_ids()[60])  # the list moves: the record is now at another position
    cars.sync("full")
    assert [r["record_key"] for r in cars.warehouse.rejects("cars", "encar")] == [key]  # same key, one row

    cars.encar.control("repair", {"id": victim})
    cars.sync("incremental")
    assert ("encar", victim) in cars.rows()
    cars.sync("full")  # a complete listing no longer shows the id-less record: its reject goes
    assert cars.warehouse.rejects("cars", "encar") == []


def test_kb_card_with_an_unreadable_price_is_rejected_with_its_reason(cars):
    bad = cars.kb.listed_ids()[2]
    cars.kb.control("corrupt", {"seq": bad, "field": "price", "value": "가격문의"})
    run = cars.sync("full")
    assert run.meta("kbchachacha_listings")["rejected"] == 1
    [reject] = cars.warehouse.rejects("cars", "kbchachacha")
    assert reject["record_key"] == bad and "price is not '<number>만원'" in reject["reason"]
    assert "data-car-seq" in reject["payload"]["html"]
    assert cars.warehouse.count("cars", "source = 'kbchachacha'") == 59


def test_a_full_listing_read_ahead_that_breaks_lands_the_pages_before_and_asks_no_further(cars):
    """Full mode reads pages ahead while a batch lands: page 8 failing stops the reader there."""
    cars.encar.control("set_size", {"count": 1_000})  # 20 pages
    cars.sandbox.faults.add("status", vendor="encar", status=400, times=None, skip=7, path=r"/search/")
    failed = cars.sync("full", raise_on_error=False, listing_batch_rows=100)
    assert not failed.success and "HTTP 400" in failed.failure_text()
    assert cars.warehouse.count("cars", "source = 'encar'") == 350  # pages 1-7, none twice
    assert [f["hits"] for f in cars.sandbox.faults.list()] == [1]  # page 8 asked once, 9 never


def test_malformed_page_is_retried_then_fails_clearly_never_read_as_empty(cars):
    cars.sandbox.faults.add("malformed", vendor="encar", times=1, path=r"/search/")
    run = cars.sync("full")
    assert run.meta("encar_listings")["encar_malformed_page_retries"] == 1
    assert cars.warehouse.count("cars", "source = 'encar'") == 120

    cars.sandbox.faults.add("malformed", vendor="encar", times=None, path=r"/search/")
    failed = cars.sync("full", raise_on_error=False)
    assert not failed.success
    assert "malformed JSON body" in failed.failure_text()
    assert cars.warehouse.count("cars", "sale_status = 'sold'") == 0


def test_a_kb_page_cut_short_is_asked_again_then_fails_clearly_never_read_as_shorter(cars):
    cars.sandbox.faults.add("malformed", vendor="kbchachacha", times=1, skip=1, path=r"list\.empty")
    run = cars.sync("full")
    assert run.meta("kbchachacha_listings")["kbchachacha_malformed_page_retries"] == 1
    assert cars.warehouse.count("cars", "source = 'kbchachacha'") == len(cars.kb.listed_ids())

    cars.sandbox.faults.add("malformed", vendor="kbchachacha", times=None, skip=1, path=r"list\.empty")
    failed = cars.sync("full", raise_on_error=False)
    assert not failed.success and "page 2 is malformed" in failed.failure_text()


def test_kb_javascript_challenge_is_a_clear_error_not_zero_cars(cars):
    cars.sync("full")
    cars.kb.control("challenge", {"times": 1})
    run = cars.sync("full", raise_on_error=False)
    assert not run.success
    text = run.failure_text()
    assert "likely a JavaScript challenge" in text and "Not treating it as zero cars" in text
    assert run.meta("encar_listings")["fetched"] == 120  # the other source still landed
    assert cars.warehouse.count("cars", "source = 'kbchachacha' AND sale_status = 'active'") == 60


def test_kb_challenge_served_with_503_fails_the_run_at_once_not_retried_as_an_outage(cars):
    cars.sync("full")
    cars.kb.control("challenge", {"times": 1, "on": "list", "status": 503})
    served = cars.kb.requests_served
    run = cars.sync("incremental", raise_on_error=False)
    assert not run.success
    text = run.failure_text()
    assert "KBChallengeError" in text and "HTTP 503 with a challenge page" in text
    assert "Not treating it as zero cars" in text
    assert cars.kb.requests_served - served == 1  # neither HTTP retries nor step retries
    assert run.meta("encar_listings")["fetched"] == 50  # the other source still landed
    assert cars.warehouse.count("cars", "source = 'kbchachacha' AND sale_status = 'active'") == 60


def test_kb_per_car_answers_about_another_car_stop_the_run_and_change_nothing(cars):
    cars.sync("full")
    sold = cars.kb.listed_ids()[30]
    cars.kb.sell(sold)
    cars.kb.control("ignore_car_seq", {"on": True})  # every answer is about the newest car
    run = cars.sync("incremental", raise_on_error=False)
    assert not run.success and "per-car status answers were malformed" in run.failure_text()
    # not read as "every KB car is on sale": the sold car is left for a sound answer
    assert cars.rows()[("kbchachacha", sold)]["sale_status"] == "active"
    cars.kb.control("ignore_car_seq", {"on": False})
    cars.sync("incremental")
    assert cars.rows()[("kbchachacha", sold)]["sale_status"] == "sold"


def test_cars_full_sync_job_runs_both_listings_in_full_without_any_config(cars):
    from sync_pipelines.definitions import defs
    from sync_pipelines_tests.cars.conftest import SyncRun

    cars.sync("full")
    sold = cars.encar.listed_ids()[90]  # deep in the list: only a full read (or the round-robin) asks it
    cars.encar.sell(sold)
    cars.kb.sell(cars.kb.listed_ids()[50])
    result = defs.resolve_job_def("cars_full_sync_job").execute_in_process(instance=cars.instance)
    run = SyncRun(result)
    assert result.success and result.dagster_run.tags["sync_pipelines/source"] == "cars"
    encar, kb = run.meta("encar_listings"), run.meta("kbchachacha_listings")
    assert encar["pages_fetched"] == 3 and encar["listing_complete"] == 1 and encar["leavers_checked"] == 1
    assert kb["pages_fetched"] == 3 and kb["listing_complete"] == 1 and kb["leavers_checked"] == 1
    assert encar["newly_sold"] == 1 and kb["newly_sold"] == 1
    assert cars.rows()[("encar", sold)]["sale_status"] == "sold"
    assert "archived" in run.meta("cars")


def test_kb_per_car_challenge_refreshes_the_session_once_then_fails_clearly(cars):
    cars.sync("full")
    sold = cars.kb.listed_ids()[30]
    cars.kb.sell(sold)
    cars.kb.control("challenge", {"times": 1, "on": "json"})  # the session expired mid-run, say
    run = cars.sync("incremental")
    kb = run.meta("kbchachacha_listings")
    assert kb["kbchachacha_session_refreshes"] == 1 and kb["status_checked"] == 40 and kb["newly_sold"] == 1

    cars.kb.sell(cars.kb.listed_ids()[35])
    cars.kb.control("challenge", {"times": 2, "on": "json"})  # challenged again right after the refresh
    failed = cars.sync("incremental", raise_on_error=False)
    assert not failed.success
    text = failed.failure_text()
    assert "KBChallengeError" in text and "again after a session refresh" in text and "Not treating it as sold" in text
    assert failed.meta("encar_listings")["fetched"] == 50  # the other source still landed
    assert cars.warehouse.count("cars", "source = 'kbchachacha' AND sale_status = 'sold'") == 1


def test_sandbox_evolution_is_mirrored_after_an_incremental_sync(cars):
    cars.sync("full")
    changes = cars.sandbox.evolve(steps=3)
    shown = set(cars.encar.listed_ids()[:100])
    cars.sync("incremental", incremental_pages=2)
    rows = cars.rows()
    for car_id, car in cars.encar.cars.items():
        expected = "sold" if car["_removed"] or car["_status"] != "ADVERTISE" else (
            "reserved" if car["_sales_status"] == "CONTRACT" else "active")
        row = rows[("encar", car_id)]
        # no tolerance for cars the listing shows: the round-robin (300) asks every car, so a
        # reservation on the pages read is seen too
        assert row["sale_status"] == expected, (car_id, car_id in shown, changes)
        if expected != "sold":
            assert row["price_krw"] == int(car["Price"]) * 10_000
    for seq, car in cars.kb.cars.items():
        row = rows[("kbchachacha", seq)]
        assert row["sale_status"] == ("sold" if car["sold"] else "active")
        if not car["sold"]:
            assert row["price_krw"] == car["price"] * 10_000


def test_a_malformed_detail_answer_leaves_the_car_unchanged(cars):
    cars.sync("full")
    cars.sandbox.faults.add("malformed", vendor="encar", times=2, path=r"/v1/readside/")
    run = cars.sync("incremental")
    meta = run.meta("encar_listings")
    # the round-robin asks all 120 cars (listed ones too), 2 answers are malformed
    assert meta["status_check_errors"] == 2 and meta["status_checked"] == 118
    assert cars.warehouse.count("cars", "sale_status <> 'active'") == 0

    cars.sandbox.faults.add("malformed", vendor="encar", times=None, path=r"/v1/readside/")
    failed = cars.sync("incremental", raise_on_error=False)
    assert not failed.success and "per-car status answers were malformed" in failed.failure_text()


def test_a_per_car_endpoint_answering_404_for_everything_stops_the_run_and_marks_nothing_sold(cars):
    cars.sync("full")
    cars.sandbox.faults.add("status", vendor="encar", status=404, times=None, path=r"/v1/readside/")
    run = cars.sync("incremental", raise_on_error=False)
    assert not run.success
    text = run.failure_text()
    assert "MassSoldError" in text and "120 of 120 per-car answers said sold" in text
    assert "0 of 5 cars this run's listing shows answered as on sale" in text
    assert "stopping before marking any car sold" in text
    assert cars.warehouse.count("cars", "sale_status = 'sold'") == 0
    assert run.meta("kbchachacha_listings")["status_checked"] == 40  # the other source still landed

    # the endpoint recovers: the same cars are asked again, none was sold
    cars.sandbox.faults.clear()
    again = cars.sync("incremental").meta("encar_listings")
    assert again["status_checked"] == 120 and again["newly_sold"] == 0 and again["canaries_checked"] == 0


def test_many_real_sales_in_one_run_are_marked_when_listed_cars_answer_on_sale(cars):
    cars.sync("full")
    sold = cars.encar.listed_ids()[50:120]  # every car but page 1: 70 of the 120 the run asks
    for car_id in sold:
        cars.encar.sell(car_id)
    meta = cars.sync("incremental").meta("encar_listings")
    assert meta["newly_sold"] == 70 and meta["sold_answers"] == 70 and meta["canaries_checked"] == 5
    assert cars.warehouse.count("cars", "sale_status = 'sold'") == 70


def test_a_car_the_listing_showed_is_never_marked_sold(cars):
    from sync_pipelines.cars.models import StatusAnswer
    from sync_pipelines.cars.sync import CarsSyncReport, StatusRound, _check_statuses, load_known

    class AlwaysSold:
        source = "encar"

        def car_status(self, source_id):
            return StatusAnswer("sold", "detail answered 404")

    cars.sync("full")
    listed, unlisted = cars.encar.listed_ids()[:2]
    report = CarsSyncReport(entity="encar", mode="incremental")
    _check_statuses(
        StatusRound(AlwaysSold(), cars.warehouse, load_known(cars.warehouse, "encar"), report,
                    listed={listed}, canaries=[], min_answers=20),
        [listed, unlisted],
    )
    rows = cars.rows()
    assert rows[("encar", listed)]["sale_status"] == "active"
    assert rows[("encar", unlisted)]["sale_status"] == "sold"
    assert (report.sold_answers, report.sold_but_listed, report.newly_sold) == (2, 1, 1)


def test_a_listing_page_read_before_a_sale_does_not_undo_the_sale_another_run_confirmed(cars):
    """Two overlapping runs: B reads page 1 (the car still on it), then A confirms the car sold,
    then B lands its page. B's page must not put the car back to active."""
    from sync_pipelines.cars.resources import EncarResource
    from sync_pipelines.cars.sync import EncarAdapter, sync_entity

    cars.sync("full")
    victim = cars.encar.listed_ids()[3]
    sync = dict(mode="incremental", max_pages=500, incremental_pages=1, status_checks_per_run=0)

    class ReadBeforeTheSale(EncarAdapter):
        def fetch_page(self, number):
            page = super().fetch_page(number)  # still shows the victim
            if number == 1:
                cars.encar.sell(victim)
                with EncarResource().get_client() as other_client:
                    other = sync_entity(EncarAdapter(other_client), cars.warehouse, **sync)
                assert other.newly_sold == 1 and other.left_head == 1
            return page

    with EncarResource().get_client() as client:
        report = sync_entity(ReadBeforeTheSale(client), cars.warehouse, **sync)
    row = cars.rows()[("encar", victim)]
    assert row["sale_status"] == "sold" and row["sold_at"] is not None
    assert report.counts.updated == 0 and report.newly_sold == 0 and report.reactivated == 0


def test_a_stale_status_answer_does_not_overwrite_a_newer_check(cars):
    from sync_pipelines.cars.models import StatusAnswer
    from sync_pipelines.cars.sync import CarsSyncReport, _write_answers, load_known

    cars.sync("full")
    car_id = cars.encar.listed_ids()[0]
    now = dt.datetime.now(dt.timezone.utc)
    known, report = load_known(cars.warehouse, "encar"), CarsSyncReport(entity="encar", mode="incremental")
    with cars.warehouse.transaction() as tx:  # another run asked at `now`: active
        _write_answers(tx, "encar", [(car_id, StatusAnswer("active", "ADVERTISE"), now)], known, report)
    with cars.warehouse.transaction() as tx:  # this run's answer, asked a minute earlier: sold
        stale = now - dt.timedelta(minutes=1)
        _write_answers(tx, "encar", [(car_id, StatusAnswer("sold", "404"), stale)], known, report)
    row = cars.rows()[("encar", car_id)]
    assert row["sale_status"] == "active" and report.newly_sold == 0
    checked = row["status_checked_at"]
    assert (checked if checked.tzinfo else checked.replace(tzinfo=dt.timezone.utc)) == now


def test_asset_checks_fail_on_a_duplicate_key_and_a_price_out_of_range(cars):
    import sqlalchemy as sa

    cars.sync("full")
    live, archive = cars.warehouse.table("cars"), cars.warehouse.table("cars_archive")
    # any car will do: a page looks in the archive only for its keys not in cars, so the sync
    # leaves a key already in both tables to this check
    car_id = cars.encar.listed_ids()[70]
    row = cars.rows()[("encar", car_id)]
    with cars.warehouse.transaction() as tx:
        # the same car in cars and cars_archive (what the archive's one transaction prevents)
        tx.execute(sa.insert(archive).values(**row, archived_at=row["synced_at"]))
        # a car whose price is 1 KRW
        tx.execute(sa.update(live).where(live.c.source_id == cars.encar.listed_ids()[100]).values(price_krw=1))
    checks = cars.sync("incremental").checks()
    assert checks["no_duplicate_keys"] is False and checks["values_in_sane_ranges"] is False
    assert checks["freshness_check"] is True
