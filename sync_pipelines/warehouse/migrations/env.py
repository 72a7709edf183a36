"""Alembic environment of the destination database.

Run through :func:`sync_pipelines.warehouse.migrate.upgrade`, which hands over an open
connection; the version table is ``sync_alembic_version`` so that the destination can
share a Postgres database with Dagster's own storage (which uses ``alembic_version``).
"""

from alembic import context

from sync_pipelines.warehouse.migrate import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called with a connection
    raise RuntimeError("run migrations through sync_pipelines.warehouse.migrate.upgrade()")

context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
