"""Edge nodes and their channels: heartbeats in, health out.

A node is registered by an admin (``oko server add-node`` or the dashboard), which gives
it its key. The node then reports itself: every ingest request and every heartbeat
(``POST /api/v1/ingest/heartbeat``, sent by the ``server`` sink) marks it seen; a
heartbeat also declares its channels with their states (``running``, ``reconnecting``,
...), the software version and the sink's queue statistics. Channels are also learnt
from events, and ``channel_state`` events update their state. A node not heard from for
``node_offline_s`` is *offline*.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from oko.server.db import Database
from oko.server.ingest import CHANNEL_ID
from oko.server.models import channels, nodes

MAX_INFO_BYTES = 4096


def _small(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, allow_nan=False)) > MAX_INFO_BYTES:
        raise ValueError(f"larger than {MAX_INFO_BYTES} bytes as JSON")
    return value


class ChannelStatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=CHANNEL_ID)
    state: str | None = Field(None, pattern=r"^[a-z][a-z_]{0,31}$")
    info: dict[str, Any] | None = None

    _info = field_validator("info")(_small)


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    node: str | None = Field(None, max_length=64)
    version: str | None = Field(None, max_length=32, pattern=r"^[A-Za-z0-9_.+-]+$")
    uptime_s: float | None = Field(None, ge=0, le=1e10)
    channels: list[ChannelStatusIn] = Field(default_factory=list, max_length=1000)
    sink: dict[str, Any] | None = None

    _sink = field_validator("sink")(_small)


def heartbeat(db: Database, node_id: str, beat: HeartbeatIn, client: str | None) -> None:
    now = time.time()
    info = {"version": beat.version, "uptime_s": beat.uptime_s, "sink": beat.sink}
    ins = db.insert(channels)
    upsert = ins.on_conflict_do_update(
        index_elements=["node_id", "channel_id"],
        set_={"state": sa.func.coalesce(ins.excluded.state, channels.c.state),
              "state_changed": sa.case(
                  (sa.and_(ins.excluded.state.is_not(None),
                           sa.or_(channels.c.state.is_(None),
                                  channels.c.state != ins.excluded.state)),
                   ins.excluded.state_changed), else_=channels.c.state_changed),
              "info": sa.func.coalesce(ins.excluded.info, channels.c.info)})
    rows = {ch.id: {"node_id": node_id, "channel_id": ch.id, "state": ch.state,
                    "state_changed": now if ch.state else None, "first_seen": now,
                    "info": json.dumps(ch.info) if ch.info is not None else None}
            for ch in beat.channels}
    with db.write() as conn:
        if rows:
            conn.execute(upsert, [rows[k] for k in sorted(rows)])
        values: dict[str, Any] = {"last_seen": now, "info": json.dumps(info)}
        if client:
            values["last_ip"] = client[:64]
        conn.execute(nodes.update().where(nodes.c.id == node_id).values(**values))


def node_status(db: Database, offline_after_s: float) -> list[dict[str, Any]]:
    """Every node with its health and channels, for the API and the dashboard."""
    now = time.time()
    with db.engine.connect() as conn:
        node_rows = conn.execute(sa.select(
            nodes.c.id, nodes.c.created_at, nodes.c.disabled, nodes.c.last_seen,
            nodes.c.last_ip, nodes.c.info, nodes.c.events_total, nodes.c.key_prefix)
            .order_by(nodes.c.id)).all()
        channel_rows = conn.execute(sa.select(channels).order_by(
            channels.c.node_id, channels.c.channel_id)).all()
    by_node: dict[str, list[dict[str, Any]]] = {}
    for ch in channel_rows:
        by_node.setdefault(ch.node_id, []).append({
            "id": ch.channel_id, "state": ch.state, "state_changed": ch.state_changed,
            "last_event": ch.last_event, "first_seen": ch.first_seen,
            "info": json.loads(ch.info) if ch.info else None})
    out = []
    for n in node_rows:
        if n.disabled:
            health = "disabled"
        elif n.last_seen is None:
            health = "never seen"
        elif now - n.last_seen > offline_after_s:
            health = "offline"
        else:
            health = "online"
        info = json.loads(n.info) if n.info else {}
        out.append({"id": n.id, "health": health, "online": health == "online",
                    "disabled": bool(n.disabled), "created_at": n.created_at,
                    "last_seen": n.last_seen, "last_ip": n.last_ip,
                    "events_total": int(n.events_total), "key_prefix": n.key_prefix,
                    "version": info.get("version"), "uptime_s": info.get("uptime_s"),
                    "sink": info.get("sink"), "channels": by_node.get(n.id, [])})
    return out
