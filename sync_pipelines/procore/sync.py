"""One connection's sync of companies, projects and RFIs: per-connection cursors that commit with
their listing's last page, an overlap on ``filters[updated_at]``, full-mode deletions limited by
``procore_project_listings``, and a spent rate budget kept as a backlog, not a failure. The
story: ``sync_pipelines/procore/README.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sync_pipelines.http_client import VendorHTTPError
from sync_pipelines.kit import Cursor, SyncReport, land_batch, metric
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


def _land_listing(
    warehouse: Warehouse, client_pages: Iterable[list[dict]], spec: EntitySpec, cursor_entity: str,
    parent: dict[str, Any], report: ProcoreSyncReport,
    with_page: Callable[[WarehouseTransaction, list[dict]], None] | None = None,
) -> tuple[set[int], str | None]:
    """Upsert every page of one listing; its cursor commits with the last page."""
    seen: set[int] = set()
    newest: str | None = warehouse.get_cursor(SOURCE, cursor_entity)
    set_aside = 0
    pages = iter(client_pages)
    page = next(pages, None)
    while page is not None:
        following = next(pages, None)  # read ahead: the last page's transaction carries the cursor
        rows, rejects = spec.rows(page, parent)
        rows.sort(key=lambda row: row["id"])  # one lock order for runs of two users of one company
        seen.update(row["id"] for row in rows)
        stamps = [r["updated_at"].strftime("%Y-%m-%dT%H:%M:%SZ") for r in rows if r["updated_at"]]
        newest = max([v for v in (newest, *stamps) if v], default=None)
        set_aside += len(rejects)
        # A listing that set a record aside keeps its cursor: the next run reads it again (free
        # for the rest: unchanged rows are not written), so the record lands once it is fixed.
        last = following is None and newest is not None and not set_aside
        with warehouse.transaction() as tx:
            landing = land_batch(
                tx, spec.table, rows, source=SOURCE, entity=spec.entity, landed_keys=[r["id"] for r in rows],
                rejects=rejects, cursor=Cursor(cursor_entity, newest) if last else None,
                upsert_options={"key": ("id",)},
            )
            if with_page is not None:
                with_page(tx, rows)
        report.fetched += len(page)
        report.counts += landing.counts
        report.rejected += landing.rejected
        report.add_reject_samples(f"{r.key}: {r.reason}" for r in rejects)
        page = following
    report.listings += 1
    return seen, newest


def _mark_deleted(warehouse: Warehouse, table: str, parent_column: str, parent_id: int, seen: set[int]) -> int:
    """A full listing of a parent this connection sees completed (RFIs: a user who sees a project
    sees its RFI list): rows of that parent Procore no longer returns get ``deleted_at``."""
    t = warehouse.table(table)
    with warehouse.transaction() as tx:
        live = set(tx.conn.execute(
            sa.select(t.c.id).where(t.c[parent_column] == parent_id, t.c.deleted_at.is_(None))
        ).scalars())
        gone = sorted(live - seen)
        now = utcnow()
        for chunk in chunked(gone):
            tx.conn.execute(t.update().where(t.c.id.in_(chunk)).values(deleted_at=now, synced_at=now))
    return len(gone)


def _record_listed(scope: SyncScope, company_id: int) -> Callable[[WarehouseTransaction, list[dict]], None]:
    """Link each listed project to this connection, with the page (existing links are not rewritten)."""
    def record(tx: WarehouseTransaction, rows: list[dict]) -> None:
        links = [{"project_id": r["id"], "user_id": scope.user_id, "company_id": company_id, "first_listed_at": utcnow()}
                 for r in rows]
        tx.upsert(LISTINGS, links, key=("project_id", "user_id"), insert_only=("first_listed_at",), stamp_column=None)
    return record


def _mark_projects_deleted(warehouse: Warehouse, scope: SyncScope, company_id: int, seen: set[int]) -> int:
    """A full listing of one company completed: this connection's links to projects it no longer
    lists go, then projects of the company no connection (but a disconnected one) lists get
    ``deleted_at``. Users see different projects, so one user's listing alone proves nothing."""
    links, projects = warehouse.table(LISTINGS), warehouse.table(PROJECTS.table)
    connections = warehouse.table("procore_connections")
    with warehouse.transaction() as tx:
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
    with warehouse.transaction() as tx:
        landing = land_batch(
            tx, COMPANIES.table, rows, source=SOURCE, entity=COMPANIES.entity, landed_keys=[r["id"] for r in rows],
            rejects=rejects, cursor=Cursor(_entity("companies", scope.user_id), wanted), upsert_options={"key": ("id",)},
        )
    report.fetched, report.counts, report.rejected, report.listings = len(records), landing.counts, landing.rejected, 1
    report.add_reject_samples(f"{r.key}: {r.reason}" for r in rejects)
    return report


def company_ids(warehouse: Warehouse, scope: SyncScope) -> list[int]:
    """The companies this connection syncs: its own, or every one its user saw last."""
    seen = warehouse.get_cursor(SOURCE, _entity("companies", scope.user_id)) or []
    return [c for c in seen if scope.company_id in (None, c)]


def sync_projects(client: ProcoreClient, warehouse: Warehouse, scope: SyncScope) -> ProcoreSyncReport:
    report = ProcoreSyncReport("projects", scope.mode)
    companies = company_ids(warehouse, scope)
    for index, company_id in enumerate(companies):
        cursor_entity = _entity("projects", scope.user_id, company_id)
        try:
            pages = client.projects(company_id, _since(warehouse.get_cursor(SOURCE, cursor_entity), scope))
            seen, _ = _land_listing(warehouse, pages, PROJECTS, cursor_entity, {"company_id": company_id}, report,
                                    with_page=_record_listed(scope, company_id))
        except RateBudgetSpent as spent:
            report.stop_for_budget(spent, companies[index:])
            return report
        if scope.full:
            report.deleted += _mark_projects_deleted(warehouse, scope, company_id, seen)
    return report


def _projects_to_sync(warehouse: Warehouse, scope: SyncScope, companies: list[int]) -> list[tuple[int, int]]:
    """(company, project) pairs this connection lists, last run's backlog first, then by id."""
    t, links = warehouse.table(PROJECTS.table), warehouse.table(LISTINGS)
    listed = sa.select(links.c.project_id).where(links.c.user_id == scope.user_id)
    with warehouse.engine.connect() as conn:
        pairs = conn.execute(
            sa.select(t.c.company_id, t.c.id).where(
                t.c.company_id.in_(companies), t.c.deleted_at.is_(None), t.c.id.in_(listed)).order_by(t.c.id)
        ).all() if companies else []
    backlog = set(warehouse.get_cursor(SOURCE, _entity("rfis_backlog", scope.user_id)) or [])
    return sorted(((c, p) for c, p in pairs), key=lambda pair: (pair[1] not in backlog, pair[1]))


def sync_rfis(client: ProcoreClient, warehouse: Warehouse, scope: SyncScope) -> ProcoreSyncReport:
    report = ProcoreSyncReport("rfis", scope.mode)
    todo = _projects_to_sync(warehouse, scope, company_ids(warehouse, scope))
    for index, (company_id, project_id) in enumerate(todo):
        cursor_entity = _entity("rfis", scope.user_id, project_id)
        try:
            pages = client.rfis(company_id, project_id, _since(warehouse.get_cursor(SOURCE, cursor_entity), scope))
            parent = {"company_id": company_id, "project_id": project_id}
            seen, _ = _land_listing(warehouse, pages, RFIS, cursor_entity, parent, report)
        except RateBudgetSpent as spent:
            report.stop_for_budget(spent, [p for _, p in todo[index:]])
            break
        except VendorHTTPError as exc:
            if exc.status != 404:
                raise
            continue  # the project went away since the projects step; a full run marks it
        if scope.full:
            report.deleted += _mark_deleted(warehouse, RFIS.table, "project_id", project_id, seen)
    with warehouse.transaction() as tx:
        tx.set_cursor(SOURCE, _entity("rfis_backlog", scope.user_id), report.backlog)
    return report
