"""Cars: drop the (source, status_checked_at) index, which the planner took for key lookups.

With a table filling up in one load (stale statistics), Postgres looked cars up by key
through this index on ``source`` alone, filtering ``source_id``: every lookup read every
car of the source, so a full sync grew quadratic (seconds per 5,000-car batch). The index
served no query well either: the round-robin's order (``status_checked_at`` NULLS FIRST,
then ``source_id``) is not its order, so that query sorts the source's cars anyway.
Without it, a key lookup has only the primary key (source, source_id) to use.

Revision ID: 0010_cars_drop_checked_index
Revises: 0002_cars
"""

from alembic import op

revision = "0010_cars_drop_checked_index"
down_revision = "0002_cars"
branch_labels = None
depends_on = None

INDEX = "ix_cars_source_status_checked"


def upgrade() -> None:
    op.drop_index(INDEX, table_name="cars")


def downgrade() -> None:
    op.create_index(INDEX, "cars", ["source", "status_checked_at"])
