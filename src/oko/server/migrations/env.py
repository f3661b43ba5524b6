"""Alembic environment: migrations run programmatically on a connection given by
:func:`oko.server.migrate.upgrade` (there is no alembic.ini)."""

from __future__ import annotations

from alembic import context

from oko.server.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover
    raise RuntimeError("run migrations with `oko server migrate` (oko.server.migrate.upgrade)")

context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
