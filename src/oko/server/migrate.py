"""Schema migrations (Alembic), run programmatically: at server start and by
``oko server migrate``. The scripts live inside the package (``migrations/``), so a wheel
carries them.

On PostgreSQL an advisory lock makes concurrent starts (several workers or hosts) run the
migrations once; SQLite serialises them with its own write lock.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

from oko.server.db import Database

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_ID = 0x6F6B6F  # "oko"


def _config(connection: sa.Connection):  # -> alembic.config.Config
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (no-op when it is there already)."""
    from alembic import command

    with db.write() as conn:
        if not db.is_sqlite:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        before = _revision(conn)
        command.upgrade(_config(conn), revision)
        after = _revision(conn)
    if before != after:
        log.info("database schema migrated from %s to %s", before or "empty", after)


def downgrade(db: Database, revision: str) -> None:
    from alembic import command

    with db.write() as conn:
        if not db.is_sqlite:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        command.downgrade(_config(conn), revision)


def _revision(conn: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()
