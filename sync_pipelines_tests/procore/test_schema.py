"""Migration 0008: projects landed before it are linked to every connection that listed their company."""

from __future__ import annotations

import sqlalchemy as sa

from sync_pipelines.warehouse import migrate
from sync_pipelines.warehouse.engine import create_warehouse_engine


def test_0008_links_existing_projects_to_the_connections_with_a_projects_cursor_of_their_company(database_url):
    engine = create_warehouse_engine(database_url)
    migrate.upgrade(engine, "0006_procore")
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        for pid, company, deleted in ((1, 8001, None), (2, 8001, now), (3, 8002, None)):
            conn.execute(sa.text(
                "INSERT INTO procore_projects (id, company_id, deleted_at, synced_at) VALUES (:id, :c, :d, :now)"
            ), {"id": pid, "c": company, "d": deleted, "now": now})
        for entity in ("projects/7001/8001", "projects/7004/8001", "rfis/7001/1", "companies/7001"):
            conn.execute(sa.text(
                "INSERT INTO sync_state (source, entity, cursor, synced_at) VALUES ('procore', :e, 'null', :now)"
            ), {"e": entity, "now": now})
    migrate.upgrade(engine)
    with engine.connect() as conn:
        links = conn.execute(sa.text(
            "SELECT project_id, user_id, company_id FROM procore_project_listings ORDER BY user_id, project_id"
        )).all()
    engine.dispose()
    assert [tuple(link) for link in links] == [(1, "7001", 8001), (1, "7004", 8001)]  # not the deleted one
