"""One connection's sync of companies, projects and RFIs: per-connection cursors that commit with
their listing's last page, an overlap on ``filters[updated_at]``, full-mode deletions limited by
``procore_project_listings``, and a spent rate budget kept as a backlog, not a failure. The
story: ``sync_pipelines/procore/README.md``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sync_pipelines.http_client import VendorHTTPError
from sync_pipelines.kit import Cursor, OpenRejectKeys, Reject, SyncReport, land_batch, metric
from sync_pipelines.procore.client import ProcoreClient, RateBudgetSpent
from sync_pipelines.procore.connections import DISCONNECTED
from sync_pipelines.procore.models import COMPANIES, PROJECTS, RFIS, EntitySpec, parse_time
from sync_pipelines.procore.settings import DEFAULT_OVERLAP_SECONDS, SOURCE
from sync_pipelines.warehouse import Warehouse, WarehouseTransaction, chunked, utcnow

LISTINGS = "procore_project_listings"  # (project, connection) pairs: who lists which project


def _ids_text(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids[:50]) or "none"


@dataclass
class ProcoreSyncReport(SyncReport):
    """What one entity's sync did for one connection; its run metadata comes from the fields."""

    deleted: int = 0
    listings: int = 0  # list endpoints read to the end (one call each on a no-op run)
    backlog: list[int] = field(default_factory=list, metadata=metric(render=len))
    backlog_ids: list[int] = field(default_factory=list, metadata=metric(render=_ids_text))
    budget_spent: str | None = None  # why the run stopped early, when it did

    def stop_for_budget(self, spent: RateBudgetSpent, not_done: list[int]) -> None:
        self.budget_spent, self.backlog, self.backlog_ids = str(spent), list(not_done), list(not_done)


@dataclass(frozen=True)
class SyncScope:
    """Who syncs what: the connection's user and the company it was connected for (or all)."""

    user_id: str
    company_id: int | None
    mode: str = "incremental"
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS

    @property
    def full(self) -> bool:
        return self.mode == "full"


def _entity(*parts: Any) -> str:
    return "/".join(str(p) for p in parts)


def _since(cursor: str | None, scope: SyncScope) -> str | None:
    if scope.full or not cursor:
        return None
    start = parse_time(cursor) - dt.timedelta(seconds=scope.overlap_seconds)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


# Rows of a step's listings landed per transaction: many small listings (a connection's
# projects' RFIs) share one, a large listing is still cut into bounded batches.
FLUSH_ROWS = 1000


def _stamp_text(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Lander:
    """The pages of one step's listings, landed a transaction per ``FLUSH_ROWS`` rows and at the
    end. A listing's cursor commits with (or after) its last rows, so a run stopped midway
    re-reads an unfinished listing and never skips a record; a cursor that did not move is not
    written. ``cursors``: the step's stored cursors (read once, :func:`_read_cursors`);
    ``open_rejects``: the entity's rejects that may be open (read at the step's start)."""

    def __init__(
        self, warehouse: Warehouse, spec: EntitySpec, report: ProcoreSyncReport, cursors: dict[str, Any], *,
        open_rejects: OpenRejectKeys,
        links: Callable[[dict, list[dict]], list[dict]] | None = None,
        mark_deleted: Callable[[WarehouseTransaction, list[tuple[dict, set[int]]]], int] | None = None,
    ):
        self.warehouse, self.spec, self.report, self.cursors = warehouse, spec, report, cursors
        self.open_rejects = open_rejects
        self.links = links  # (parent, rows) -> procore_project_listings rows, written with the rows
        self.mark_deleted = mark_deleted  # full mode: (tx, [(parent, ids listed)]) -> rows marked
        self._clear()

    def _clear(self) -> None:
        self.rows: dict[int, dict] = {}  # by id: a record repeated across pages lands once, as last read
        self.rejects: list[Reject] = []
        self.link_rows: dict[int, dict] = {}
        self.new_cursors: dict[str, Any] = {}
        self.completed: list[tuple[dict, set[int]]] = []

    def listing(self, pages: Iterable[list[dict]], cursor_entity: str, parent: dict[str, Any]) -> None:
        """Read one listing to its end (its rows land with later flushes)."""
        seen: set[int] = set()
        newest: str | None = self.cursors.get(cursor_entity)
        set_aside = 0
        for page in pages:
            rows, rejects = self.spec.rows(page, parent)
            stamps = [r["updated_at"] for r in rows if r["updated_at"]]
            if stamps:
                newest = max(filter(None, (newest, _stamp_text(max(stamps)))))
            for row in rows:
                self.rows[row["id"]] = row
            seen.update(row["id"] for row in rows)
            if self.links is not None:
                self.link_rows.update((link["project_id"], link) for link in self.links(parent, rows))
            set_aside += len(rejects)
            self.rejects += rejects
            self.report.fetched += len(page)
            self.report.add_reject_samples(f"{r.key}: {r.reason}" for r in rejects)
            if len(self.rows) >= FLUSH_ROWS:
                self.flush()
        self.report.listings += 1
        # A listing that set a record aside keeps its cursor: the next run reads it again (free
        # for the rest: unchanged rows are not written), so the record lands once it is fixed.
        if newest is not None and not set_aside and newest != self.cursors.get(cursor_entity):
            self.new_cursors[cursor_entity] = newest
        if self.mark_deleted is not None:
            self.completed.append((parent, seen))

    def flush(self) -> None:
        if not (self.rows or self.rejects or self.new_cursors or self.completed):
            return
        rows = sorted(self.rows.values(), key=lambda row: row["id"])  # one lock order for runs of two users
        with self.warehouse.transaction() as tx:
            landing = land_batch(
                tx, self.spec.table, rows, source=SOURCE, entity=self.spec.entity, landed_keys=list(self.rows),
                rejects=self.rejects, upsert_options={"key": ("id",)}, open_keys=self.open_rejects,
            )
            if self.link_rows:
                tx.upsert(LISTINGS, [self.link_rows[k] for k in sorted(self.link_rows)], key=("project_id", "user_id"),
                          insert_only=("first_listed_at",), stamp_column=None)
            deleted = self.mark_deleted(tx, self.completed) if self.completed else 0
            tx.set_cursors(SOURCE, self.new_cursors)
        self.report.counts += landing.counts
        self.report.rejected += landing.rejected
        self.report.deleted += deleted
        self.cursors.update(self.new_cursors)
        self._clear()


def _mark_rfis_deleted(tx: WarehouseTransaction, completed: list[tuple[dict, set[int]]]) -> int:
    """Full listings of projects this connection sees completed (a user who sees a project sees
    its RFI list): RFIs of those projects Procore no longer returns get ``deleted_at``."""
    t = tx.table(RFIS.table)
    listed = {parent["project_id"]: seen for parent, seen in completed}
    gone: list[int] = []
    for chunk in chunked(sorted(listed)):
        live = tx.conn.execute(sa.select(t.c.id, t.c.project_id).where(t.c.project_id.in_(chunk), t.c.deleted_at.is_(None)))
        gone += [rfi for rfi, project in live if rfi not in listed[project]]
    now = utcnow()
    for chunk in chunked(sorted(gone)):
        tx.conn.execute(t.update().where(t.c.id.in_(chunk)).values(deleted_at=now, synced_at=now))
    return len(gone)


def _listing_links(scope: SyncScope) -> Callable[[dict, list[dict]], list[dict]]:
    """Each listed project linked to this connection (existing links are not rewritten)."""
    def links(parent: dict, rows: list[dict]) -> list[dict]:
        now = utcnow()
        return [{"project_id": r["id"], "user_id": scope.user_id, "company_id": parent["company_id"],
                 "first_listed_at": now} for r in rows]
    return links


def _projects_deleted(scope: SyncScope) -> Callable[[WarehouseTransaction, list[tuple[dict, set[int]]]], int]:
    def mark(tx: WarehouseTransaction, completed: list[tuple[dict, set[int]]]) -> int:
        return sum(_mark_projects_deleted(tx, scope, parent["company_id"], seen) for parent, seen in completed)
    return mark


def _mark_projects_deleted(tx: WarehouseTransaction, scope: SyncScope, company_id: int, seen: set[int]) -> int:
    """A full listing of one company completed: this connection's links to projects it no longer
    lists go, then projects of the company no connection (but a disconnected one) lists get
    ``deleted_at``. Users see different projects, so one user's listing alone proves nothing."""
    links, projects = tx.table(LISTINGS), tx.table(PROJECTS.table)
    connections = tx.table("procore_connections")
    listed_before = set(tx.conn.execute(sa.select(links.c.project_id).where(
        links.c.user_id == scope.user_id, links.c.company_id == company_id)).scalars())
    for chunk in chunked(sorted(listed_before - seen)):
        tx.conn.execute(links.delete().where(links.c.user_id == scope.user_id, links.c.project_id.in_(chunk)))
    still_listed = sa.exists().where(
        links.c.project_id == projects.c.id, links.c.user_id == connections.c.user_id,
        connections.c.status != DISCONNECTED,
    )
    live = set(tx.conn.execute(sa.select(projects.c.id).where(
        projects.c.company_id == company_id, projects.c.deleted_at.is_(None), ~still_listed)).scalars())
    gone = sorted(live - seen)
    now = utcnow()
    for chunk in chunked(gone):
        tx.conn.execute(projects.update().where(projects.c.id.in_(chunk)).values(deleted_at=now, synced_at=now))
    return len(gone)


def sync_companies(client: ProcoreClient, warehouse: Warehouse, scope: SyncScope) -> ProcoreSyncReport:
    """Every company the user sees; the ids this connection syncs become its ``companies`` cursor."""
    report = ProcoreSyncReport("companies", scope.mode)
    try:
        records = [record for page in client.companies() for record in page]
    except RateBudgetSpent as spent:
        report.stop_for_budget(spent, [])
        return report
    rows, rejects = COMPANIES.rows(records, {})
    rows.sort(key=lambda row: row["id"])
    wanted = sorted(r["id"] for r in rows if scope.company_id in (None, r["id"]))
    cursor_entity = _entity("companies", scope.user_id)
    with warehouse.transaction() as tx:
        moved = tx.get_cursor(SOURCE, cursor_entity) != wanted  # an unchanged cursor is not rewritten
        landing = land_batch(
            tx, COMPANIES.table, rows, source=SOURCE, entity=COMPANIES.entity, landed_keys=[r["id"] for r in rows],
            rejects=rejects, cursor=Cursor(cursor_entity, wanted) if moved else None, upsert_options={"key": ("id",)},
        )
    report.fetched, report.counts, report.rejected, report.listings = len(records), landing.counts, landing.rejected, 1
    report.add_reject_samples(f"{r.key}: {r.reason}" for r in rejects)
    return report


def _read_cursors(conn: sa.Connection, warehouse: Warehouse, entities: list[str]) -> dict[str, Any]:
    """Stored cursors of ``entities`` (absent ones left out) read on ``conn``: a step's reads
    share one pooled connection (each checkout is a ping and a rollback more)."""
    state = warehouse.table("sync_state")
    found: dict[str, Any] = {}
    for chunk in chunked(entities):
        query = sa.select(state.c.entity, state.c.cursor).where(state.c.source == SOURCE, state.c.entity.in_(chunk))
        found.update((entity, json.loads(raw)) for entity, raw in conn.execute(query) if raw is not None)
    return found


def _synced_companies(scope: SyncScope, cursors: dict[str, Any]) -> list[int]:
    """The companies this connection syncs: its own, or every one its user saw last."""
    seen = cursors.get(_entity("companies", scope.user_id)) or []
    return [c for c in seen if scope.company_id in (None, c)]


def sync_projects(client: ProcoreClient, warehouse: Warehouse, scope: SyncScope) -> ProcoreSyncReport:
    report = ProcoreSyncReport("projects", scope.mode)
    with warehouse.engine.connect() as conn:
        companies = _synced_companies(scope, _read_cursors(conn, warehouse, [_entity("companies", scope.user_id)]))
        entities = {company_id: _entity("projects", scope.user_id, company_id) for company_id in companies}
        cursors = _read_cursors(conn, warehouse, list(entities.values()))
        open_rejects = OpenRejectKeys.read(warehouse, SOURCE, PROJECTS.entity, conn)
    lander = _Lander(warehouse, PROJECTS, report, cursors, open_rejects=open_rejects, links=_listing_links(scope),
                     mark_deleted=_projects_deleted(scope) if scope.full else None)
    for index, company_id in enumerate(companies):
        try:
            pages = client.projects(company_id, _since(cursors.get(entities[company_id]), scope))
            lander.listing(pages, entities[company_id], {"company_id": company_id})
        except RateBudgetSpent as spent:
            report.stop_for_budget(spent, companies[index:])
            break
    lander.flush()
    return report


def _projects_to_sync(
    conn: sa.Connection, warehouse: Warehouse, scope: SyncScope, companies: list[int], backlog: list[int]
) -> list[tuple[int, int]]:
    """(company, project) pairs this connection lists, last run's backlog first, then by id."""
    t, links = warehouse.table(PROJECTS.table), warehouse.table(LISTINGS)
    listed = sa.select(links.c.project_id).where(links.c.user_id == scope.user_id)
    pairs = conn.execute(
        sa.select(t.c.company_id, t.c.id).where(
            t.c.company_id.in_(companies), t.c.deleted_at.is_(None), t.c.id.in_(listed)).order_by(t.c.id)
    ).all() if companies else []
    first = set(backlog)
    return sorted(((c, p) for c, p in pairs), key=lambda pair: (pair[1] not in first, pair[1]))


def sync_rfis(client: ProcoreClient, warehouse: Warehouse, scope: SyncScope) -> ProcoreSyncReport:
    report = ProcoreSyncReport("rfis", scope.mode)
    backlog_entity = _entity("rfis_backlog", scope.user_id)
    with warehouse.engine.connect() as conn:
        stored = _read_cursors(conn, warehouse, [_entity("companies", scope.user_id), backlog_entity])
        todo = _projects_to_sync(conn, warehouse, scope, _synced_companies(scope, stored), stored.get(backlog_entity) or [])
        entities = {project_id: _entity("rfis", scope.user_id, project_id) for _, project_id in todo}
        cursors = {**_read_cursors(conn, warehouse, list(entities.values())), **stored}
        open_rejects = OpenRejectKeys.read(warehouse, SOURCE, RFIS.entity, conn)
    lander = _Lander(warehouse, RFIS, report, cursors, open_rejects=open_rejects,
                     mark_deleted=_mark_rfis_deleted if scope.full else None)
    for index, (company_id, project_id) in enumerate(todo):
        try:
            pages = client.rfis(company_id, project_id, _since(cursors.get(entities[project_id]), scope))
            lander.listing(pages, entities[project_id], {"company_id": company_id, "project_id": project_id})
        except RateBudgetSpent as spent:
            report.stop_for_budget(spent, [p for _, p in todo[index:]])
            break
        except VendorHTTPError as exc:
            if exc.status != 404:
                raise
            continue  # the project went away since the projects step; a full run marks it
    if cursors.get(backlog_entity) != report.backlog:
        lander.new_cursors[backlog_entity] = report.backlog
    lander.flush()
    return report
