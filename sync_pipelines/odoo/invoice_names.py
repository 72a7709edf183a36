"""Invoices' unique (company, move type, name) among live rows, as the sync keeps it.

Reached through ``INVOICES.rules``. In each batch's transaction, a record whose name another
live invoice holds becomes a reject before the upsert, so the partial unique index never
fails the batch; at the end of a run, invoices refused a name its holder gave up (renamed
later in the run, or deleted in Odoo) are read again so they land in that run. The story:
the Odoo README, "How a sync works" (Rejects).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from sync_pipelines.kit import Reject
from sync_pipelines.odoo.rules import ModelRules
from sync_pipelines.warehouse import WarehouseTransaction, chunked, utcnow

if TYPE_CHECKING:
    from sync_pipelines.odoo.sync import ModelSyncRun

NameKey = tuple  # (company_id, move_type, name)


class UniqueInvoiceNames(ModelRules):
    def screen_batch(
        self, tx: WarehouseTransaction, run: ModelSyncRun, rows: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[Reject]]:
        rows, refused, releasing = split_duplicate_names(tx, run.spec.table, rows, run.report.refused_names)
        if releasing:
            # Stored invoices renamed in this batch give their old names to others of the
            # batch: cleared first, so the unique index never sees a name taken before it is given up.
            table = tx.table(run.spec.table)
            tx.execute(table.update().where(table.c.id.in_(releasing)).values(name=None))
        return rows, refused

    def finish_run(self, run: ModelSyncRun) -> None:
        if run.report.refused_names:
            _retry_names_given_up_since(run)
        if run.report.refused_names:
            _release_names_of_deleted_holders(run)


def name_key(row: dict[str, Any]) -> NameKey | None:
    """(company, move type, name) as the partial unique index sees it; None never conflicts
    (drafts named ``/``, a NULL part)."""
    if row.get("name") in (None, "/") or row.get("company_id") is None or row.get("move_type") is None:
        return None
    return (row["company_id"], row["move_type"], row["name"])


def split_duplicate_names(
    tx: WarehouseTransaction, table_name: str, rows: list[dict[str, Any]], refused_names: dict[int, tuple[int, tuple]]
) -> tuple[list[dict[str, Any]], list[Reject], list[int]]:
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
    keyed = [(name_key(r), r) for r in rows]
    landing_key = {r["id"]: key for key, r in keyed}
    stored = _stored_holders(tx, table_name, sorted({key[2] for key, _ in keyed if key}))
    # Holders keep their name unless back renamed; one refused its new name keeps the old one
    # too: repeat until nothing changes (each round only adds keepers).
    keepers = {rid for key, rid in stored.items() if landing_key.get(rid, key) == key}
    while True:
        kept, refused = _claim_names(keyed, {key: rid for key, rid in stored.items() if rid in keepers})
        refused_ids = {row["id"] for row, _ in refused}
        regained = {rid for rid in stored.values() if rid not in keepers and rid in refused_ids}
        if not regained:
            break
        keepers |= regained
    rejected: list[Reject] = []
    for row, holder in refused:
        refused_names[row["id"]] = (holder, landing_key[row["id"]])
        company_id, move_type, name = landing_key[row["id"]]
        rejected.append(Reject(
            str(row["id"]),
            f"duplicate invoice name {name!r} (company {company_id}, {move_type}) already held by "
            f"invoice id {holder}; unique (company_id, move_type, name) kept",
            row["raw"],
        ))
    releasing = sorted(rid for rid in stored.values() if rid not in keepers)
    return kept, rejected, releasing


def _stored_holders(tx: WarehouseTransaction, table_name: str, names: list[str]) -> dict[NameKey, int]:
    """The live invoices in the table holding these names, by name key."""
    stored: dict[NameKey, int] = {}
    table = tx.table(table_name)
    for matching in tx.among(table.c.name, names):
        query = sa.select(table.c.id, table.c.company_id, table.c.move_type, table.c.name).where(
            matching, table.c.deleted_at.is_(None)
        )
        for rid, company_id, move_type, name in tx.execute(query):
            stored[(company_id, move_type, name)] = rid
    return stored


def _claim_names(
    keyed: list[tuple[NameKey | None, dict[str, Any]]], holders: dict[NameKey, int]
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], int]]]:
    """The rows that may take their name (first come first served after ``holders``), and
    the refused ones with the id holding their name."""
    holders = dict(holders)
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
    return kept, refused


def _retry_names_given_up_since(run: ModelSyncRun) -> None:
    """Re-read, by id, the invoices refused a name that its holder no longer holds in the
    table: the holder was renamed in a later batch of this run (B took A's old number and was
    written, so read, before A's rename). Otherwise B would wait for the next run, which a
    quiet Odoo (the sensor sees no change) may not start for a long time."""
    report = run.report
    holders = sorted({holder for holder, _ in report.refused_names.values()})
    held: set[tuple[int, tuple]] = set()
    table = run.warehouse.table(run.spec.table)
    with run.warehouse.engine.connect() as conn:  # a read: no write transaction (no SQLite write lock)
        for chunk in chunked(holders):
            query = sa.select(table.c.id, table.c.company_id, table.c.move_type, table.c.name).where(
                table.c.id.in_(chunk), table.c.deleted_at.is_(None)
            )
            held.update((rid, (company_id, move_type, name)) for rid, company_id, move_type, name in conn.execute(query))
    freed = sorted(rid for rid, claim in report.refused_names.items() if claim not in held)
    if not freed:
        return
    run.logger.info(f"odoo {run.spec.entity}: ids {freed[:10]} were refused names their holders gave up later in "
                    "this run; reading them again")
    run.reread_by_id(freed)


def _release_names_of_deleted_holders(run: ModelSyncRun) -> None:
    """Free the names held by invoices Odoo has deleted since they were synced, and land the
    invoices that were refused those names, in this run.

    Odoo hands the number of a deleted draft to the next invoice, so "another invoice holds
    this name" often means "the holder is gone". Hard deletes are otherwise only seen by the
    nightly full read; asking Odoo about just the holders settles it now, so the newest
    invoice is not missing until midnight (the old setup's top complaint)."""
    spec = run.spec
    holders = sorted({holder for holder, _ in run.report.refused_names.values()})
    existing = run.existing_ids(holders)
    gone = [h for h in holders if h not in existing]
    if not gone:
        return
    table = run.warehouse.table(spec.table)
    now = utcnow()
    with run.warehouse.transaction() as tx:
        marked = tx.execute(
            table.update().where(table.c.id.in_(gone), table.c.deleted_at.is_(None)).values(deleted_at=now, synced_at=now)
        ).rowcount
    run.report.deleted += marked
    run.logger.info(f"odoo {spec.entity}: ids {gone[:10]} were deleted in Odoo; their names are free again")
    run.retry_open_rejects()
