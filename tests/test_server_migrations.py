"""Central server schema: the Alembic migrations build exactly the tables the code uses.

Runs on SQLite and on a real PostgreSQL (see server_helpers.py).
"""

from __future__ import annotations

import sqlalchemy as sa

from oko.server import migrate
from oko.server.db import Database
from oko.server.models import metadata
from server_helpers import db_url, pg_server  # noqa: F401


def schema_diff(db: Database) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, metadata)


def index_names(db: Database) -> set[str]:
    return {ix["name"] for ix in sa.inspect(db.engine).get_indexes("events")}


def test_migrations_match_the_models_and_go_both_ways(db_url):
    db = Database(db_url)
    try:
        assert migrate.current_revision(db) is None
        migrate.upgrade(db)
        assert migrate.current_revision(db) == migrate.head_revision()
        assert schema_diff(db) == []
        assert {"ix_events_time", "ix_events_node_id_channel_id_time", "ix_events_type_time",
                "ix_events_plate_time", "ix_events_person_time", "ix_events_label_time",
                "ix_events_received"} <= index_names(db)
        migrate.upgrade(db)  # a second start changes nothing
        assert schema_diff(db) == []
        migrate.downgrade(db, "base")
        tables = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert tables == set()
        migrate.upgrade(db)
        assert schema_diff(db) == []
    finally:
        db.dispose()


def test_the_diff_check_would_notice_a_missing_index(db_url):
    """Guards the test above: a schema that differs from the models is reported."""
    db = Database(db_url)
    try:
        migrate.upgrade(db)
        with db.write() as conn:
            conn.execute(sa.text("DROP INDEX ix_events_plate_time"))
        assert any("ix_events_plate_time" in str(d) for d in schema_diff(db))
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
    finally:
        db.dispose()
