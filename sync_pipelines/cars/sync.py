"""One source's sync into ``cars``: read the listing, land it, confirm sales per car.

The listing says which cars are on sale and at what price; it never says a car is sold
(a car can drop off page 1 because another moved ahead, or be skipped when offsets shift
mid-paging). Sale status therefore only ever changes through the vendor's per-car call
(Encar vehicle detail, KB per-car JSON), asked for:

* in ``full`` mode, when the listing was read to its end: every active/reserved car the
  listing did not show ("leavers");
* otherwise, for a listing sorted by modification time (Encar, ``ModifiedDate`` desc):
  the known active/reserved cars whose stored ``vendor_modified_at`` falls inside the time
  window this run read (at or after the oldest ``ModifiedDate`` seen) but which the listing
  did not show: they left the list (sold) or moved (the detail tells which);
* in every mode: the cars that were on the first page(s) last run (``sync_state`` cursor
  ``cars``/``<source>_head``) and are nowhere in this run's listing (sold, or pushed down
  by others); cars known sold that the listing shows again; then up to
  ``status_checks_per_run`` stored active/reserved cars, least recently checked first
  (``status_checked_at``, round-robin), whether the listing showed them or not: Encar's list
  has no status field, so a reservation of a car it keeps showing only comes from the
  detail. (KB's per-car call only says listed or not, so its round-robin skips the cars the
  listing showed: ``VendorAdapter.status_checks_listed_cars``.)

A car archived as sold that a listing shows again is moved back from ``cars_archive``
(:func:`_restore_archived`) in the page's transaction, before the upsert. An archive job may
run during the sync: the page first locks its cars' rows in ``cars``
(:func:`_lock_live_rows`), which waits out an archive transaction holding one of them, and
looks in the archive for exactly the keys not in ``cars`` then, so a key is never in both
tables.

The listing writes ``sale_status``/``sold_at`` only when it inserts a car
(``LISTING_INSERT_ONLY``), so an overlapping run's page cannot undo a confirmed sale. Sold
answers are held back to the end of the run and guarded (:func:`_check_statuses`): a car the
listing showed is never marked sold, and when most answers say sold while cars the listing
shows "are sold" too, the run stops with :class:`MassSoldError`, nothing marked sold.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from sync_pipelines.cars.encar_client import EncarClient
from sync_pipelines.cars.kbchachacha_client import KBChachachaClient
from sync_pipelines.cars.models import (
    UNKEYED_PREFIX,
    CarRecord,
    RecordError,
    StatusAnswer,
    encar_record_key,
    parse_encar_item,
)
from sync_pipelines.cars.settings import (
    CARS_ARCHIVE_TABLE,
    CARS_TABLE,
    ENCAR,
    KBCHACHACHA,
    LAST_SEEN_RESOLUTION,
    MASS_SOLD_CANARIES,
    MASS_SOLD_MIN_ANSWERS,
    SOURCE,
)
from sync_pipelines.http_client import VendorResponseError
from sync_pipelines.warehouse import UpsertCounts, Warehouse, WarehouseTransaction, chunked, utcnow

MAX_STATUS_ERRORS = 5  # malformed per-car answers tolerated before a run stops (if most are bad)
STATUS_BATCH = 50  # status answers committed per transaction (progress survives a failure)


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
    # True when the listing is sorted newest-modified first and records carry
    # ``vendor_modified_at`` (Encar): the time window a run read then says which known cars
    # should have been shown.
    sorted_by_modified: bool
    # True when the per-car call can tell more about a car the listing shows than the
    # listing does (Encar: ``reserved``, which its list has no field for), so the round-robin
    # asks listed cars too. False when it only says listed or not (KB): asking a car the
    # listing just showed could only answer "on sale" (a "sold" is never written for it).
    status_checks_listed_cars: bool

    def fetch_page(self, number: int) -> ParsedPage: ...

    def car_status(self, source_id: str) -> StatusAnswer: ...

    def http_metadata(self) -> dict[str, float]: ...


class EncarAdapter:
    source = ENCAR
    sorted_by_modified = True
    status_checks_listed_cars = True  # the list has no status field: reserved only shows in the detail

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
    sorted_by_modified = False  # KB shows no modification time
    status_checks_listed_cars = False  # the per-car JSON only says listed or not: no reservation

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
        }


@dataclass
class SourceReport:
    source: str
    mode: str
    pages_fetched: int = 0
    fetched: int = 0
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    rejected: int = 0
    listing_complete: bool = False
    leavers: int = 0
    left_head: int = 0
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
    duration_seconds: float = 0.0
    status_totals: dict[str, int] = field(default_factory=dict)
    reject_samples: list[str] = field(default_factory=list)
    status_samples: list[str] = field(default_factory=list)

    @property
    def status_changed(self) -> int:
        return self.newly_sold + self.newly_reserved + self.reactivated

    def as_metadata(self) -> dict[str, float | int]:
        totals = {f"{s}_cars": self.status_totals.get(s, 0) for s in ("active", "reserved", "sold")}
        return {
            "pages_fetched": self.pages_fetched,
            "fetched": self.fetched,
            **self.counts.as_metadata(),
            "rejected": self.rejected,
            "listing_complete": int(self.listing_complete),
            "leavers_checked": self.leavers,
            "left_head_checked": self.left_head,
            "status_checked": self.status_checked,
            "status_check_errors": self.status_check_errors,
            "sold_answers": self.sold_answers,
            "sold_but_listed": self.sold_but_listed,
            "canaries_checked": self.canaries_checked,
            "newly_sold": self.newly_sold,
            "newly_reserved": self.newly_reserved,
            "reactivated": self.reactivated,
            "unarchived": self.unarchived,
            "last_seen_refreshed": self.last_seen_refreshed,
            **totals,
            "duration_seconds": round(self.duration_seconds, 3),
        }


@dataclass
class Known:
    sale_status: str
    sold_at: dt.datetime | None
    vendor_modified_at: dt.datetime | None = None


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite gives timestamps back without a zone; they are stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def load_known(wh: Warehouse, source: str) -> dict[str, Known]:
    cars = wh.table(CARS_TABLE)
    query = sa.select(cars.c.source_id, cars.c.sale_status, cars.c.sold_at, cars.c.vendor_modified_at).where(
        cars.c.source == source
    )
    with wh.engine.connect() as conn:
        return {
            r.source_id: Known(r.sale_status, r.sold_at, _aware(r.vendor_modified_at)) for r in conn.execute(query)
        }


# Written only when a listing inserts a car: the listing never changes the sale status of a
# car already in ``cars`` (only the per-car call does), so a run that read the listing before
# another run confirmed a sale cannot undo that sale with its page.
LISTING_INSERT_ONLY = ("first_seen_at", "sale_status", "sold_at")


def listing_row(record: CarRecord, now: dt.datetime) -> dict[str, Any]:
    """The ``cars`` row a listing card gives: a new car is ``active``; for a car already in
    ``cars`` the ``LISTING_INSERT_ONLY`` columns are left as they are (a sold car shown again
    is re-asked through the per-car call, see :func:`sync_source`)."""
    return {**record.as_row(), "sale_status": "active", "sold_at": None, "first_seen_at": now, "last_seen_at": now}


def sync_source(
    adapter: VendorAdapter,
    wh: Warehouse,
    *,
    mode: str,
    max_pages: int,
    incremental_pages: int,
    status_checks_per_run: int,
    mass_sold_min_answers: int = MASS_SOLD_MIN_ANSWERS,
    run_id: str | None = None,
    log: Any = None,
) -> SourceReport:
    if mode not in ("incremental", "full"):
        raise ValueError(f"mode must be 'incremental' or 'full', got {mode!r}")
    if max_pages < 1 or incremental_pages < 1 or status_checks_per_run < 0 or mass_sold_min_answers < 1:
        raise ValueError(
            "max_pages, incremental_pages and mass_sold_min_answers must be >= 1, status_checks_per_run >= 0"
        )
    source = adapter.source
    started = time.monotonic()
    now = utcnow()
    report = SourceReport(source=source, mode=mode)
    known = load_known(wh, source)
    seen: list[str] = []
    seen_set: set[str] = set()
    head: list[str] = []  # cars on the first incremental_pages pages: what the next incremental reads
    relisted: list[str] = []
    rejected_keys: set[str] = set()
    oldest_modified: dt.datetime | None = None  # the oldest vendor_modified_at this run read

    # 1. the listing, page by page, each page in one transaction
    page_limit = max_pages if mode == "full" else min(incremental_pages, max_pages)
    for number in range(1, page_limit + 1):
        page = adapter.fetch_page(number)
        report.pages_fetched += 1
        report.fetched += len(page.cards)
        with wh.transaction() as tx:
            # A key not in cars once its rows are locked is new or archived (and the archive
            # transaction that moved it has committed): only those are looked up in the archive.
            listed_keys = [c.key for c in page.cards if c.record is not None]
            live = _lock_live_rows(tx, source, listed_keys)
            report.unarchived += _restore_archived(tx, source, [k for k in listed_keys if k not in live], known)
            rows, clean_keys, bad = [], [], []
            for card in page.cards:
                if card.record is None:
                    bad.append(card)
                    continue
                if card.key in seen_set:  # shown twice because offsets shifted while paging
                    continue
                seen_set.add(card.key)
                seen.append(card.key)
                clean_keys.append(card.key)
                if number <= incremental_pages:
                    head.append(card.key)
                modified = card.record.vendor_modified_at
                if adapter.sorted_by_modified and modified is not None:
                    oldest_modified = modified if oldest_modified is None else min(oldest_modified, modified)
                current = known.get(card.key)
                if current is not None and current.sale_status == "sold":
                    relisted.append(card.key)
                rows.append(listing_row(card.record, now))
            report.counts += tx.upsert(
                CARS_TABLE, rows, compare_exclude=("last_seen_at",), insert_only=LISTING_INSERT_ONLY, now=now
            )
            for card in bad:
                tx.reject(SOURCE, source, card.key, card.error or "unusable record", card.payload, run_id)
                rejected_keys.add(card.key)
            tx.resolve_rejects(SOURCE, source, clean_keys)
        for key in clean_keys:
            known.setdefault(key, Known("active", None))
        report.rejected += len(bad)
        report.reject_samples.extend(f"{c.key}: {c.error}" for c in bad[: max(0, 10 - len(report.reject_samples))])
        if page.last:
            report.listing_complete = True
            break

    # A record without an id can never "read clean" under its key (once fixed it has an id):
    # its reject is dropped when a complete listing no longer shows it.
    if report.listing_complete and mode == "full":
        _clear_gone_unkeyed_rejects(wh, source, rejected_keys)

    # 2. last_seen_at of unchanged cars, at most once per LAST_SEEN_RESOLUTION
    report.last_seen_refreshed = _refresh_last_seen(wh, source, seen, now)

    # 3. per-car status: cars that left the head of the list since the last run, leavers
    # (every car a complete full listing did not show; otherwise, for Encar, the cars of the
    # ModifiedDate window this run read that it did not show), re-shown sold cars, then the
    # round-robin over the stored active/reserved cars
    unsold = ("active", "reserved")
    previous_head = wh.get_cursor(SOURCE, f"{source}_head") or []
    left_head = [k for k in previous_head if k not in seen_set and k in known and known[k].sale_status in unsold]
    left_head_set = set(left_head)
    if mode == "full" and report.listing_complete:
        leavers = [k for k, v in known.items() if v.sale_status in unsold and k not in seen_set]
    elif oldest_modified is not None:
        leavers = [
            k
            for k, v in known.items()
            if v.sale_status in unsold
            and k not in seen_set
            and v.vendor_modified_at is not None
            and v.vendor_modified_at >= oldest_modified
        ]
    else:
        leavers = []
    leavers = [k for k in leavers if k not in left_head_set]
    report.left_head = len(left_head)
    report.leavers = len(leavers)
    candidates = list(dict.fromkeys([*relisted, *left_head, *leavers]))
    # The round-robin covers every stored active/reserved car, listed or not, so a reservation
    # (or a sale that fell through) of a car the listing keeps showing is seen within
    # ceil(cars / status_checks_per_run) runs; a listed car is still never marked sold.
    round_robin_exclude = set(candidates) if adapter.status_checks_listed_cars else set(candidates) | seen_set
    candidates.extend(_least_recently_checked(wh, source, status_checks_per_run, exclude=round_robin_exclude))
    listed_unsold = [k for k in seen if known[k].sale_status != "sold"]
    _check_statuses(
        adapter, wh, source, candidates, known, report, log,
        listed=seen_set, canaries=_spread(listed_unsold, MASS_SOLD_CANARIES), min_answers=mass_sold_min_answers,
    )
    with wh.transaction() as tx:
        tx.set_cursor(SOURCE, f"{source}_head", head, run_id)

    report.status_totals = _status_totals(wh, source)
    report.duration_seconds = time.monotonic() - started
    return report


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
    for chunk in chunked(sorted(set(keys))):
        live.update(
            tx.execute(
                sa.select(cars.c.source_id)
                .where(cars.c.source == source, cars.c.source_id.in_(chunk))
                .order_by(cars.c.source_id)
                .with_for_update()
            ).scalars()
        )
    return live


def _restore_archived(tx: WarehouseTransaction, source: str, keys: list[str], known: dict[str, Known]) -> int:
    """Bring cars the listing shows again back from ``cars_archive`` into ``cars``, in the page's
    transaction, so a car is always in exactly one of the two tables (never both, never neither).

    A car archived as sold that reappears under the same id (relisted, or a sale that fell
    through) keeps its history (``first_seen_at``, ``sold_at``) and its ``sold`` status: the
    listing row then updates it, and the per-car call decides whether it is on sale again, as
    for any sold car the listing shows again."""
    if not keys:
        return 0
    cars, archive = tx.table(CARS_TABLE), tx.table(CARS_ARCHIVE_TABLE)
    columns = [archive.c[c.name] for c in cars.columns if c.name in archive.c]
    rows = [
        dict(r._mapping)
        for r in tx.execute(sa.select(*columns).where(archive.c.source == source, archive.c.source_id.in_(keys)))
    ]
    if not rows:
        return 0
    tx.upsert(CARS_TABLE, rows, stamp_column=None)
    restored = [r["source_id"] for r in rows]
    tx.execute(archive.delete().where(archive.c.source == source, archive.c.source_id.in_(restored)))
    for row in rows:
        known[row["source_id"]] = Known(row["sale_status"], row["sold_at"])
    return len(rows)


def _clear_gone_unkeyed_rejects(wh: Warehouse, source: str, still_rejected: set[str]) -> int:
    rejects = wh.table("sync_rejects")
    with wh.transaction() as tx:
        keys = [
            k
            for (k,) in tx.execute(
                sa.select(rejects.c.record_key).where(
                    rejects.c.source == SOURCE,
                    rejects.c.entity == source,
                    rejects.c.record_key.startswith(UNKEYED_PREFIX, autoescape=True),
                )
            )
            if k not in still_rejected
        ]
        return tx.resolve_rejects(SOURCE, source, keys)


def _refresh_last_seen(wh: Warehouse, source: str, keys: list[str], now: dt.datetime) -> int:
    cars = wh.table(CARS_TABLE)
    cutoff = now - LAST_SEEN_RESOLUTION
    refreshed = 0
    with wh.transaction() as tx:
        for chunk in chunked(keys):
            refreshed += tx.execute(
                cars.update()
                .where(cars.c.source == source, cars.c.source_id.in_(chunk), cars.c.last_seen_at < cutoff)
                .values(last_seen_at=now)
            ).rowcount
    return refreshed


def _least_recently_checked(wh: Warehouse, source: str, limit: int, exclude: set[str]) -> list[str]:
    if limit <= 0:
        return []
    cars = wh.table(CARS_TABLE)
    query = (
        sa.select(cars.c.source_id)
        .where(cars.c.source == source, cars.c.sale_status.in_(("active", "reserved")))
        .order_by(sa.nullsfirst(cars.c.status_checked_at.asc()), cars.c.source_id)
        .limit(limit + len(exclude))
    )
    with wh.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(query)]
    return [i for i in ids if i not in exclude][:limit]


def _spread(items: list[str], count: int) -> list[str]:
    """Up to ``count`` items spread evenly over ``items`` (first, ..., last)."""
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / (count - 1) if count > 1 else 0
    return list(dict.fromkeys(items[round(i * step)] for i in range(count)))


Answer = tuple[str, StatusAnswer, dt.datetime]  # car, what the vendor said, when it was asked


def _check_statuses(adapter, wh, source, candidates, known, report, log, *, listed, canaries, min_answers) -> None:
    """Ask the vendor about each candidate and write what changed.

    ``active``/``reserved`` answers are written batch by batch (progress survives a
    failure). ``sold`` answers are held back until every candidate was asked, then pass two
    guards before any is written: a car this run's listing showed is never marked sold; and
    when at least ``min_answers`` answers came back and most say sold, cars the listing
    shows (``canaries``) are asked too: if most of them "are sold" as well, the per-car
    endpoint is broken and the run stops with :class:`MassSoldError`, nothing marked sold.
    A held-back car keeps its ``status_checked_at``, so a stopped run's cars are asked
    again first next time."""
    held_sold: list[Answer] = []
    for batch in chunked(candidates, STATUS_BATCH):
        asked_at = utcnow()
        answers: list[Answer] = []
        for source_id in batch:
            try:
                answers.append((source_id, adapter.car_status(source_id), asked_at))
            except (RecordError, VendorResponseError) as exc:  # a malformed answer: leave the car as it is
                report.status_check_errors += 1
                if log is not None:
                    log.warning(f"{source} car {source_id}: status unknown ({exc}); left unchanged")
        now_written = []
        for source_id, answer, when in answers:
            if answer.status != "sold":
                now_written.append((source_id, answer, when))
                continue
            report.sold_answers += 1
            if source_id in listed and known[source_id].sale_status != "sold":
                report.sold_but_listed += 1
                if log is not None:
                    log.warning(
                        f"{source} car {source_id}: the per-car call says sold ({answer.reason}) but this run's "
                        "listing shows it; not marked sold"
                    )
                continue
            held_sold.append((source_id, answer, when))
        with wh.transaction() as tx:
            _write_answers(tx, source, now_written, known, report)
        report.status_checked += len(answers)
        attempted = report.status_checked + report.status_check_errors
        if report.status_check_errors >= MAX_STATUS_ERRORS and report.status_check_errors * 2 > attempted:
            raise StatusCheckError(
                f"{source}: {report.status_check_errors} of {attempted} per-car status answers were malformed; "
                "stopping (the vendor may have changed its answer format). Active/reserved answers so far are "
                "saved; no car was marked sold by this run (sold answers are written only at the end)."
            )

    answered = report.status_checked
    if report.sold_answers and answered >= min_answers and report.sold_answers * 2 > answered:
        _verify_per_car_endpoint(adapter, source, canaries, report, log)
    for batch in chunked(held_sold, STATUS_BATCH):
        with wh.transaction() as tx:
            _write_answers(tx, source, batch, known, report)


def _verify_per_car_endpoint(adapter, source, canaries, report, log) -> None:
    """Most answers said sold: ask cars the listing shows. They are on sale, so if most of them
    "are sold" too the endpoint is lying and nothing may be marked sold."""
    on_sale = 0
    for source_id in canaries:
        report.canaries_checked += 1
        try:
            if adapter.car_status(source_id).status != "sold":
                on_sale += 1
        except (RecordError, VendorResponseError):
            pass  # an unusable answer proves nothing either way
    summary = (
        f"{report.sold_answers} of {report.status_checked} per-car answers said sold; "
        f"{on_sale} of {len(canaries)} cars this run's listing shows answered as on sale"
    )
    if on_sale * 2 <= len(canaries) or not canaries:
        raise MassSoldError(
            f"{source}: {summary}. The vendor's per-car endpoint looks broken (outage or changed API), so "
            "these answers are not trusted: stopping before marking any car sold (nothing was marked sold by "
            "this run; the same cars are asked again next run)."
        )
    if log is not None:
        log.warning(f"{source}: {summary}: the per-car endpoint works, so these sales are taken as real")


def _write_answers(tx: WarehouseTransaction, source: str, answers: list[Answer], known, report) -> None:
    """Write per-car answers, each guarded in SQL rather than trusting this run's snapshot:
    the status changes only if the row still has another status, and only if no check newer
    than this answer landed meanwhile (an overlapping run), so a stale answer never undoes a
    newer one. ``sold_at`` is the time the sale was first confirmed."""
    cars = tx.table(CARS_TABLE)
    for source_id, answer, asked_at in answers:
        changed = tx.execute(
            cars.update()
            .where(
                cars.c.source == source,
                cars.c.source_id == source_id,
                cars.c.sale_status != answer.status,
                _no_newer_check(cars, asked_at),
            )
            .values(
                sale_status=answer.status,
                sold_at=asked_at if answer.status == "sold" else None,
                synced_at=asked_at,
            )
        ).rowcount
        if not changed:
            continue
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
    by_time: dict[dt.datetime, list[str]] = {}
    for source_id, _, asked_at in answers:
        by_time.setdefault(asked_at, []).append(source_id)
    for asked_at, ids in by_time.items():
        for chunk in chunked(ids):
            tx.execute(
                cars.update()
                .where(cars.c.source == source, cars.c.source_id.in_(chunk), _no_newer_check(cars, asked_at))
                .values(status_checked_at=asked_at)
            )


def _no_newer_check(cars: sa.Table, asked_at: dt.datetime):
    return sa.or_(cars.c.status_checked_at.is_(None), cars.c.status_checked_at <= asked_at)


def _status_totals(wh: Warehouse, source: str) -> dict[str, int]:
    cars = wh.table(CARS_TABLE)
    with wh.engine.connect() as conn:
        rows = conn.execute(
            sa.select(cars.c.sale_status, sa.func.count()).where(cars.c.source == source).group_by(cars.c.sale_status)
        )
        return {status: int(n) for status, n in rows}
