"""One source's sync into ``cars``: read the listing, land it, confirm sales per car.

:func:`sync_entity` runs the phases in order: listing pages (each in one transaction,
:class:`ListingRun`), last-seen refresh, the per-car status round (:class:`StatusRound`,
guarded against a broken endpoint), then the head cursor. Why sale status only ever
changes through the per-car call, who is asked, and the archive race: the cars README,
"How a sync works" and "Bad input".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from sync_pipelines.cars.encar_client import EncarClient
from sync_pipelines.cars.kbchachacha_client import KBChachachaClient
from sync_pipelines.cars.models import (
    UNKEYED_PREFIX,
    CarRecord,
    StatusAnswer,
    encar_record_key,
    parse_encar_item,
)
from sync_pipelines.cars.settings import (
    CARS_ARCHIVE_TABLE,
    CARS_TABLE,
    DEFAULT_LISTING_BATCH_ROWS,
    ENCAR,
    ENCAR_LIST_PATH,
    KB_LIST_PATH,
    KBCHACHACHA,
    LAST_SEEN_RESOLUTION,
    MASS_SOLD_CANARIES,
    MASS_SOLD_MIN_ANSWERS,
    SALE_STATUSES,
    SOURCE,
)
from sync_pipelines.http_client import VendorResponseError
from sync_pipelines.kit import (
    OpenRejectKeys,
    RecordError,
    Reject,
    SyncReport,
    land_batch,
    metric,
    open_rejects,
    paginate,
    read_ahead,
)
from sync_pipelines.warehouse import Warehouse, WarehouseTransaction, as_utc, chunked, utcnow

log = logging.getLogger("sync_pipelines.cars")

MAX_STATUS_ERRORS = 5  # malformed per-car answers tolerated before a run stops (if most are bad)
STATUS_BATCH = 50  # status answers committed per transaction (progress survives a failure)
# Pages read ahead while a batch lands, when the listing stops only at its end or page limit
# (an early stop would have asked for pages nobody lands): about one batch of Encar pages.
READ_AHEAD_PAGES = 40
UNSOLD = ("active", "reserved")


class StatusCheckError(RuntimeError):
    """Most per-car status answers were unusable: the run stops instead of guessing."""


class MassSoldError(StatusCheckError):
    """Most per-car answers of a run said "sold" and cars the listing shows said so too: the
    vendor's per-car endpoint is broken (outage, changed API), not the market. Nothing was
    marked sold."""


@dataclass
class ParsedCard:
    key: str
    record: CarRecord | None
    error: str | None = None
    payload: Any = None


@dataclass
class ParsedPage:
    number: int
    cards: list[ParsedCard]
    last: bool


class VendorAdapter(Protocol):
    source: str
    listing_endpoint: str  # named in a repeated-page error
    # True when the listing is newest-modified first with ``vendor_modified_at`` (Encar): the
    # time window a run read then says which known cars should have been shown.
    sorted_by_modified: bool
    # True when the per-car call tells more than the listing (Encar: ``reserved``), so the
    # round-robin asks listed cars too; False (KB) when it only says listed or not.
    status_checks_listed_cars: bool
    # ``cars`` columns the per-car answer fills (KB: manufacturer, model, badge from its JSON):
    # the listing writes them only when it inserts a car, and cars still missing one are asked first.
    status_fields: tuple[str, ...]

    def fetch_page(self, number: int) -> ParsedPage: ...

    def car_status(self, source_id: str) -> StatusAnswer: ...

    def http_metadata(self) -> dict[str, float]: ...


class EncarAdapter:
    source = ENCAR
    listing_endpoint = f"GET {ENCAR_LIST_PATH}"
    sorted_by_modified = True
    status_checks_listed_cars = True  # the list has no status field: reserved only shows in the detail
    status_fields = ()  # the list already has Manufacturer, Model, Badge

    def __init__(self, client: EncarClient):
        self.client = client

    def fetch_page(self, number: int) -> ParsedPage:
        page = self.client.list_page(number)
        cards = []
        for item in page.items:
            key = encar_record_key(item)
            try:
                cards.append(ParsedCard(key, parse_encar_item(item)))
            except RecordError as exc:
                cards.append(ParsedCard(key, None, str(exc), item))
        return ParsedPage(number, cards, page.last)

    def car_status(self, source_id: str) -> StatusAnswer:
        return self.client.car_status(source_id)

    def http_metadata(self) -> dict[str, float]:
        return {**self.client.stats.as_metadata(ENCAR), "encar_malformed_page_retries": self.client.malformed_retries}


class KBChachachaAdapter:
    source = KBCHACHACHA
    listing_endpoint = f"GET {KB_LIST_PATH}"
    sorted_by_modified = False  # KB shows no modification time
    status_checks_listed_cars = False  # the per-car JSON only says listed or not: no reservation
    status_fields = ("manufacturer", "model", "badge")  # the list has one title; the JSON has them apart

    def __init__(self, client: KBChachachaClient):
        self.client = client

    def fetch_page(self, number: int) -> ParsedPage:
        page = self.client.list_page(number)
        cards = [
            ParsedCard(c.key, c.record, c.error, {"html": c.html} if c.error else None) for c in page.cards
        ]
        return ParsedPage(number, cards, page.last)

    def car_status(self, source_id: str) -> StatusAnswer:
        return self.client.car_status(source_id)

    def http_metadata(self) -> dict[str, float]:
        return {
            **self.client.stats.as_metadata(KBCHACHACHA),
            "kbchachacha_session_refreshes": self.client.session_refreshes,
            "kbchachacha_malformed_page_retries": self.client.malformed_retries,
        }


def _status_totals_metadata(totals: dict[str, int]) -> dict[str, int]:
    return {f"{status}_cars": totals.get(status, 0) for status in SALE_STATUSES}


@dataclass
class CarsSyncReport(SyncReport):
    """What one listing sync did (``entity``: the vendor, ``encar`` or ``kbchachacha``)."""

    pages_fetched: int = 0
    reject_reread_pages: int = 0  # incremental pages past the head read to meet open rejects again
    listing_complete: bool = False
    leavers: int = field(default=0, metadata=metric("leavers_checked"))
    left_head: int = field(default=0, metadata=metric("left_head_checked"))
    status_checked: int = 0
    status_check_errors: int = 0
    sold_answers: int = 0  # per-car answers that said sold (404, not advertised, empty list)
    sold_but_listed: int = 0  # of those, cars this run's listing showed: never marked sold
    canaries_checked: int = 0  # listed cars asked to tell a broken endpoint from real sales
    newly_sold: int = 0
    newly_reserved: int = 0
    reactivated: int = 0
    unarchived: int = 0
    last_seen_refreshed: int = 0
    car_fields_filled: int = 0  # cars whose structured columns a per-car answer (re)wrote
    status_totals: dict[str, int] = field(default_factory=dict, metadata=metric(render=_status_totals_metadata))
    duration_seconds: float = 0.0
    status_samples: list[str] = field(default_factory=list)

    @property
    def status_changed(self) -> int:
        return self.newly_sold + self.newly_reserved + self.reactivated


@dataclass
class Known:
    sale_status: str
    sold_at: dt.datetime | None
    vendor_modified_at: dt.datetime | None = None


def load_known(warehouse: Warehouse, source: str) -> dict[str, Known]:
    cars = warehouse.table(CARS_TABLE)
    query = sa.select(cars.c.source_id, cars.c.sale_status, cars.c.sold_at, cars.c.vendor_modified_at).where(
        cars.c.source == source
    )
    with warehouse.engine.connect() as conn:
        return {
            r.source_id: Known(r.sale_status, r.sold_at, as_utc(r.vendor_modified_at)) for r in conn.execute(query)
        }


# Written only when a listing inserts a car: the listing never changes the sale status of a
# car already in ``cars`` (only the per-car call does), so a stale page cannot undo a sale.
LISTING_INSERT_ONLY = ("first_seen_at", "sale_status", "sold_at")


def listing_row(record: CarRecord, now: dt.datetime) -> dict[str, Any]:
    """The ``cars`` row a listing card gives: a new car is ``active``; for a car already in
    ``cars`` the ``LISTING_INSERT_ONLY`` columns are left as they are (a sold car shown again
    is re-asked through the per-car call)."""
    return {**record.as_row(), "sale_status": "active", "sold_at": None, "first_seen_at": now, "last_seen_at": now}


def sync_entity(
    adapter: VendorAdapter,
    warehouse: Warehouse,
    *,
    mode: str,
    max_pages: int,
    incremental_pages: int,
    status_checks_per_run: int,
    mass_sold_min_answers: int = MASS_SOLD_MIN_ANSWERS,
    listing_batch_rows: int = DEFAULT_LISTING_BATCH_ROWS,
    run_id: str | None = None,
    logger: Any = log,
) -> CarsSyncReport:
    """Sync one vendor's listing into ``cars`` and confirm sales per car; returns the report."""
    _check_options(mode, max_pages, incremental_pages, status_checks_per_run, mass_sold_min_answers)
    if listing_batch_rows < 1:
        raise ValueError(f"listing_batch_rows must be >= 1, got {listing_batch_rows}")
    source = adapter.source
    started = time.monotonic()
    report = CarsSyncReport(entity=source, mode=mode)
    known = load_known(warehouse, source)
    listing = ListingRun(
        adapter, warehouse, report, known, incremental_pages=incremental_pages, run_id=run_id,
        listing_batch_rows=listing_batch_rows, open_reject_keys=OpenRejectKeys.read(warehouse, SOURCE, source),
    )
    if mode == "full":
        listing.read(max_pages)
    else:  # reads on past the head until the open rejects it asks for were shown again
        rereads = [r.key for r in open_rejects(warehouse, SOURCE, source) if not r.key.startswith(UNKEYED_PREFIX)]
        listing.read(min(incremental_pages, max_pages), reread=rereads, reread_page_limit=max_pages)
    # A rejected record a complete listing no longer shows has nothing left to land (an
    # unkeyed one never reads clean under its key): its reject is dropped.
    if report.listing_complete:
        _clear_gone_rejects(warehouse, source, listing.seen_set | listing.rejected_keys)
    report.last_seen_refreshed = _refresh_last_seen(
        warehouse, source, [k for k in listing.seen if k not in listing.inserted], listing.now
    )

    candidates = _status_candidates(listing, status_checks_per_run)
    listed_unsold = [k for k in listing.seen if known[k].sale_status != "sold"]
    status_round = StatusRound(
        adapter, warehouse, known, report, listed=listing.seen_set,
        canaries=_spread(listed_unsold, MASS_SOLD_CANARIES), min_answers=mass_sold_min_answers, logger=logger,
    )
    _check_statuses(status_round, candidates)
    with warehouse.transaction() as tx:
        tx.set_cursor(SOURCE, f"{source}_head", listing.head, run_id)

    report.status_totals = _status_totals(warehouse, source)
    report.duration_seconds = time.monotonic() - started
    return report


def _check_options(
    mode: str, max_pages: int, incremental_pages: int, status_checks_per_run: int, mass_sold_min_answers: int
) -> None:
    if mode not in ("incremental", "full"):
        raise ValueError(f"mode must be 'incremental' or 'full', got {mode!r}")
    if max_pages < 1 or incremental_pages < 1 or status_checks_per_run < 0 or mass_sold_min_answers < 1:
        raise ValueError(
            "max_pages, incremental_pages and mass_sold_min_answers must be >= 1, status_checks_per_run >= 0"
        )


@dataclass
class ListingRun:
    """The listing phase of one run: reads pages, lands them whole, about
    ``listing_batch_rows`` cars per transaction, and keeps what the listing showed for the
    status round."""

    adapter: VendorAdapter
    warehouse: Warehouse
    report: CarsSyncReport
    known: dict[str, Known]
    incremental_pages: int = 1
    run_id: str | None = None
    now: dt.datetime = field(default_factory=utcnow)
    seen: list[str] = field(default_factory=list)  # listed keys, in listing order
    seen_set: set[str] = field(default_factory=set)
    head: list[str] = field(default_factory=list)  # cars on the first incremental_pages pages
    relisted: list[str] = field(default_factory=list)  # known sold, shown again
    rejected_keys: set[str] = field(default_factory=set)
    oldest_modified: dt.datetime | None = None  # the oldest vendor_modified_at this run read
    listing_batch_rows: int = DEFAULT_LISTING_BATCH_ROWS
    open_reject_keys: OpenRejectKeys = field(default_factory=OpenRejectKeys)
    inserted: set[str] = field(default_factory=set)  # listed keys in neither table before: their last_seen_at is now
    pending: list[ParsedPage] = field(default_factory=list)  # read, not landed yet

    def read(self, page_limit: int, *, reread: list[str] = (), reread_page_limit: int = 0) -> None:
        """Pages 1 to ``page_limit``; then on, up to ``reread_page_limit`` pages, while a key
        of ``reread`` (open rejects of earlier runs) was not shown again."""
        adapter, wanted = self.adapter, set(reread)
        max_pages = max(page_limit, reread_page_limit if wanted else 0)
        pages = paginate(
            adapter.fetch_page, keys=lambda p: [c.key for c in p.cards], is_last=lambda p: p.last,
            max_pages=max_pages, vendor=adapter.source, endpoint=adapter.listing_endpoint,
        )
        depth = READ_AHEAD_PAGES if max_pages == page_limit and page_limit > 1 else 0
        with read_ahead(pages, depth=depth) if depth else contextlib.nullcontext(pages) as pages:
            self._read_pages(pages, page_limit, wanted)

    def _read_pages(self, pages: Iterator[ParsedPage], page_limit: int, wanted: set[str]) -> None:
        try:
            for page in pages:
                self.report.pages_fetched += 1
                self.report.fetched += len(page.cards)
                self.pending.append(page)
                if sum(len(p.cards) for p in self.pending) >= self.listing_batch_rows:
                    self._land_pending()
                wanted.difference_update(c.key for c in page.cards)
                if page.number > page_limit:
                    self.report.reject_reread_pages += 1
                if page.last:
                    self.report.listing_complete = True
                elif page.number >= page_limit and not wanted:
                    break
        finally:  # the pages read before a failure land too, as when each landed on its own
            self._land_pending()

    def _land_pending(self) -> None:
        pages, self.pending = self.pending, []
        if pages:
            self._land(pages)

    def _land(self, pages: list[ParsedPage]) -> None:
        source, report = self.adapter.source, self.report
        with self.warehouse.transaction() as tx:
            # A key not in cars once its rows are locked is new or archived (and the archive
            # transaction that moved it has committed): only those are looked up in the archive.
            listed_keys = [c.key for page in pages for c in page.cards if c.record is not None]
            live = _lock_live_rows(tx, source, listed_keys)
            unlisted = [k for k in listed_keys if k not in live]
            restored = _restore_archived(tx, source, unlisted, self.known)
            report.unarchived += len(restored)
            self.inserted.update(k for k in unlisted if k not in restored)
            rows, clean_keys, bad = [], [], []
            for page in pages:
                page_rows, page_keys, page_bad = self._sort_cards(page)
                rows += page_rows
                clean_keys += page_keys
                bad += page_bad
            landing = land_batch(
                tx, CARS_TABLE, rows, source=SOURCE, entity=source, landed_keys=clean_keys,
                open_keys=self.open_reject_keys,
                rejects=[Reject(c.key, c.error or "unusable record", c.payload) for c in bad], run_id=self.run_id,
                upsert_options={
                    "compare_exclude": ("last_seen_at",), "now": self.now,
                    "insert_only": (*LISTING_INSERT_ONLY, *self.adapter.status_fields),
                },
            )
            report.counts += landing.counts
        self.rejected_keys.update(c.key for c in bad)
        for key in clean_keys:
            self.known.setdefault(key, Known("active", None))
        report.rejected += len(bad)
        report.add_reject_samples(f"{c.key}: {c.error}" for c in bad)

    def _sort_cards(self, page: ParsedPage) -> tuple[list[dict[str, Any]], list[str], list[ParsedCard]]:
        """The page's rows to upsert, their keys, and its unusable cards; notes what it showed."""
        rows, clean_keys, bad = [], [], []
        for card in page.cards:
            if card.record is None:
                bad.append(card)
                continue
            if card.key in self.seen_set:  # shown twice because offsets shifted while paging
                continue
            self.seen_set.add(card.key)
            self.seen.append(card.key)
            clean_keys.append(card.key)
            if page.number <= self.incremental_pages:
                self.head.append(card.key)
            modified = card.record.vendor_modified_at
            if self.adapter.sorted_by_modified and modified is not None:
                self.oldest_modified = modified if self.oldest_modified is None else min(self.oldest_modified, modified)
            current = self.known.get(card.key)
            if current is not None and current.sale_status == "sold":
                self.relisted.append(card.key)
            rows.append(listing_row(card.record, self.now))
        return rows, clean_keys, bad


def _status_candidates(listing: ListingRun, status_checks_per_run: int) -> list[str]:
    """Who is asked, in order: re-shown sold cars, cars that left the head of the list since
    the last run, leavers (every car a complete full listing did not show; otherwise, for
    Encar, the cars of the ModifiedDate window read that it did not show), then the
    round-robin over the stored active/reserved cars; its budget goes first to cars still
    missing a ``status_fields`` column (KB: new cars, listed or not)."""
    source, known, seen_set, report = listing.adapter.source, listing.known, listing.seen_set, listing.report
    previous_head = listing.warehouse.get_cursor(SOURCE, f"{source}_head") or []
    left_head = [k for k in previous_head if k not in seen_set and k in known and known[k].sale_status in UNSOLD]
    left_head_set = set(left_head)
    unshown = {k: v for k, v in known.items() if v.sale_status in UNSOLD and k not in seen_set}
    if report.mode == "full" and report.listing_complete:
        leavers = list(unshown)
    elif listing.oldest_modified is not None:
        oldest = listing.oldest_modified
        leavers = [k for k, v in unshown.items() if v.vendor_modified_at is not None and v.vendor_modified_at >= oldest]
    else:
        leavers = []
    leavers = [k for k in leavers if k not in left_head_set]
    report.left_head = len(left_head)
    report.leavers = len(leavers)
    candidates = list(dict.fromkeys([*listing.relisted, *left_head, *leavers]))
    # Cars missing a per-car field (KB: new cars) come first, listed or not: asking is how they get it.
    unstructured = _least_recently_checked(
        listing.warehouse, source, status_checks_per_run, exclude=set(candidates),
        missing=listing.adapter.status_fields,
    )
    candidates.extend(unstructured)
    # The round-robin covers every stored active/reserved car, listed or not, so a reservation
    # of a car the listing keeps showing is seen within ceil(cars / status_checks_per_run) runs.
    exclude = set(candidates) if listing.adapter.status_checks_listed_cars else set(candidates) | seen_set
    candidates.extend(
        _least_recently_checked(listing.warehouse, source, status_checks_per_run - len(unstructured), exclude=exclude)
    )
    return candidates


def _lock_live_rows(tx: WarehouseTransaction, source: str, keys: list[str]) -> set[str]:
    """Which of ``keys`` are in ``cars``, their rows locked until the page's transaction ends.

    The archive job moves a car (copy to ``cars_archive``, delete from ``cars``) in a
    transaction of its own, which a page must not look past: on Postgres this select waits
    for an archive transaction holding one of these rows, then finds the row gone and its
    archive copy committed, for :func:`_restore_archived`; an archive transaction that
    starts later passes the rows locked here (SKIP LOCKED) and leaves them for its next run.
    Locked in key order, so two overlapping runs lock shared keys in the same order. On
    SQLite no FOR UPDATE is rendered: the page's transaction holds the database's write lock
    from BEGIN (IMMEDIATE), so no archive transaction commits during it."""
    cars = tx.table(CARS_TABLE)
    live: set[str] = set()
    for matching in tx.among(cars.c.source_id, sorted(set(keys))):
        live.update(
            tx.execute(
                sa.select(cars.c.source_id)
                .where(cars.c.source == source, matching)
                .order_by(cars.c.source_id)
                .with_for_update()
            ).scalars()
        )
    return live


def _restore_archived(tx: WarehouseTransaction, source: str, keys: list[str], known: dict[str, Known]) -> set[str]:
    """Bring cars the listing shows again back from ``cars_archive`` into ``cars``, in the page's
    transaction, so a car is always in exactly one of the two tables (never both, never neither).

    A car archived as sold that reappears under the same id (relisted, or a sale that fell
    through) keeps its history (``first_seen_at``, ``sold_at``) and its ``sold`` status: the
    listing row then updates it, and the per-car call decides whether it is on sale again, as
    for any sold car the listing shows again. Returns the keys brought back."""
    if not keys:
        return set()
    cars, archive = tx.table(CARS_TABLE), tx.table(CARS_ARCHIVE_TABLE)
    columns = [archive.c[c.name] for c in cars.columns if c.name in archive.c]
    rows = [
        dict(r._mapping)
        for matching in tx.among(archive.c.source_id, keys)
        for r in tx.execute(sa.select(*columns).where(archive.c.source == source, matching))
    ]
    if not rows:
        return set()
    tx.upsert(CARS_TABLE, rows, stamp_column=None)
    for matching in tx.among(archive.c.source_id, [r["source_id"] for r in rows]):
        tx.execute(archive.delete().where(archive.c.source == source, matching))
    for row in rows:
        known[row["source_id"]] = Known(row["sale_status"], row["sold_at"])
    return {row["source_id"] for row in rows}


def _clear_gone_rejects(warehouse: Warehouse, source: str, shown: set[str]) -> int:
    rejects = warehouse.table("sync_rejects")
    with warehouse.transaction() as tx:
        keys = [
            k
            for (k,) in tx.execute(
                sa.select(rejects.c.record_key).where(rejects.c.source == SOURCE, rejects.c.entity == source)
            )
            if k not in shown
        ]
        return tx.resolve_rejects(SOURCE, source, keys)


def _refresh_last_seen(warehouse: Warehouse, source: str, keys: list[str], now: dt.datetime) -> int:
    """last_seen_at of unchanged cars, at most once per LAST_SEEN_RESOLUTION."""
    cars = warehouse.table(CARS_TABLE)
    cutoff = now - LAST_SEEN_RESOLUTION
    refreshed = 0
    with warehouse.transaction() as tx:
        for matching in tx.among(cars.c.source_id, keys):
            refreshed += tx.execute(
                cars.update()
                .where(cars.c.source == source, matching, cars.c.last_seen_at < cutoff)
                .values(last_seen_at=now)
            ).rowcount
    return refreshed


def _least_recently_checked(
    warehouse: Warehouse, source: str, limit: int, exclude: set[str], missing: tuple[str, ...] | None = None
) -> list[str]:
    """Up to ``limit`` active/reserved cars not in ``exclude``, least recently checked first;
    with ``missing``, only cars where one of those columns is NULL (none when it is empty)."""
    if limit <= 0 or missing == ():
        return []
    cars = warehouse.table(CARS_TABLE)
    only_missing = [sa.or_(*(cars.c[c].is_(None) for c in missing))] if missing else []
    query = (
        sa.select(cars.c.source_id)
        .where(cars.c.source == source, cars.c.sale_status.in_(UNSOLD), *only_missing)
        .order_by(sa.nullsfirst(cars.c.status_checked_at.asc()), cars.c.source_id)
        .limit(limit + len(exclude))
    )
    with warehouse.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(query)]
    return [i for i in ids if i not in exclude][:limit]


def _spread(items: list[str], count: int) -> list[str]:
    """Up to ``count`` items spread evenly over ``items`` (first, ..., last)."""
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / (count - 1) if count > 1 else 0
    return list(dict.fromkeys(items[round(i * step)] for i in range(count)))


Answer = tuple[str, StatusAnswer, dt.datetime]  # car, what the vendor said, when it was asked


@dataclass
class StatusRound:
    """One run's per-car questions: whom to ask, where answers go, and the guards' inputs."""

    adapter: VendorAdapter
    warehouse: Warehouse
    known: dict[str, Known]
    report: CarsSyncReport
    listed: set[str] = field(default_factory=set)  # shown by this run's listing: never marked sold
    canaries: list[str] = field(default_factory=list)  # listed cars to ask if most answers say sold
    min_answers: int = MASS_SOLD_MIN_ANSWERS  # the mass-sold guard applies from this many answers
    logger: Any = log

    @property
    def source(self) -> str:
        return self.adapter.source


def _check_statuses(status_round: StatusRound, candidates: list[str]) -> None:
    """Ask the vendor about each candidate and write what changed.

    ``active``/``reserved`` answers are written batch by batch (progress survives a
    failure). ``sold`` answers are held back until every candidate was asked, then pass two
    guards before any is written: a car this run's listing showed is never marked sold; and
    when at least ``min_answers`` answers came back and most say sold, the ``canaries`` are
    asked too: if most of them "are sold" as well, the run stops with :class:`MassSoldError`.
    A held-back car keeps its ``status_checked_at``, so it is asked again first next time."""
    report = status_round.report
    held_sold: list[Answer] = []
    for batch in chunked(candidates, STATUS_BATCH):
        answers = _ask(status_round, batch)
        now_written = []
        for answer in answers:
            if answer[1].status != "sold":
                now_written.append(answer)
            elif _may_mark_sold(status_round, answer):
                held_sold.append(answer)
        with status_round.warehouse.transaction() as tx:
            _write_answers(tx, status_round.source, now_written, status_round.known, report)
        report.status_checked += len(answers)
        _stop_if_mostly_malformed(status_round)

    answered = report.status_checked
    if report.sold_answers and answered >= status_round.min_answers and report.sold_answers * 2 > answered:
        _verify_per_car_endpoint(status_round)
    for batch in chunked(held_sold, STATUS_BATCH):
        with status_round.warehouse.transaction() as tx:
            _write_answers(tx, status_round.source, batch, status_round.known, report)


def _ask(status_round: StatusRound, source_ids) -> list[Answer]:
    """The vendor's answers for these cars; a malformed answer leaves its car as it is."""
    asked_at = utcnow()
    answers: list[Answer] = []
    for source_id in source_ids:
        try:
            answers.append((source_id, status_round.adapter.car_status(source_id), asked_at))
        except (RecordError, VendorResponseError) as exc:
            status_round.report.status_check_errors += 1
            status_round.logger.warning(f"{status_round.source} car {source_id}: status unknown ({exc}); left unchanged")
    return answers


def _may_mark_sold(status_round: StatusRound, answer: Answer) -> bool:
    """Counts a sold answer; False for a car this run's listing shows (never marked sold)."""
    source_id, status, _ = answer
    report = status_round.report
    report.sold_answers += 1
    if source_id in status_round.listed and status_round.known[source_id].sale_status != "sold":
        report.sold_but_listed += 1
        status_round.logger.warning(
            f"{status_round.source} car {source_id}: the per-car call says sold ({status.reason}) but this run's "
            "listing shows it; not marked sold"
        )
        return False
    return True


def _stop_if_mostly_malformed(status_round: StatusRound) -> None:
    report = status_round.report
    attempted = report.status_checked + report.status_check_errors
    if report.status_check_errors >= MAX_STATUS_ERRORS and report.status_check_errors * 2 > attempted:
        raise StatusCheckError(
            f"{status_round.source}: {report.status_check_errors} of {attempted} per-car status answers were "
            "malformed; stopping (the vendor may have changed its answer format). Active/reserved answers so far "
            "are saved; no car was marked sold by this run (sold answers are written only at the end)."
        )


def _verify_per_car_endpoint(status_round: StatusRound) -> None:
    """Most answers said sold: ask cars the listing shows. They are on sale, so if most of them
    "are sold" too the endpoint is lying and nothing may be marked sold."""
    report, canaries = status_round.report, status_round.canaries
    on_sale = 0
    for source_id in canaries:
        report.canaries_checked += 1
        try:
            if status_round.adapter.car_status(source_id).status != "sold":
                on_sale += 1
        except (RecordError, VendorResponseError):
            pass  # an unusable answer proves nothing either way
    summary = (
        f"{report.sold_answers} of {report.status_checked} per-car answers said sold; "
        f"{on_sale} of {len(canaries)} cars this run's listing shows answered as on sale"
    )
    if on_sale * 2 <= len(canaries) or not canaries:
        raise MassSoldError(
            f"{status_round.source}: {summary}. The vendor's per-car endpoint looks broken (outage or changed API), "
            "so these answers are not trusted: stopping before marking any car sold (nothing was marked sold by "
            "this run; the same cars are asked again next run)."
        )
    status_round.logger.warning(
        f"{status_round.source}: {summary}: the per-car endpoint works, so these sales are taken as real"
    )


def _write_answers(tx: WarehouseTransaction, source: str, answers: list[Answer], known, report) -> None:
    """Write per-car answers, each guarded in SQL rather than trusting this run's snapshot:
    the status changes only if the row still has another status, and only if no check newer
    than this answer landed meanwhile (an overlapping run), so a stale answer never undoes a
    newer one. ``sold_at`` is the time the sale was first confirmed. The structured columns an
    answer carries (``car_fields``) are written with it, only where they differ."""
    cars = tx.table(CARS_TABLE)
    for source_id, answer, asked_at in answers:
        if answer.car_fields:
            report.car_fields_filled += _write_car_fields(tx, cars, source, source_id, answer.car_fields, asked_at)
    changed = _write_statuses(tx, cars, source, answers)
    for source_id, answer, asked_at in answers:
        if source_id in changed:
            _note_status_change(report, known, source_id, answer, asked_at)
    by_time: dict[dt.datetime, list[str]] = {}
    for source_id, _, asked_at in answers:
        by_time.setdefault(asked_at, []).append(source_id)
    for asked_at, ids in by_time.items():
        for matching in tx.among(cars.c.source_id, ids):
            tx.execute(
                cars.update()
                .where(cars.c.source == source, matching, _no_newer_check(cars, asked_at))
                .values(status_checked_at=asked_at)
            )


def _write_statuses(tx: WarehouseTransaction, cars: sa.Table, source: str, answers: list[Answer]) -> set[str]:
    """The cars whose status the answers changed: one guarded UPDATE per status and asking time
    (a batch of answers shares its time), not one per car."""
    groups: dict[tuple[str, dt.datetime], list[str]] = {}
    for source_id, answer, asked_at in answers:
        groups.setdefault((answer.status, asked_at), []).append(source_id)
    changed: set[str] = set()
    for (status, asked_at), ids in groups.items():
        for matching in tx.among(cars.c.source_id, ids):
            changed.update(
                tx.execute(
                    cars.update()
                    .where(cars.c.source == source, matching, cars.c.sale_status != status, _no_newer_check(cars, asked_at))
                    .values(sale_status=status, sold_at=asked_at if status == "sold" else None, synced_at=asked_at)
                    .returning(cars.c.source_id)
                ).scalars()
            )
    return changed


def _note_status_change(report: CarsSyncReport, known, source_id: str, answer: StatusAnswer, asked_at) -> None:
    current = known.get(source_id) or Known("active", None)
    if answer.status == "sold":
        report.newly_sold += 1
    elif answer.status == "reserved":
        report.newly_reserved += 1
    else:
        report.reactivated += 1
    if len(report.status_samples) < 10:
        report.status_samples.append(f"{source_id}: {current.sale_status} -> {answer.status} ({answer.reason})")
    known[source_id] = Known(answer.status, asked_at if answer.status == "sold" else None, current.vendor_modified_at)


def _write_car_fields(
    tx: WarehouseTransaction, cars: sa.Table, source: str, source_id: str, values: dict[str, str], asked_at
) -> int:
    """1 if the car's structured columns changed to what the per-car answer says, else 0 (a
    re-check answering the same writes nothing)."""
    return tx.execute(
        cars.update()
        .where(
            cars.c.source == source,
            cars.c.source_id == source_id,
            _no_newer_check(cars, asked_at),
            sa.or_(*(cars.c[c].is_distinct_from(v) for c, v in values.items())),
        )
        .values(**values, synced_at=asked_at)
    ).rowcount


def _no_newer_check(cars: sa.Table, asked_at: dt.datetime):
    return sa.or_(cars.c.status_checked_at.is_(None), cars.c.status_checked_at <= asked_at)


def _status_totals(warehouse: Warehouse, source: str) -> dict[str, int]:
    cars = warehouse.table(CARS_TABLE)
    with warehouse.engine.connect() as conn:
        rows = conn.execute(
            sa.select(cars.c.sale_status, sa.func.count()).where(cars.c.source == source).group_by(cars.c.sale_status)
        )
        return {status: int(n) for status, n in rows}
