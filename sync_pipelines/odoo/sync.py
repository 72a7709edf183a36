"""Sync one Odoo model into its table: keyset batches, per-batch transactions, rejects, deletions.

:func:`sync_entity` runs one model's phases: (incremental) retry open rejects and bring
back children of live parents, read the batches after the cursor (each landed in one
transaction by :meth:`ModelSyncRun.process_batch`, cursor included), (full) mark what Odoo
no longer has, then the model's own rules (``spec.rules``, e.g. ``invoice_names.py``). How
each step works and why: the Odoo README, "How a sync works".
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sync_pipelines.kit import (
    Cursor,
    OpenRejectKeys,
    RecordError,
    Reject,
    SyncReport,
    land_batch,
    metric,
    not_metric,
    read_ahead,
)
from sync_pipelines.odoo.client import OdooClient, is_odoo_datetime, keyset_position
from sync_pipelines.odoo.models import map_record, record_key
from sync_pipelines.odoo.settings import KEYSET_ORDER, READ_BY_ID_CHUNK, SOURCE, ModelSpec
from sync_pipelines.warehouse import Warehouse, WarehouseTransaction, as_utc, chunked, utcnow

log = logging.getLogger("sync_pipelines.odoo")

Position = tuple[str, int]


def cursor_text(cursor: Position | None) -> str:
    return f"{cursor[0]} id={cursor[1]}" if cursor else "(none)"


@dataclass
class OdooSyncReport(SyncReport):
    """What one model sync did. Counts are per record, not per read: ``fetched`` counts each
    version of a record once, ``rejected`` the records the run leaves in ``sync_rejects``."""

    mode: str = field(metadata=metric())
    deleted: int = 0
    deleted_archived: int = 0  # archive rows Odoo no longer has, marked with deleted_at
    skipped_archived: int = 0
    retried_rejects: int = 0
    resolved_rejects: int = field(default=0, metadata=not_metric())
    batches: int = 0
    cursor: Position | None = field(default=None, metadata=metric(render=cursor_text))
    # record_key -> "id K: reason" of the records this run set aside and has not landed since
    open_rejects: dict[str, str] = field(default_factory=dict)
    # id -> (holder id, unique key) refused in this run because another record holds the key
    refused_names: dict[int, tuple[int, tuple]] = field(default_factory=dict)
    # id -> fingerprint of the version read, for the records that may be read again by id in
    # this run: an unchanged re-read is neither processed twice nor counted twice
    versions: dict[int, str] = field(default_factory=dict)

    def set_aside(self, key: str, reason: str) -> None:
        self.open_rejects[key] = f"id {key}: {reason}"
        self._count_open_rejects()

    def landed(self, keys: Iterable[Any]) -> None:
        for key in keys:
            self.open_rejects.pop(str(key), None)
            if isinstance(key, int) or str(key).isdigit():
                self.refused_names.pop(int(key), None)
        self._count_open_rejects()

    def _count_open_rejects(self) -> None:
        self.rejected = len(self.open_rejects)
        self.reject_samples = list(self.open_rejects.values())[:20]

    @property
    def cursor_text(self) -> str:
        return cursor_text(self.cursor)


def parse_cursor(value: Any) -> Position | None:
    """The saved (write_date, id); None when there is none or it is unusable (a run then
    reads from the start, which the upsert makes safe)."""
    if not isinstance(value, dict) or not is_odoo_datetime(value.get("write_date")):
        return None
    rid = value.get("id") or 0
    return (value["write_date"], rid) if isinstance(rid, int) and not isinstance(rid, bool) else None


def fmt_odoo(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def overlap_start(cursor: Position, overlap_seconds: int) -> Position:
    """Keyset position ``overlap_seconds`` before the cursor: re-reads that window."""
    at = dt.datetime.strptime(cursor[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return (fmt_odoo(at - dt.timedelta(seconds=overlap_seconds)), 0)


def _fingerprint(record: Any) -> str:
    return json.dumps(record, sort_keys=True, default=str)


def _not_read_yet(versions: dict[int, str], record: Any) -> bool:
    """Whether this version of the record is new to the run (``versions``: what it read by id)."""
    rid = _record_id(record)
    return rid not in versions or versions[rid] != _fingerprint(record)


def _record_id(record: Any) -> int | None:
    """The id a digit-only record_key stands for (``int(record_key(record))``), else None."""
    rid = record.get("id") if isinstance(record, dict) else None
    return rid if isinstance(rid, int) and rid.__class__ is not bool and rid >= 0 else None


def sync_entity(
    spec: ModelSpec,
    client: OdooClient,
    warehouse: Warehouse,
    *,
    mode: str = "incremental",
    batch_size: int = 100,
    delay_seconds: float = 0.0,
    overlap_seconds: int = 60,
    run_id: str | None = None,
    logger: logging.Logger | Any = log,
    on_batch: Callable[[OdooSyncReport], None] | None = None,
) -> OdooSyncReport:
    """Bring ``spec.table`` up to date with Odoo; returns what was done."""
    if mode not in ("incremental", "full"):
        raise ValueError(f"mode must be 'incremental' or 'full', got {mode!r}")
    report = OdooSyncReport(entity=spec.entity, mode=mode)
    saved = parse_cursor(warehouse.get_cursor(SOURCE, spec.entity))
    report.cursor = saved
    run = ModelSyncRun(spec, client, warehouse, report, run_id=run_id, logger=logger,
                       open_reject_keys=OpenRejectKeys.read(warehouse, SOURCE, spec.entity))
    after = None
    if mode == "incremental":
        run.retry_open_rejects()
        if spec.archived_with:
            _bring_back_children_of_live_parents(run)
        after = overlap_start(saved, overlap_seconds) if saved else None
    seen = _read_batches(run, after, batch_size=batch_size, delay_seconds=delay_seconds, on_batch=on_batch)
    if mode == "full":
        _mark_deleted(run, seen)
    spec.rules.finish_run(run)
    if report.rejected:
        logger.warning(
            f"odoo {spec.entity}: {report.rejected} record(s) set aside in sync_rejects, e.g. "
            + "; ".join(report.reject_samples[:5])
        )
    return report


def _read_batches(
    run: ModelSyncRun, after: Position | None, *, batch_size: int, delay_seconds: float,
    on_batch: Callable[[OdooSyncReport], None] | None,
) -> set[int]:
    """Read every batch after ``after`` and land each; returns the ids Odoo returned."""
    spec, seen = run.spec, set()
    # The next batch is read from Odoo while this one lands (see kit.readahead).
    with read_ahead(run.client.iter_batches(
        spec.model, spec.fields, domain=list(spec.domain), after=after, batch_size=batch_size,
        delay_seconds=delay_seconds, context=spec.context,
    )) as batches:
        for batch in batches:
            _land_read_batch(run, batch, seen, on_batch)
    return seen


def _land_read_batch(run: ModelSyncRun, batch: list[dict], seen: set[int],
                     on_batch: Callable[[OdooSyncReport], None] | None) -> None:
    """Land one batch read by ``_read_batches`` (its ids are added to ``seen``)."""
    spec, report = run.spec, run.report
    # The reject retry may have just read some of these: the same version again is not
    # processed or counted twice. Only those few records are fingerprinted.
    fresh = [r for r in batch if _not_read_yet(report.versions, r)] if report.versions else batch
    seen.update(rid for rid in map(_record_id, batch) if rid is not None)
    report.fetched += len(fresh)
    report.batches += 1
    position = _batch_position(batch)
    cursor = None
    if position and (report.cursor is None or position > report.cursor):
        report.cursor = position
        cursor = Cursor(spec.entity, {"write_date": position[0], "id": position[1]})
    with run.warehouse.transaction() as tx:
        run.process_batch(tx, fresh, cursor=cursor)
    if on_batch:
        on_batch(report)


def _batch_position(batch: list[dict]) -> Position | None:
    """The newest (write_date, id) of the batch among records whose write_date and id are
    well-formed: a malformed one (rejected, e.g. write_date "not a date") never becomes the
    cursor, while a batch of rejects with valid dates still moves the cursor past them (they
    wait in sync_rejects and are re-read by id)."""
    positions = [p for p in map(keyset_position, batch) if p]
    return max(positions) if positions else None


@dataclass
class ModelSyncRun:
    """One model's sync in progress: what it reads from, writes to and reports into."""

    spec: ModelSpec
    client: OdooClient
    warehouse: Warehouse
    report: OdooSyncReport
    run_id: str | None = None
    logger: Any = log
    open_reject_keys: OpenRejectKeys | None = None  # None: not known, every landed key is resolved

    def process_batch(self, tx: WarehouseTransaction, batch: list[Any], *, cursor: Cursor | None = None) -> set[int]:
        """Land one batch (and ``cursor``) in ``tx``; returns the Odoo ids it contained."""
        spec, report = self.spec, self.report
        seen: set[int] = set()
        rows: list[dict[str, Any]] = []
        rejects: list[Reject] = []
        for record in batch:
            rid = _record_id(record)
            if rid is not None:
                seen.add(rid)
                # judged afresh by this version (a refusal recorded earlier no longer applies)
                report.refused_names.pop(rid, None)
            try:
                rows.append(map_record(spec, record))
            except RecordError as exc:
                rejects.append(Reject(record_key(record), f"malformed record: {exc}", record))
        rows, unarchive = _without_unchanged_archived(tx, spec, rows, report)
        if rows:
            rows, refused = spec.rules.screen_batch(tx, self, rows)
            rejects.extend(refused)
        landing = {r["id"] for r in rows}
        back = [rid for rid in unarchive if rid in landing]
        if back:  # changed in Odoo since archived and landing now: live again, out of the archive
            archive = tx.table(spec.archive_table)
            tx.execute(archive.delete().where(archive.c.id.in_(back)))
        landed = land_batch(
            tx, spec.table, rows, source=SOURCE, entity=spec.entity, landed_keys=[r["id"] for r in rows],
            rejects=rejects, cursor=cursor, run_id=self.run_id, open_keys=self.open_reject_keys,
        )
        report.counts += landed.counts
        for reject in rejects:
            report.set_aside(reject.key, reject.reason)
            if reject.key.isdigit():  # may be read again by id in this run
                report.versions[int(reject.key)] = _fingerprint(reject.payload)
        report.resolved_rejects += landed.resolved
        report.landed(r["id"] for r in rows)
        return seen

    def retry_open_rejects(self) -> None:
        """Re-read records with open rejects by id: fixed in Odoo (or freed name) -> they land now."""
        keys = sorted(
            int(r["record_key"]) for r in self.warehouse.rejects(SOURCE, self.spec.entity) if r["record_key"].isdigit()
        )
        self.reread_by_id(keys)

    def reread_by_id(self, ids: list[int], *, retry: bool = True) -> set[int]:
        """Read these records again by id and process them; ids Odoo no longer returns (deleted,
        or out of scope) have nothing left to fix: their rejects are dropped. Returns those ids.
        ``retry``: the ids are retried rejects (counted in ``retried_rejects``)."""
        spec, report = self.spec, self.report
        all_gone: set[int] = set()
        for chunk in chunked(ids, READ_BY_ID_CHUNK):
            batch = self.client.search_read(
                spec.model, [("id", "in", chunk), *spec.domain], [*spec.fields, "write_date"],
                order=KEYSET_ORDER, context=spec.context,
            )
            if retry:
                report.retried_rejects += len(chunk)
            self._note_versions(batch)
            with self.warehouse.transaction() as tx:
                seen = self.process_batch(tx, batch)
                gone = set(chunk) - seen
                report.resolved_rejects += tx.resolve_rejects(SOURCE, spec.entity, gone)
            report.landed(gone)
            all_gone |= gone
        return all_gone

    def _note_versions(self, batch: list[Any]) -> None:
        """Count the versions of a by-id read this run had not read yet; remember them all."""
        for record in batch:
            rid, fingerprint = _record_id(record), _fingerprint(record)
            if rid is None or self.report.versions.get(rid) != fingerprint:
                self.report.fetched += 1
            if rid is not None:
                self.report.versions[rid] = fingerprint

    def existing_ids(self, ids: list[int]) -> set[int]:
        """Which of these ids Odoo still has (within the model's domain)."""
        spec = self.spec
        existing: set[int] = set()
        for chunk in chunked(ids, READ_BY_ID_CHUNK):
            found = self.client.search_read(
                spec.model, [("id", "in", chunk), *spec.domain], ["id"], context=spec.context
            )
            existing.update(r["id"] for r in found)
        return existing


def _without_unchanged_archived(
    tx: WarehouseTransaction, spec: ModelSpec, rows: list[dict[str, Any]], report: OdooSyncReport
) -> tuple[list[dict[str, Any]], list[int]]:
    """Skip records archived by the archive job and unchanged since (unless archived with a
    parent that is live again).

    Returns the rows to land and the ids of archived records to bring back (changed in Odoo
    since, or their parent is back: the caller removes them from the archive if they land)."""
    if not rows:
        return rows, []
    archive = tx.table(spec.archive_table)
    ids = [r["id"] for r in rows]
    archived: dict[int, Any] = {}
    for matching in tx.among(archive.c.id, ids):
        query = sa.select(archive.c.id, archive.c.write_date).where(matching)
        archived.update({rid: as_utc(wd) for rid, wd in tx.execute(query)})
    if not archived:
        return rows, []
    live_parents: set[int] = set()
    if spec.archived_with:
        # archived with its parent (a line with its order): back when the parent is live again
        parent_table, parent_key = spec.archived_with
        parent = tx.table(parent_table)
        parent_ids = sorted({r[parent_key] for r in rows if r["id"] in archived and r.get(parent_key) is not None})
        for chunk in chunked(parent_ids):
            query = sa.select(parent.c.id).where(parent.c.id.in_(chunk))
            live_parents.update(pid for (pid,) in tx.execute(query))
    kept, back = [], []
    for row in rows:
        unchanged = row["id"] in archived and archived[row["id"]] == as_utc(row["write_date"])
        if unchanged and not (spec.archived_with and row.get(spec.archived_with[1]) in live_parents):
            report.skipped_archived += 1
            continue
        if row["id"] in archived:
            back.append(row["id"])
        kept.append(row)
    return kept, back


def _bring_back_children_of_live_parents(run: ModelSyncRun) -> None:
    """Rows archived with their parent (purchase order lines with their order) come back
    with it: when the parent is live again (changed in Odoo, synced just before by the
    parent's asset), re-read its archived children by id now, so they do not wait for the
    nightly full read (they are usually unchanged in Odoo, so no incremental read sees them).
    Children archived for their own deletion (``deleted_at``) are not asked about again;
    children Odoo no longer has get ``deleted_at`` in the archive, so they are asked once.

    Only parents synced since the last check (:func:`_parents_synced_since`) are looked at:
    a parent comes back by being written, which stamps its ``synced_at``, so the archive is
    looked up (index on the parent key) for the few parents of the last runs, never for
    every live parent."""
    spec, warehouse = run.spec, run.warehouse
    assert spec.archived_with is not None
    parent_table, parent_key = spec.archived_with
    archive, parent = warehouse.table(spec.archive_table), warehouse.table(parent_table)
    checking = _parents_checked_entity(spec)
    started = utcnow()
    parents = sa.select(parent.c.id)
    since = _parents_synced_since(warehouse.get_cursor(SOURCE, checking))
    if since is not None:
        parents = parents.where(parent.c.synced_at >= since)
    query = sa.select(archive.c.id).where(
        archive.c.deleted_at.is_(None), archive.c[parent_key].in_(parents)
    ).order_by(archive.c.id)
    with warehouse.engine.connect() as conn:
        ids = [rid for (rid,) in conn.execute(query)]
    if ids:
        gone = sorted(run.reread_by_id(ids, retry=False))
        if gone:
            with warehouse.transaction() as tx:
                run.report.deleted_archived += _set_archive_deleted_at(tx, spec, gone, utcnow())
    # Saved once the children are back (or marked gone): a run that fails before looks at
    # the same parents again.
    with warehouse.transaction() as tx:
        tx.set_cursor(SOURCE, checking, started.isoformat(), run.run_id)


# synced_at is stamped before its batch commits, by the writer's clock: parents synced just
# before the last check are looked at again (a concurrent commit, a clock slightly behind).
PARENTS_CHECK_MARGIN = dt.timedelta(minutes=10)


def _parents_checked_entity(spec: ModelSpec) -> str:
    """``sync_state`` entity holding when the children of ``spec`` last looked for parents
    that came back (a time, beside the entity's own (write_date, id) cursor)."""
    return f"{spec.entity}_parents_checked"


def _parents_synced_since(value: Any) -> dt.datetime | None:
    """Parents synced at or after this time may have come back since the last check; None
    (never checked, e.g. just upgraded, or unreadable) looks at every live parent."""
    if not isinstance(value, str):
        return None
    try:
        checked = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if checked.tzinfo is None:
        return None
    return checked.astimezone(dt.timezone.utc) - PARENTS_CHECK_MARGIN


def _set_archive_deleted_at(
    tx: WarehouseTransaction, spec: ModelSpec, ids: list[int], deleted_at: dt.datetime | None
) -> int:
    """Mark these archive rows deleted in Odoo (``deleted_at``), or back (None); rows already
    so are left alone. Returns how many rows changed."""
    archive = tx.table(spec.archive_table)
    already = archive.c.deleted_at.is_not(None) if deleted_at is not None else archive.c.deleted_at.is_(None)
    changed = 0
    for chunk in chunked(ids):
        changed += tx.execute(
            archive.update().where(archive.c.id.in_(chunk), sa.not_(already)).values(deleted_at=deleted_at)
        ).rowcount
    return changed


def _mark_deleted(run: ModelSyncRun, seen: set[int]) -> None:
    """After a full read: rows Odoo no longer has get ``deleted_at`` (their rejects are dropped),
    in the live table and in the archive (a record archived, then deleted in Odoo); an
    archived row marked so that Odoo returns again has it cleared."""
    spec, warehouse, report = run.spec, run.warehouse, run.report
    table = warehouse.table(spec.table)
    archive = warehouse.table(spec.archive_table)
    with warehouse.transaction() as tx:
        live = {rid for (rid,) in tx.execute(sa.select(table.c.id).where(table.c.deleted_at.is_(None)))}
        # Only the ids each side needs, not every archive row with its deleted_at: archive
        # rows not yet marked (gone unless seen), and marked ones (back if seen).
        archived_alive = {rid for (rid,) in tx.execute(sa.select(archive.c.id).where(archive.c.deleted_at.is_(None)))}
        if (live or archived_alive) and not seen:
            raise RuntimeError(
                f"Odoo returned no {spec.model} records at all in a full sync, but {len(live)} rows are live in "
                f"{spec.table} ({len(archived_alive)} in its archive): refusing to mark them all deleted "
                "(wrong database or user lacking access rights?)"
            )
        archived_marked = {
            rid for (rid,) in tx.execute(sa.select(archive.c.id).where(archive.c.deleted_at.is_not(None)))
        }
        gone = sorted(live - seen)
        now = utcnow()
        for chunk in chunked(gone):
            tx.execute(
                table.update().where(table.c.id.in_(chunk)).values(deleted_at=now, synced_at=now)
            )
        report.deleted = len(gone)
        report.deleted_archived += _set_archive_deleted_at(tx, spec, sorted(archived_alive - seen), now)
        _set_archive_deleted_at(tx, spec, sorted(archived_marked & seen), None)
        rejects = tx.table("sync_rejects")
        open_keys = [
            k for (k,) in tx.execute(
                sa.select(rejects.c.record_key).where(rejects.c.source == SOURCE, rejects.c.entity == spec.entity)
            )
        ]
        gone_keys = [k for k in open_keys if k.isdigit() and int(k) not in seen]
        report.resolved_rejects += tx.resolve_rejects(SOURCE, spec.entity, gone_keys)
    report.landed(gone_keys)
