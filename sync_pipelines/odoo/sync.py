"""Sync one Odoo model into its table: keyset batches, per-batch transactions, rejects, deletions.

For every batch ``search_read`` returns, in ONE destination transaction:

1. map each record to a row (``models.py``); a malformed record becomes a reject;
2. rows that the archive job moved out and that Odoo has not changed since are skipped (a
   cancelled invoice stays archived); a changed one comes back and leaves the archive;
3. invoices only: a record whose (company, move type, name) is already held by another
   invoice id (in the table or earlier in the batch) becomes a reject, detected before the
   insert so that the contract's unique index never fails the batch; a stored invoice keeps
   its name unless it comes back renamed;
4. upsert the rows (counts inserted / updated / unchanged), record the rejects, forget
   rejects of records that now landed, and advance the cursor to the batch's last
   (write_date, id), never backwards.

Incremental runs first retry the records with open rejects (by id) and re-read the rows
archived with a parent that is live again (purchase order lines of a restored order, among
the orders synced since the lines last looked); then they read from ``cursor - overlap`` (a record that retry just read, unchanged, is not
processed or counted again). ``full`` runs read everything and finally mark rows whose id
Odoo no longer returned with ``deleted_at``, live and archived ones. Invoices refused a
name are re-read by id at the end of the run when their holder gave the name up later in
the run (renamed in a later batch) or is gone from Odoo, so they land in the run that read
them.

Counts are per record, not per read: ``fetched`` counts each version of a record once (a
record re-read unchanged by id is not counted again), ``rejected`` the records the run
leaves in ``sync_rejects`` (one refused and landed later in the same run is not counted).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sync_pipelines.odoo.client import OdooClient, is_odoo_datetime, keyset_position
from sync_pipelines.odoo.models import RecordRejected, map_record, reject_key
from sync_pipelines.odoo.settings import INVOICES, KEYSET_ORDER, SOURCE, ModelSpec
from sync_pipelines.warehouse import Warehouse, WarehouseTransaction, chunked, utcnow

log = logging.getLogger("sync_pipelines.odoo")

Position = tuple[str, int]

# Ids per search_read by id (reject retries, name holders, lines of restored orders): one
# short domain per call, well inside what Odoo's JSON-RPC takes.
READ_BY_ID_CHUNK = 200


@dataclass
class SyncReport:
    entity: str
    mode: str
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    deleted_archived: int = 0  # archive rows Odoo no longer has, marked with deleted_at
    skipped_archived: int = 0
    retried_rejects: int = 0
    resolved_rejects: int = 0
    batches: int = 0
    cursor: Position | None = None
    # record_key -> "id K: reason" of the records this run set aside and has not landed since
    open_rejects: dict[str, str] = field(default_factory=dict)
    # invoice id -> (holder id, (company, move type, name)) refused in this run, not landed since
    refused_names: dict[int, tuple[int, tuple]] = field(default_factory=dict)
    # id -> fingerprint of the version read, for the records that may be read again by id in
    # this run (read by id, or set aside): an unchanged re-read is neither processed twice
    # (after the reject retry) nor counted twice
    versions: dict[int, str] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return len(self.open_rejects)

    @property
    def reject_samples(self) -> list[str]:
        return list(self.open_rejects.values())[:20]

    def set_aside(self, key: str, reason: str) -> None:
        self.open_rejects[key] = f"id {key}: {reason}"

    def landed(self, keys) -> None:
        for key in keys:
            self.open_rejects.pop(str(key), None)
            if isinstance(key, int) or str(key).isdigit():
                self.refused_names.pop(int(key), None)

    @property
    def cursor_text(self) -> str:
        return f"{self.cursor[0]} id={self.cursor[1]}" if self.cursor else "(none)"

    def as_metadata(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "fetched": self.fetched,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "deleted": self.deleted,
            "deleted_archived": self.deleted_archived,
            "skipped_archived": self.skipped_archived,
            "retried_rejects": self.retried_rejects,
            "batches": self.batches,
            "cursor": self.cursor_text,
        }


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
    key = reject_key(record)
    return int(key) if key.isdigit() else None


def _naive_utc(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    return value


def sync_model(
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
    on_batch: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Bring ``spec.table`` up to date with Odoo; returns what was done."""
    if mode not in ("incremental", "full"):
        raise ValueError(f"mode must be 'incremental' or 'full', got {mode!r}")
    report = SyncReport(entity=spec.entity, mode=mode)
    saved = parse_cursor(warehouse.get_cursor(SOURCE, spec.entity))
    report.cursor = saved
    if mode == "incremental":
        _retry_open_rejects(spec, client, warehouse, report, run_id)
        if spec.archived_with:
            _bring_back_children_of_live_parents(spec, client, warehouse, report, run_id)
        after = overlap_start(saved, overlap_seconds) if saved else None
    else:
        after = None
    seen: set[int] = set()
    for batch in client.iter_batches(
        spec.model, spec.fields, domain=list(spec.domain), after=after, batch_size=batch_size,
        delay_seconds=delay_seconds, context=spec.context,
    ):
        # The reject retry may have just read some of these (open rejects inside the overlap
        # window): the same version again changes nothing and is not counted twice. A
        # version changed since is new and processed. Only those few records are
        # fingerprinted: serialising every record of every batch would cost more than the
        # comparison saves.
        fresh = [r for r in batch if _not_read_yet(report.versions, r)]
        seen.update(rid for rid in map(_record_id, batch) if rid is not None)
        report.fetched += len(fresh)
        report.batches += 1
        with warehouse.transaction() as tx:
            if fresh:
                _process_batch(tx, spec, fresh, report, run_id)
            position = _batch_position(batch)
            if position and (report.cursor is None or position > report.cursor):
                report.cursor = position
                tx.set_cursor(SOURCE, spec.entity, {"write_date": position[0], "id": position[1]}, run_id)
        if on_batch:
            on_batch(report)
    if mode == "full":
        _mark_deleted(spec, warehouse, seen, report)
    if report.refused_names:
        _retry_names_given_up_since(spec, client, warehouse, report, run_id, logger)
    if report.refused_names:
        _release_names_of_deleted_holders(spec, client, warehouse, report, run_id, logger)
    if report.rejected:
        logger.warning(
            f"odoo {spec.entity}: {report.rejected} record(s) set aside in sync_rejects, e.g. "
            + "; ".join(report.reject_samples[:5])
        )
    return report


def _batch_position(batch: list[dict]) -> Position | None:
    """The newest (write_date, id) of the batch among records whose write_date and id are
    well-formed: a malformed one (rejected, e.g. write_date "not a date") never becomes the
    cursor, while a batch of rejects with valid dates still moves the cursor past them (they
    wait in sync_rejects and are re-read by id)."""
    positions = [p for p in map(keyset_position, batch) if p]
    return max(positions) if positions else None


def _process_batch(
    tx: WarehouseTransaction, spec: ModelSpec, batch: list[Any], report: SyncReport, run_id: str | None
) -> set[int]:
    """Land one batch in ``tx``; returns the Odoo ids it contained (landed or not)."""
    seen: set[int] = set()
    rows: list[dict[str, Any]] = []
    rejects: list[tuple[str, str, Any]] = []
    for record in batch:
        key = reject_key(record)
        if key.isdigit():
            seen.add(int(key))
            # judged afresh by this version (a refusal recorded earlier no longer applies)
            report.refused_names.pop(int(key), None)
        try:
            rows.append(map_record(spec, record))
        except RecordRejected as exc:
            rejects.append((key, f"malformed record: {exc}", record))
    rows, unarchive = _without_unchanged_archived(tx, spec, rows, report)
    if spec.entity == INVOICES.entity:
        rows, duplicates, releasing = _split_duplicate_names(tx, rows, report.refused_names)
        rejects.extend(duplicates)
        if releasing:
            # Stored invoices renamed in this batch give their old names to others of the
            # batch: clear those names first (same transaction; the upsert writes the new
            # ones), so the unique index never sees a name taken before it is given up,
            # whatever order either dialect writes the rows in.
            table = tx.table(INVOICES.table)
            tx.execute(table.update().where(table.c.id.in_(releasing)).values(name=None))
    landing = {r["id"] for r in rows}
    back = [rid for rid in unarchive if rid in landing]
    if back:  # changed in Odoo since archived and landing now: live again, out of the archive
        archive = tx.table(spec.archive_table)
        tx.execute(archive.delete().where(archive.c.id.in_(back)))
    counts = tx.upsert(spec.table, rows)
    report.inserted += counts.inserted
    report.updated += counts.updated
    report.unchanged += counts.unchanged
    for key, reason, payload in rejects:
        tx.reject(SOURCE, spec.entity, key, reason, payload=payload, run_id=run_id)
        report.set_aside(key, reason)
        if key.isdigit():  # may be read again by id in this run
            report.versions[int(key)] = _fingerprint(payload)
    report.resolved_rejects += tx.resolve_rejects(SOURCE, spec.entity, [r["id"] for r in rows])
    report.landed(r["id"] for r in rows)
    return seen


def _invoice_name_key(row: dict[str, Any]) -> tuple | None:
    """(company, move type, name) as the partial unique index sees it; None never conflicts
    (drafts named ``/``, a NULL part)."""
    if row.get("name") in (None, "/") or row.get("company_id") is None or row.get("move_type") is None:
        return None
    return (row["company_id"], row["move_type"], row["name"])


def _split_duplicate_names(
    tx: WarehouseTransaction, rows: list[dict[str, Any]], refused_names: dict[int, tuple[int, tuple]]
) -> tuple[list[dict[str, Any]], list[tuple[str, str, Any]], list[int]]:
    """Keep rows whose (company, move type, name) is free; reject those another invoice holds.

    Returns (rows to land, rejects, ids of stored invoices whose old name must be cleared
    before the upsert because another row of the batch takes it); each refusal is noted in
    ``refused_names`` (refused id -> (holder, name key)).

    Mirrors the partial unique index: names ``/``, rows with a NULL part and rows deleted in
    Odoo (``deleted_at``) never conflict. A live invoice already stored keeps its name,
    also when it comes back in this batch unchanged or with other changes; it gives the
    name up only when it comes back renamed (and lands under its new name). Among the
    batch's other rows, the first (oldest write) wins.
    """
    keyed = [(_invoice_name_key(r), r) for r in rows]
    landing_key = {r["id"]: key for key, r in keyed}
    names = sorted({key[2] for key, _ in keyed if key})
    stored: dict[tuple, int] = {}  # live holders in the table of the names this batch uses
    table = tx.table(INVOICES.table)
    for chunk in chunked(names):
        query = sa.select(table.c.id, table.c.company_id, table.c.move_type, table.c.name).where(
            table.c.name.in_(chunk), table.c.deleted_at.is_(None)
        )
        for rid, company_id, move_type, name in tx.execute(query):
            stored[(company_id, move_type, name)] = rid
    # Stored holders that keep their name: not in the batch, or back under the same name.
    # One that comes back renamed but is itself refused its new name keeps the old one too:
    # repeat until nothing changes (each round only adds keepers).
    keepers = {rid for key, rid in stored.items() if landing_key.get(rid, key) == key}
    while True:
        holders = {key: rid for key, rid in stored.items() if rid in keepers}
        kept: list[dict[str, Any]] = []
        refused: list[tuple[dict[str, Any], int]] = []
        for key, row in keyed:
            holder = holders.get(key) if key else None
            if key and holder is not None and holder != row["id"]:
                refused.append((row, holder))
                continue
            if key:
                holders[key] = row["id"]
            kept.append(row)
        refused_ids = {row["id"] for row, _ in refused}
        regained = {rid for rid in stored.values() if rid not in keepers and rid in refused_ids}
        if not regained:
            break
        keepers |= regained
    rejected: list[tuple[str, str, Any]] = []
    for row, holder in refused:
        refused_names[row["id"]] = (holder, landing_key[row["id"]])
        company_id, move_type, name = landing_key[row["id"]]
        rejected.append((
            str(row["id"]),
            f"duplicate invoice name {name!r} (company {company_id}, {move_type}) already held by "
            f"invoice id {holder}; unique (company_id, move_type, name) kept",
            row["raw"],
        ))
    releasing = sorted(rid for rid in stored.values() if rid not in keepers)
    return kept, rejected, releasing


def _without_unchanged_archived(
    tx: WarehouseTransaction, spec: ModelSpec, rows: list[dict[str, Any]], report: SyncReport
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
    for chunk in chunked(ids):
        query = sa.select(archive.c.id, archive.c.write_date).where(archive.c.id.in_(chunk))
        archived.update({rid: _naive_utc(wd) for rid, wd in tx.execute(query)})
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
        unchanged = row["id"] in archived and archived[row["id"]] == _naive_utc(row["write_date"])
        if unchanged and not (spec.archived_with and row.get(spec.archived_with[1]) in live_parents):
            report.skipped_archived += 1
            continue
        if row["id"] in archived:
            back.append(row["id"])
        kept.append(row)
    return kept, back


def _retry_open_rejects(
    spec: ModelSpec, client: OdooClient, warehouse: Warehouse, report: SyncReport, run_id: str | None
) -> None:
    """Re-read records with open rejects by id: fixed in Odoo (or freed name) -> they land now."""
    keys = sorted(int(r["record_key"]) for r in warehouse.rejects(SOURCE, spec.entity) if r["record_key"].isdigit())
    _reread_by_id(spec, client, warehouse, report, run_id, keys)


def _reread_by_id(
    spec: ModelSpec, client: OdooClient, warehouse: Warehouse, report: SyncReport, run_id: str | None, ids: list[int],
    *, retry: bool = True,
) -> set[int]:
    """Read these records again by id and process them; ids Odoo no longer returns (deleted,
    or out of scope) have nothing left to fix: their rejects are dropped. Returns those ids.
    ``retry``: the ids are retried rejects (counted in ``retried_rejects``)."""
    all_gone: set[int] = set()
    for chunk in chunked(ids, READ_BY_ID_CHUNK):
        batch = client.search_read(
            spec.model, [("id", "in", chunk), *spec.domain], [*spec.fields, "write_date"],
            order=KEYSET_ORDER, context=spec.context,
        )
        if retry:
            report.retried_rejects += len(chunk)
        for record in batch:
            rid, fingerprint = _record_id(record), _fingerprint(record)
            if rid is None or report.versions.get(rid) != fingerprint:
                report.fetched += 1  # a version this run had not read yet
            if rid is not None:
                report.versions[rid] = fingerprint
        with warehouse.transaction() as tx:
            seen = _process_batch(tx, spec, batch, report, run_id)
            gone = set(chunk) - seen
            report.resolved_rejects += tx.resolve_rejects(SOURCE, spec.entity, gone)
        report.landed(gone)
        all_gone |= gone
    return all_gone


def _bring_back_children_of_live_parents(
    spec: ModelSpec, client: OdooClient, warehouse: Warehouse, report: SyncReport, run_id: str | None
) -> None:
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
        gone = sorted(_reread_by_id(spec, client, warehouse, report, run_id, ids, retry=False))
        if gone:
            _mark_archived_deleted(warehouse, spec, gone, report)
    # Saved once the children are back (or marked gone): a run that fails before looks at
    # the same parents again.
    with warehouse.transaction() as tx:
        tx.set_cursor(SOURCE, checking, started.isoformat(), run_id)


# A parent's synced_at is stamped when its batch is written, a moment before that batch
# commits, and by the clock of the process that wrote it: parents synced shortly before the
# last check are looked at again, so one committed during that check (a concurrent run) or
# stamped by a clock slightly behind is not missed.
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


def _mark_archived_deleted(warehouse: Warehouse, spec: ModelSpec, ids: list[int], report: SyncReport) -> None:
    with warehouse.transaction() as tx:
        report.deleted_archived += _set_archive_deleted_at(tx, spec, ids, utcnow())


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


def _retry_names_given_up_since(
    spec: ModelSpec, client: OdooClient, warehouse: Warehouse, report: SyncReport, run_id: str | None, logger: Any
) -> None:
    """Re-read, by id, the invoices refused a name that its holder no longer holds in the
    table: the holder was renamed in a later batch of this run (B took A's old number and was
    written, so read, before A's rename). Otherwise B would wait for the next run, which a
    quiet Odoo (the sensor sees no change) may not start for a long time."""
    holders = sorted({holder for holder, _ in report.refused_names.values()})
    held: set[tuple[int, tuple]] = set()
    table = warehouse.table(spec.table)
    with warehouse.engine.connect() as conn:  # a read: no write transaction (no SQLite write lock)
        for chunk in chunked(holders):
            query = sa.select(table.c.id, table.c.company_id, table.c.move_type, table.c.name).where(
                table.c.id.in_(chunk), table.c.deleted_at.is_(None)
            )
            held.update((rid, (company_id, move_type, name)) for rid, company_id, move_type, name in conn.execute(query))
    freed = sorted(rid for rid, claim in report.refused_names.items() if claim not in held)
    if not freed:
        return
    logger.info(f"odoo {spec.entity}: ids {freed[:10]} were refused names their holders gave up later in this run; "
                "reading them again")
    _reread_by_id(spec, client, warehouse, report, run_id, freed)


def _release_names_of_deleted_holders(
    spec: ModelSpec, client: OdooClient, warehouse: Warehouse, report: SyncReport, run_id: str | None, logger: Any
) -> None:
    """Free the names held by invoices Odoo has deleted since they were synced, and land the
    invoices that were refused those names, in this run.

    Odoo hands the number of a deleted draft to the next invoice, so "another invoice holds
    this name" often means "the holder is gone". Hard deletes are otherwise only seen by the
    nightly full read; asking Odoo about just the holders settles it now, so the newest
    invoice is not missing until midnight (the old setup's top complaint)."""
    holders = sorted({holder for holder, _ in report.refused_names.values()})
    existing: set[int] = set()
    for chunk in chunked(holders, READ_BY_ID_CHUNK):
        found = client.search_read(
            spec.model, [("id", "in", chunk), *spec.domain], ["id"], context=spec.context
        )
        existing.update(r["id"] for r in found)
    gone = [h for h in holders if h not in existing]
    if not gone:
        return
    table = warehouse.table(spec.table)
    now = utcnow()
    with warehouse.transaction() as tx:
        marked = tx.execute(
            table.update().where(table.c.id.in_(gone), table.c.deleted_at.is_(None)).values(deleted_at=now, synced_at=now)
        ).rowcount
    report.deleted += marked
    logger.info(f"odoo {spec.entity}: ids {gone[:10]} were deleted in Odoo; their names are free again")
    _retry_open_rejects(spec, client, warehouse, report, run_id)


def _mark_deleted(spec: ModelSpec, warehouse: Warehouse, seen: set[int], report: SyncReport) -> None:
    """After a full read: rows Odoo no longer has get ``deleted_at`` (their rejects are dropped),
    in the live table and in the archive (a record archived, then deleted in Odoo); an
    archived row marked so that Odoo returns again has it cleared."""
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
