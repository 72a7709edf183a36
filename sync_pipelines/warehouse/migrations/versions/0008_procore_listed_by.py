"""Procore: which connections list each project, so a full sync deletes only what it saw go.

Users of one company see different projects (Procore lists only what a user may see), so a
full run of one connection cannot tell from its listing alone that a project is gone.
``procore_project_listings`` holds one row per (project, connection) that listed it; a full
run drops the rows of projects it no longer lists and sets ``deleted_at`` only on projects
no connection lists any more. Existing projects are linked to every connection that has a
projects cursor for their company: an over-approximation that only delays deletions.

Revision ID: 0008_procore_listed_by
Revises: 0006_procore
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

from sync_pipelines.warehouse.types import Timestamp

revision = "0008_procore_listed_by"
down_revision = "0006_procore"
branch_labels = None
depends_on = None


def upgrade() -> None:
    listings = op.create_table(
        "procore_project_listings",
        sa.Column("project_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("company_id", sa.BigInteger, nullable=False),
        sa.Column("first_listed_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "user_id", name="pk_procore_project_listings"),
    )
    op.create_index("ix_procore_project_listings_user_company", "procore_project_listings", ["user_id", "company_id"])
    conn = op.get_bind()
    state = sa.table("sync_state", sa.column("source"), sa.column("entity"))
    projects = sa.table("procore_projects", sa.column("id"), sa.column("company_id"), sa.column("deleted_at"))
    now = dt.datetime.now(dt.timezone.utc)
    for (entity,) in conn.execute(
        sa.select(state.c.entity).where(state.c.source == "procore", state.c.entity.like("projects/%"))
    ):
        _, user_id, company = entity.split("/", 2)
        if not company.isdigit():
            continue
        ids = conn.execute(sa.select(projects.c.id).where(
            projects.c.company_id == int(company), projects.c.deleted_at.is_(None))).scalars().all()
        if ids:
            conn.execute(listings.insert(), [
                {"project_id": pid, "user_id": user_id, "company_id": int(company), "first_listed_at": now} for pid in ids
            ])


def downgrade() -> None:
    op.drop_table("procore_project_listings")
