"""Database tables of the central server (SQLAlchemy Core; the same schema on SQLite and
PostgreSQL). Alembic migrations in ``migrations/versions`` create exactly this schema;
``tests/test_server_migrations.py`` checks that the two agree.

Times are Unix seconds (float). ``events`` is the big table: one row per event, unique per
``(node_id, event_id)`` so a retried batch never stores an event twice, with the fields
that queries filter on pulled out of ``data`` into indexed columns. ``counts`` holds line
and zone counts per hour, maintained at ingest (only for events actually inserted), so
charts over months never scan ``events``. ``plates`` and ``plate_keys`` make fuzzy plate
search an index lookup (see ``plates.py``).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
})

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: rowid alias


def _bytewise(length: int) -> sa.types.TypeEngine:
    """Text compared byte-wise on PostgreSQL too, so a prefix is an index range scan."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


PlateText = _bytewise(32)

nodes = sa.Table(
    "nodes", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("last_seen", sa.Float),
    sa.Column("last_ip", sa.String(64)),
    sa.Column("info", sa.Text),  # JSON from the latest heartbeat
    sa.Column("events_total", sa.BigInteger, nullable=False, server_default="0"),
)

channels = sa.Table(
    "channels", metadata,
    sa.Column("node_id", sa.String(64), sa.ForeignKey("nodes.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("channel_id", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(32)),
    sa.Column("state_changed", sa.Float),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_event", sa.Float),
    sa.Column("info", sa.Text),
)

events = sa.Table(
    "events", metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("node_id", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("channel_id", sa.String(64), nullable=False),
    sa.Column("time", sa.Float, nullable=False),  # the edge's wall_time
    sa.Column("stream_ts", sa.Float, nullable=False),
    sa.Column("frame_index", sa.BigInteger, nullable=False),
    sa.Column("received", sa.Float, nullable=False),
    sa.Column("label", sa.String(64)),
    sa.Column("track_id", sa.BigInteger),
    sa.Column("name", sa.String(64)),  # line or zone
    sa.Column("direction", sa.String(16)),  # in/out (lines)
    sa.Column("plate", PlateText),  # normalised plate text
    sa.Column("person", _bytewise(128)),  # case-folded identity
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("snapshot", sa.String(200)),  # path relative to the snapshot dir
    sa.Column("snapshot_size", sa.Integer),
    sa.UniqueConstraint("node_id", "event_id"),
    sa.Index(None, "time"),
    sa.Index(None, "received"),
    sa.Index(None, "node_id", "channel_id", "time"),
    sa.Index(None, "type", "time"),
    sa.Index(None, "label", "time", sqlite_where=sa.text("label IS NOT NULL"),
             postgresql_where=sa.text("label IS NOT NULL")),
    sa.Index(None, "plate", "time", sqlite_where=sa.text("plate IS NOT NULL"),
             postgresql_where=sa.text("plate IS NOT NULL")),
    sa.Index(None, "person", "time", sqlite_where=sa.text("person IS NOT NULL"),
             postgresql_where=sa.text("person IS NOT NULL")),
)

counts = sa.Table(
    "counts", metadata,
    sa.Column("bucket", sa.BigInteger, primary_key=True),  # hour start, Unix seconds (UTC)
    sa.Column("node_id", sa.String(64), primary_key=True),
    sa.Column("channel_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(8), primary_key=True),  # line | zone
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("direction", sa.String(16), primary_key=True),  # in/out, enter/exit
    sa.Column("label", sa.String(64), primary_key=True),  # "" when unknown
    sa.Column("n", sa.BigInteger, nullable=False),
)

plates = sa.Table(
    "plates", metadata,
    sa.Column("plate", PlateText, primary_key=True),
    sa.Column("first_seen", sa.Float, nullable=False),
)

plate_keys = sa.Table(
    "plate_keys", metadata,
    sa.Column("key", PlateText, primary_key=True),
    sa.Column("plate", PlateText, primary_key=True),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index(None, "expires_at"),
)
