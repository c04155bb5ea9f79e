"""Alembic environment: always given a live connection by :mod:`aggregator.metadata.migrate`."""

from __future__ import annotations

from alembic import context

from aggregator.metadata.migrate import all_metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the alembic CLI is not how we migrate
    raise RuntimeError("run migrations with `aggregator.metadata.migrate.upgrade(engine)`")

context.configure(
    connection=connection,
    target_metadata=all_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
