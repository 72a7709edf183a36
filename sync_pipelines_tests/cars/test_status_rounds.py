"""The round-robin reaches cars the listing keeps showing; a key is never in both `cars` and
`cars_archive`, even when the archive job runs during a sync (SQLite and Postgres)."""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from sync_pipelines_tests.cars.conftest import days_from_now

pytestmark = pytest.mark.timeout(300)

BUDGET = 30  # status checks per run: 120 Encar cars take ceil(120 / 30) = 4 runs


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite gives timestamps back without a zone; they are stored as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _status(cars, car_id: str) -> str:
    return cars.rows(source="encar")[("encar", car_id)]["sale_status"]


def test_a_page_1_reservation_and_its_fall_through_are_seen_within_the_runs_the_budget_implies(cars):
    cars.sync("full", status_checks_per_run=BUDGET)
    runs_needed = math.ceil(cars.warehouse.count("cars", "source = 'encar'") / BUDGET)
    assert runs_needed == 4
    reserved = cars.encar.listed_ids()[0]  # the newest car: on page 1 of every run below
    cars.encar.reserve(reserved)

    runs = 0
    while _status(cars, reserved) != "reserved":
        runs += 1
        assert runs <= runs_needed, f"reservation not seen after {runs_needed} runs of {BUDGET} checks"
        meta = cars.sync("incremental", status_checks_per_run=BUDGET).meta("encar_listings")
        assert reserved in cars.encar.listed_ids()[:50]  # the listing showed it all along
        assert meta["status_checked"] == BUDGET  # exactly the budget (no left-head car, no leaver)
    assert cars.rows()[("encar", reserved)]["sold_at"] is None

    # the sale falls through: back to active, again within the budgeted runs
    cars.encar.control("unreserve", {"id": reserved})
    runs = 0
    while _status(cars, reserved) != "active":
        runs += 1
        assert runs <= runs_needed, f"fall-through not seen after {runs_needed} runs of {BUDGET} checks"
        cars.sync("incremental", status_checks_per_run=BUDGET)


def test_a_full_run_asks_listed_cars_too_and_a_reservation_is_seen_in_one_run(cars):
    cars.sync("full")
    reserved = cars.encar.listed_ids()[77]
    cars.encar.reserve(reserved)
    meta = cars.sync("full").meta("encar_listings")
    # the complete listing showed every car; the round-robin (300 > 120) asked them all
    assert meta["listing_complete"] == 1 and meta["leavers_checked"] == 0 and meta["status_checked"] == 120
    assert meta["newly_reserved"] == 1 and _status(cars, reserved) == "reserved"


def test_a_car_sold_while_the_listing_still_shows_it_is_not_marked_sold_until_it_leaves(cars):
    cars.sync("full")
    lagging = cars.encar.listed_ids()[2]
    cars.encar.control("sell", {"id": lagging, "how": "status", "still_listed": True})  # a lagging search index
    meta = cars.sync("incremental").meta("encar_listings")
    # the round-robin asked it (it is listed): the detail says SOLD, the listing shows it
    assert meta["sold_answers"] == 1 and meta["sold_but_listed"] == 1 and meta["newly_sold"] == 0
    assert _status(cars, lagging) == "active"

    cars.encar.sell(lagging)  # the index catches up: the car leaves page 1
    meta = cars.sync("incremental").meta("encar_listings")
    assert meta["left_head_checked"] == 1 and meta["newly_sold"] == 1 and _status(cars, lagging) == "sold"


def test_kb_round_robin_skips_cars_its_listing_shows(cars):
    """KB's per-car call only says listed or not (no reservation): asking a car the listing
    just showed could only say "on sale", so the budget goes to the cars it did not show
    (once each has its badge: the full run asked every new car, see test_car_fields.py)."""
    cars.sync("full")
    before = {k[1]: v["status_checked_at"] for k, v in cars.rows(source="kbchachacha").items()}
    meta = cars.sync("incremental").meta("kbchachacha_listings")
    assert meta["status_checked"] == 60 - 20
    shown = set(cars.kb.listed_ids()[:20])
    checked = {k[1] for k, v in cars.rows(source="kbchachacha").items() if v["status_checked_at"] != before[k[1]]}
    assert len(checked) == 40 and not checked & shown


def _archive_during_the_first_page(cars, as_of: str):
    """An Encar adapter whose first page is read, then cars_archive_job's code runs (archiving
    sold cars as of ``as_of``), then the page lands: the archive job ran during the sync."""
    from sync_pipelines.archive import parse_as_of
    from sync_pipelines.cars.archive import archive_sold_cars
    from sync_pipelines.cars.sync import EncarAdapter

    class ArchiveDuringTheSync(EncarAdapter):
        archived = None

        def fetch_page(self, number):
            page = super().fetch_page(number)
            if number == 1:
                cutoff = parse_as_of(as_of) - dt.timedelta(days=7)
                ArchiveDuringTheSync.archived = archive_sold_cars(cars.warehouse, cutoff).moved
            return page

    return ArchiveDuringTheSync


def _sold_then_relisted(cars, index: int):
    """After a full sync, the Encar car at ``index`` is sold (confirmed by an incremental
    sync), then advertised again (back on page 1); returns its id and first_seen_at."""
    cars.sync("full")
    car_id = cars.encar.listed_ids()[index]
    first_seen = cars.rows()[("encar", car_id)]["first_seen_at"]
    cars.encar.sell(car_id)
    cars.sync("incremental")
    assert _status(cars, car_id) == "sold"
    cars.encar.relist(car_id)
    return car_id, first_seen


def test_a_car_archived_by_a_job_running_during_the_sync_is_not_in_both_tables(cars):
    from sync_pipelines.cars.resources import EncarResource
    from sync_pipelines.cars.sync import sync_entity

    victim, first_seen = _sold_then_relisted(cars, 10)

    adapter_class = _archive_during_the_first_page(cars, days_from_now(8))
    with EncarResource().get_client() as client:
        # the run's snapshot has the car as sold, in `cars`; the archive job moves it while
        # page 1 is read; page 1 shows it again
        report = sync_entity(
            adapter_class(client), cars.warehouse, mode="incremental", max_pages=500, incremental_pages=1,
            status_checks_per_run=0,
        )
    assert adapter_class.archived == 1
    assert ("encar", victim) not in cars.rows("cars_archive")
    row = cars.rows()[("encar", victim)]
    assert report.unarchived == 1 and report.counts.inserted == 0
    assert row["first_seen_at"] == first_seen  # its history came back with it
    assert report.reactivated == 1 and row["sale_status"] == "active" and row["sold_at"] is None  # re-asked
    assert cars.sync("incremental").checks()["no_duplicate_keys"] is True


def _archive_committing_once_the_first_page_waits(cars, as_of: str):
    """An Encar adapter whose first page is read while cars_archive_job's code runs in another
    thread (archiving sold cars as of ``as_of``) and holds its transaction open: it has copied
    and deleted the cars but commits only once the page's transaction waits for it (Postgres:
    a backend of this database waiting on a lock; SQLite: after a pause, the page's BEGIN
    IMMEDIATE waiting for the archive's write lock meanwhile)."""
    from sync_pipelines.archive import parse_as_of
    from sync_pipelines.cars.archive import archive_sold_cars
    from sync_pipelines.cars.sync import EncarAdapter

    wh = cars.warehouse

    def page_waits_on_a_lock() -> bool:
        if wh.engine.dialect.name != "postgresql":
            time.sleep(0.5)
            return True
        deadline = time.monotonic() + 30
        with wh.engine.connect() as conn:
            while time.monotonic() < deadline:
                waiting = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
                conn.rollback()  # a fresh snapshot of pg_stat_activity each time
                if waiting:
                    return True
                time.sleep(0.02)
        return False

    class CommitsOnceThePageWaits:
        """The warehouse as the archive code sees it: its transaction commits only once the page waits."""

        def __init__(self):
            self.moved = threading.Event()
            self.page_waited: bool | None = None

        @contextmanager
        def transaction(self):
            with wh.transaction() as tx:
                yield tx
                self.moved.set()
                self.page_waited = page_waits_on_a_lock()

    class ArchiveCommitsDuringThePage(EncarAdapter):
        archive = CommitsOnceThePageWaits()
        archived: list[int] = []
        thread: threading.Thread | None = None

        def fetch_page(self, number):
            page = super().fetch_page(number)
            if number == 1:
                cls = ArchiveCommitsDuringThePage
                cutoff = parse_as_of(as_of) - dt.timedelta(days=7)
                cls.thread = threading.Thread(
                    target=lambda: cls.archived.append(archive_sold_cars(cls.archive, cutoff).moved), daemon=True
                )
                cls.thread.start()
                assert cls.archive.moved.wait(60), "the archive job did not move the car"
            return page

    return ArchiveCommitsDuringThePage


def test_a_page_leaves_none_of_its_keys_in_the_archive_whatever_the_timing(cars):
    """An archive transaction has moved a car page 1 shows and commits while the page's
    transaction runs: the page waits for it (it locks its cars' rows first), then finds the
    car in the archive and brings it back, never inserting it beside its archive row."""
    from sync_pipelines.cars.resources import EncarResource
    from sync_pipelines.cars.sync import sync_entity

    car_id, first_seen = _sold_then_relisted(cars, 4)

    adapter_class = _archive_committing_once_the_first_page_waits(cars, days_from_now(8))
    with EncarResource().get_client() as client:
        report = sync_entity(
            adapter_class(client), cars.warehouse, mode="incremental", max_pages=500, incremental_pages=1,
            status_checks_per_run=0,
        )
    adapter_class.thread.join(60)
    assert adapter_class.archived == [1] and adapter_class.archive.page_waited is True
    assert ("encar", car_id) not in cars.rows("cars_archive")
    live = cars.rows()[("encar", car_id)]
    assert report.counts.inserted == 0
    assert _utc(live["first_seen_at"]) == _utc(first_seen)  # its history came back with it
    # it came back as sold and was re-asked like any sold car shown again: on sale
    assert report.unarchived == 1 and report.reactivated == 1 and live["sale_status"] == "active"
    assert cars.sync("incremental").checks()["no_duplicate_keys"] is True
