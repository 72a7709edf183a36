"""Golioth sync logic, free of Dagster: devices, telemetry pulls and the webhook inbox drain.

Every route lands points through :func:`store_points` (insert-if-new on device, ts, path):
a point already stored is a duplicate, left as it was, so re-runs write nothing.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sync_pipelines.golioth import integrations as store
from sync_pipelines.golioth.client import GoliothClient, read_api_key, rfc3339
from sync_pipelines.golioth.integrations import Integration
from sync_pipelines.golioth.models import (
    Point,
    PointError,
    device_row,
    parse_time,
    points_from_event,
    points_from_stream_record,
    telemetry_row,
)
from sync_pipelines.golioth.settings import (
    CURSOR_ENTITY,
    DEFAULT_OVERLAP,
    DEVICES_TABLE,
    INBOX_TABLE,
    SOURCE,
    TELEMETRY_TABLE,
)
from sync_pipelines.http_client import VendorHTTPError
from sync_pipelines.kit import (
    REREAD_REJECTS_PER_RUN,
    OpenReject,
    Reject,
    SyncReport,
    land_batch,
    metric,
    open_rejects,
    read_ahead,
)
from sync_pipelines.retries import is_transient
from sync_pipelines.warehouse import UpsertCounts, Warehouse, WarehouseTransaction, chunked, utcnow

# How far past now the live pull reads: device clocks that run ahead (the cursor stays at now).
FUTURE_ALLOWANCE = dt.timedelta(hours=1)
# A stream reject's window reaches just past the next readable record (same-time records).
REREAD_MARGIN = dt.timedelta(milliseconds=1)

ClientFactory = Callable[[Integration], GoliothClient]


def _lag_seconds(newest: dt.datetime | None) -> float:
    return round((utcnow() - newest).total_seconds(), 3) if newest else -1.0


@dataclass
class GoliothReport(SyncReport):
    """What one run did over its integrations; run metadata comes from the fields (kit)."""

    integrations: list[str] = field(default_factory=list, metadata=metric(render=len))
    failed: dict[str, str] = field(default_factory=dict, metadata=metric("integrations_failed", render=len))
    errors: dict[str, Exception] = field(default_factory=dict)  # the exceptions behind `failed`
    # the devices' upsert counts (the points have their own counters below)
    counts: UpsertCounts = field(default_factory=UpsertCounts, metadata=metric(render=lambda c: c.as_metadata("devices")))
    devices_seen: int = 0
    devices_online: int = 0
    devices_deleted: int = 0
    points_pulled: int = 0  # points read (pulled, or drained from the inbox)
    points_inserted: int = 0
    duplicates: int = field(default=0, metadata=metric("duplicates_dropped"))
    newest_point: dt.datetime | None = field(default=None, metadata=metric("newest_point_lag_seconds", render=_lag_seconds))
    http_requests: int = 0
    rejects_reread: int = 0  # open stream rejects whose window was read again
    rejects_resolved: int = 0  # of those, read clean this time: landed, reject removed

    def add_points(self, stored: tuple[int, int], newest: dt.datetime | None) -> None:
        self.points_inserted += stored[0]
        self.duplicates += stored[1]
        if newest and (self.newest_point is None or newest > self.newest_point):
            self.newest_point = newest


def client_for(integration: Integration) -> GoliothClient:
    """The integration's client; its key from the variable it names (a clear error if unset)."""
    key = read_api_key(integration.api_key_env, integration.id)
    return GoliothClient(project_id=integration.project_id, api_key=key, api_key_env=integration.api_key_env)


# -- points ------------------------------------------------------------------------------------


def store_points(tx: WarehouseTransaction, rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Insert telemetry rows whose point is new; returns (inserted, duplicates). The first
    row of a point within ``rows`` wins, as an earlier route's row in the table does."""
    first: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        first.setdefault((row["device_id"], row["ts"], row["path"]), row)
    if not first:
        return 0, len(rows)
    # Every column insert-only: the upsert helper inserts the new points only, by COPY (an
    # executemany INSERT .. ON CONFLICT DO NOTHING was most of a backfill's time).
    columns = [c for c in next(iter(first.values())) if c not in ("device_id", "ts", "path")]
    counts = tx.upsert(TELEMETRY_TABLE, list(first.values()), insert_only=columns, stamp_column="synced_at")
    return counts.inserted, len(rows) - counts.inserted


# -- devices -----------------------------------------------------------------------------------


def matches_filter(device: dict[str, Any], device_filter: dict[str, Any]) -> bool:
    tags = device_filter.get("tags") or []
    if tags and not set(tags) & set(device.get("tagIds") or []):
        return False
    pattern = device_filter.get("name_pattern")
    return not pattern or fnmatch.fnmatchcase(str(device.get("name") or ""), pattern)


def sync_devices(warehouse: Warehouse, integration: Integration, client: GoliothClient,
                 report: GoliothReport) -> list[dict]:
    """Upsert the project's (filtered) devices; mark the ones gone from Golioth. Returns them."""
    now = utcnow()
    devices, rows, rejects = [], [], []
    for device in (d for d in client.devices() if matches_filter(d, integration.device_filter)):
        try:
            rows.append(device_row(device, integration_id=integration.id, project_id=integration.project_id, now=now))
            devices.append(device)
        except PointError as exc:
            rejects.append(Reject(f"{integration.id}/{device.get('id')}", str(exc), device))
    with warehouse.transaction() as tx:
        landing = land_batch(tx, DEVICES_TABLE, rows, source=SOURCE, entity="devices", rejects=rejects,
                             landed_keys=[f"{integration.id}/{r['device_id']}" for r in rows],
                             upsert_options={"insert_only": ("first_seen_at",)})
        table = tx.table(DEVICES_TABLE)
        gone = (table.update()
                .where(table.c.integration_id == integration.id, table.c.deleted_at.is_(None),
                       table.c.device_id.not_in([r["device_id"] for r in rows] or [""]))
                .values(deleted_at=now, online=False))
        report.devices_deleted += tx.execute(gone).rowcount
    report.counts += landing.counts
    report.rejected += landing.rejected
    report.devices_seen += len(rows)
    report.devices_online += sum(1 for r in rows if r["online"])
    return devices


# -- pulls -------------------------------------------------------------------------------------


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def pull_points(
    warehouse: Warehouse, integration: Integration, client: GoliothClient, devices: Iterable[dict],
    window: tuple[dt.datetime, dt.datetime], report: GoliothReport,
) -> None:
    """Pull every device's stream over ``window`` and store it, a transaction per batch of points."""
    start, end = window
    for device in devices:
        last = _as_utc(device_row(device, integration_id=integration.id, project_id=integration.project_id,
                                  now=end)["last_seen"])
        if last is not None and last < start - DEFAULT_OVERLAP:
            continue  # nothing reported since the window opened: no stream call
        try:
            # The next batch's pages are read while this one is written (see kit.readahead).
            with read_ahead(_read_stream(integration, client, device["id"], (start, end))) as batches:
                for rows, rejects, newest in batches:
                    report.points_pulled += len(rows)
                    with warehouse.transaction() as tx:
                        report.add_points(store_points(tx, rows), newest)
                        for reject in rejects:
                            tx.reject(SOURCE, "telemetry", reject.key, reject.reason, reject.payload)
                    report.rejected += len(rejects)
        except VendorHTTPError as exc:
            if exc.status != 404:
                raise
            continue  # deleted since the device list was read: the next device sync marks it


# Points per transaction: memory stays flat however long a device's history (points are
# insert-if-new, so a batch committed before a failure is simply a duplicate next time).
STREAM_BATCH_POINTS = 5_000


def _read_stream(integration: Integration, client: GoliothClient, device_id: str,
                 window: tuple[dt.datetime, dt.datetime]) -> Iterator[tuple[list[dict], list[Reject], dt.datetime | None]]:
    """One device's stream over ``window`` in batches: rows, unreadable records, newest point.

    An unreadable record's reject keeps the window it lies in (from the readable record
    before it to the one after it, the stream being oldest first) for :func:`reread_rejects`."""
    rows, rejects, newest = [], [], None
    lower, unreadable = window[0], []
    for record in client.stream(device_id, *window):
        try:
            points = points_from_stream_record(record, device_id)
        except PointError as exc:
            unreadable.append((record, str(exc)))
            continue
        rows.extend(_rows(points, integration.id, integration.project_id, "pull"))
        newest = _newest(newest, points)
        when = _record_time(record)
        if when is not None:
            rejects.extend(_stream_reject(device_id, r, why, (lower, when + REREAD_MARGIN)) for r, why in unreadable)
            unreadable, lower = [], when
        if len(rows) >= STREAM_BATCH_POINTS:
            yield rows, rejects, newest
            rows, rejects, newest = [], [], None
    rejects.extend(_stream_reject(device_id, r, why, (lower, window[1])) for r, why in unreadable)
    if rows or rejects:
        yield rows, rejects, newest


def _record_time(record: Any) -> dt.datetime | None:
    try:
        return parse_time(record.get("time"))
    except (PointError, ValueError, TypeError, AttributeError):
        return None


def _stream_reject(device_id: str, record: Any, reason: str, window: tuple[dt.datetime, dt.datetime]) -> Reject:
    """Keyed by the record's time, or, when that is unreadable, by the readable time before it
    (stable: a re-read of the window starts there)."""
    when = record.get("time") if isinstance(record, dict) else "?"
    key = f"{device_id}@{when}" if _record_time(record) else f"{device_id}@{str(when)[:80]} after {rfc3339(window[0])}"
    reread = {"device_id": device_id, "start": rfc3339(window[0]), "end": rfc3339(window[1])}
    return Reject(key, reason, {"record": record, "reread": reread})


def reread_rejects(warehouse: Warehouse, integration: Integration, client: GoliothClient, devices: Iterable[dict],
                   report: GoliothReport, *, seen_before: dt.datetime, limit: int = REREAD_REJECTS_PER_RUN) -> None:
    """Read the window of up to ``limit`` open stream rejects of these devices, last seen
    before ``seen_before`` (by an earlier run), again, least recently seen first: a record
    read clean lands and its reject goes; one still bad is set aside again. The live cursor
    stays where it is."""
    device_ids = {d["id"] for d in devices}
    due = [r for r in open_rejects(warehouse, SOURCE, "telemetry", limit=limit * 10)
           if _reread_device(r) in device_ids and r.last_seen_at < seen_before]
    for reject in due[:limit]:
        reread = reject.payload["reread"]
        window = (parse_time(reread["start"]), parse_time(reread["end"]))
        still_bad: set[str] = set()
        try:
            for rows, rejects, newest in _read_stream(integration, client, reread["device_id"], window):
                report.points_pulled += len(rows)
                with warehouse.transaction() as tx:
                    report.add_points(store_points(tx, rows), newest)
                    for again in rejects:
                        tx.reject(SOURCE, "telemetry", again.key, again.reason, again.payload)
                still_bad.update(r.key for r in rejects)
        except VendorHTTPError as exc:
            if exc.status != 404:  # a 404: the device is gone, and its stream with it
                raise
        if reject.key not in still_bad:
            with warehouse.transaction() as tx:
                report.rejects_resolved += tx.resolve_rejects(SOURCE, "telemetry", [reject.key])
        report.rejects_reread += 1


def _reread_device(reject: OpenReject) -> str | None:
    """The device of a stream reject that keeps its window (older ones do not)."""
    reread = reject.payload.get("reread") if isinstance(reject.payload, dict) else None
    return reread.get("device_id") if isinstance(reread, dict) else None


def _rows(points: list[Point], integration_id: str | None, project_id: str, via: str) -> list[dict[str, Any]]:
    now = utcnow()
    return [telemetry_row(p, via=via, integration_id=integration_id, project_id=project_id, received_at=now)
            for p in points]


def _newest(newest: dt.datetime | None, points: list[Point]) -> dt.datetime | None:
    for point in points:
        if newest is None or point.ts > newest:
            newest = point.ts
    return newest


def cursor_entity(integration_id: str) -> str:
    return CURSOR_ENTITY.format(integration_id=integration_id)


def live_pull(warehouse: Warehouse, integration: Integration, client: GoliothClient, report: GoliothReport,
              *, initial_lookback: dt.timedelta = dt.timedelta(days=1), run_id: str | None = None) -> dt.datetime:
    """Devices, then telemetry from the cursor (minus the overlap) on; the cursor moves to the
    newest point seen (at most the pull's start) only after every device's points are
    committed, so a pull that finds nothing new writes nothing. Returns the cursor.

    The stream is read up to :data:`FUTURE_ALLOWANCE` past now: a device whose clock runs
    ahead stamps points "in the future", and they are stored now rather than one run later."""
    end = utcnow()
    raw = warehouse.get_cursor(SOURCE, cursor_entity(integration.id))
    cursor = dt.datetime.fromisoformat(raw) if raw else None
    start = cursor - DEFAULT_OVERLAP if cursor else end - initial_lookback
    devices = sync_devices(warehouse, integration, client, report)
    earlier, report.newest_point = report.newest_point, None  # this integration's newest only
    pull_points(warehouse, integration, client, devices, (start, end + FUTURE_ALLOWANCE), report)
    reread_rejects(warehouse, integration, client, devices, report, seen_before=end)
    seen = report.newest_point
    report.newest_point = max(t for t in (earlier, seen) if t) if (earlier or seen) else None
    # A bookmark, never past the pull's start (a device clock running ahead) nor backwards.
    newest = min(seen, end) if seen else None
    moved = max(t for t in (cursor, newest) if t) if (cursor or newest) else end
    if moved != cursor:
        with warehouse.transaction() as tx:
            tx.set_cursor(SOURCE, cursor_entity(integration.id), moved.isoformat(), run_id=run_id)
    return moved


def backfill(warehouse: Warehouse, integration: Integration, client: GoliothClient,
             windows: list[tuple[dt.datetime, dt.datetime]], report: GoliothReport) -> None:
    """Pull historical windows (one device list for all); never reads or moves the live cursor."""
    devices = [d for d in client.devices() if matches_filter(d, integration.device_filter)]
    report.devices_seen += len(devices)
    for window in windows:
        pull_points(warehouse, integration, client, devices, window, report)


def for_each_integration(warehouse: Warehouse, chosen: list[Integration], work: Callable[[Integration, GoliothClient], None],
                         report: GoliothReport, make_client: ClientFactory = client_for) -> None:
    """Run ``work`` per integration; one failing (a missing key, a refused key) does not stop
    the others. Failures are recorded on the integration and in ``report.failed``."""
    for integration in chosen:
        report.integrations.append(integration.id)
        try:
            with make_client(integration) as client:
                work(integration, client)
                report.http_requests += client.stats.requests
        except Exception as exc:  # recorded, then the run fails after the others synced
            report.failed[integration.id], report.errors[integration.id] = str(exc), exc
            store.record_result(warehouse, integration.id, str(exc)[:2000])
        else:
            store.record_result(warehouse, integration.id, None)
    raise_first_transient(report)


def raise_first_transient(report: GoliothReport) -> None:
    """Re-raise a failure that may pass (a vendor outage, the database restarting), so the
    step is retried whole (idempotent: points are insert-if-new, cursors moved only after
    their points); permanent ones (missing or refused keys) are left to fail the run."""
    for exc in report.errors.values():
        if is_transient(exc):
            raise exc


# -- the webhook inbox ----------------------------------------------------------------------------


def drain_inbox(warehouse: Warehouse, batch_size: int = 1000, max_batches: int = 50) -> GoliothReport:
    """Move inbox events into telemetry in ``id`` order: each batch's points and the removal
    of its events commit together, so a crash repeats a batch (harmlessly) and loses none."""
    report = GoliothReport("webhook", "push")
    by_project = {i.project_id: i for i in store.load(warehouse)}
    for _ in range(max_batches):
        with warehouse.transaction() as tx:
            inbox = tx.table(INBOX_TABLE)
            events = [dict(r._mapping) for r in tx.execute(sa.select(inbox).order_by(inbox.c.id).limit(batch_size))]
            if not events:
                break
            rows, newest = [], None
            for event in events:
                try:
                    points = points_from_event(event)
                except (PointError, KeyError, TypeError) as exc:
                    tx.reject(SOURCE, "webhook", event["id"], f"webhook event not readable as points: {exc}", event["body"])
                    report.rejected += 1
                    continue
                integration = by_project.get(event["project_id"])
                rows.extend(_rows(points, integration.id if integration else None, event["project_id"], "push"))
                newest = _newest(newest, points)
            report.points_pulled += len(rows)
            report.add_points(store_points(tx, rows), newest)
            for ids in chunked([e["id"] for e in events]):
                tx.execute(inbox.delete().where(inbox.c.id.in_(ids)))
        if len(events) < batch_size:
            break
    return report
