"""Initial schema: nodes, channels, events, hourly counts, plates, users, sessions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def bytewise(length: int) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def plate_text() -> sa.types.TypeEngine:
    return bytewise(32)


def partial(column: str) -> dict:
    where = sa.text(f"{column} IS NOT NULL")
    return {"sqlite_where": where, "postgresql_where": where}


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("last_seen", sa.Float),
        sa.Column("last_ip", sa.String(64)),
        sa.Column("info", sa.Text),
        sa.Column("events_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
        sa.UniqueConstraint("key_hash", name="uq_nodes_key_hash"),
    )
    op.create_table(
        "channels",
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32)),
        sa.Column("state_changed", sa.Float),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_event", sa.Float),
        sa.Column("info", sa.Text),
        sa.PrimaryKeyConstraint("node_id", "channel_id", name="pk_channels"),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], ondelete="CASCADE",
                                name="fk_channels_node_id_nodes"),
    )
    op.create_table(
        "events",
        sa.Column("seq", BigId, nullable=False, autoincrement=True),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("stream_ts", sa.Float, nullable=False),
        sa.Column("frame_index", sa.BigInteger, nullable=False),
        sa.Column("received", sa.Float, nullable=False),
        sa.Column("label", sa.String(64)),
        sa.Column("track_id", sa.BigInteger),
        sa.Column("name", sa.String(64)),
        sa.Column("direction", sa.String(16)),
        sa.Column("plate", plate_text()),
        sa.Column("person", bytewise(128)),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("snapshot", sa.String(200)),
        sa.Column("snapshot_size", sa.Integer),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("node_id", "event_id", name="uq_events_node_id_event_id"),
    )
    op.create_index("ix_events_time", "events", ["time"])
    op.create_index("ix_events_received", "events", ["received"])
    op.create_index("ix_events_node_id_channel_id_time", "events",
                    ["node_id", "channel_id", "time"])
    op.create_index("ix_events_type_time", "events", ["type", "time"])
    op.create_index("ix_events_label_time", "events", ["label", "time"], **partial("label"))
    op.create_index("ix_events_plate_time", "events", ["plate", "time"], **partial("plate"))
    op.create_index("ix_events_person_time", "events", ["person", "time"], **partial("person"))
    op.create_table(
        "counts",
        sa.Column("bucket", sa.BigInteger, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("bucket", "node_id", "channel_id", "kind", "name", "direction",
                                "label", name="pk_counts"),
    )
    op.create_table(
        "plates",
        sa.Column("plate", plate_text(), nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("plate", name="pk_plates"),
    )
    op.create_table(
        "plate_keys",
        sa.Column("key", plate_text(), nullable=False),
        sa.Column("plate", plate_text(), nullable=False),
        sa.PrimaryKeyConstraint("key", "plate", name="pk_plate_keys"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_sessions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_sessions_user_id_users"),
    )
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])


def downgrade() -> None:
    for table in ("sessions", "users", "plate_keys", "plates", "counts", "events", "channels",
                  "nodes"):
        op.drop_table(table)
