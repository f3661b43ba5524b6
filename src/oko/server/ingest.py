"""Storing events: validation of every field, snapshots on disk, idempotent bulk insert.

Events arrive in the schema of :class:`oko.core.events.Event` (``Event.to_dict``), over
HTTP in batches (``{"node": ..., "events": [...]}``, the body the ``server`` and
``webhook`` sinks post) or one per MQTT message. :class:`Ingestor` stores a batch in one
transaction:

1. snapshots are written to ``<snapshots>/<node>/<YYYY-MM-DD>/<event id>.jpg`` (atomic
   rename; every path component is validated, the file name comes from the event id);
2. rows go in with one ``INSERT ... ON CONFLICT (node_id, event_id) DO NOTHING
   RETURNING event_id`` (multi-row VALUES on SQLite, ``SELECT FROM unnest(arrays)`` on
   PostgreSQL), so a batch posted twice stores each event once and tells which rows are
   new;
3. only the new rows update the hourly line/zone ``counts`` (upsert ``n = n + k``), the
   distinct ``plates`` and their fuzzy keys, then the node's and channels' status.

Event ids are unique per node: a node cannot suppress or overwrite another node's events.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from oko.server import plates as plate_text
from oko.server.db import Database
from oko.server.models import channels, counts, events, nodes, plate_keys
from oko.server.models import plates as plates_table
from oko.server.settings import ServerSettings

log = logging.getLogger(__name__)

EVENT_ID = r"^[A-Za-z0-9_-]{1,64}$"
EVENT_TYPE = r"^[a-z][a-z0-9_]{0,31}$"
CHANNEL_ID = r"^[A-Za-z0-9_.-]{1,64}$"
MIN_TIME, MAX_TIME = 946684800.0, 4102444800.0  # 2000-01-01 .. 2100-01-01
JPEG_MAGIC = b"\xff\xd8\xff"
COUNTED = {"line_crossing": "line", "zone_enter": "zone", "zone_exit": "zone"}
_B64_HARD_LIMIT = 64 * 2**20


class EventIn(BaseModel):
    """One event as an edge node sends it; every field is checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=EVENT_ID, description="Unique per node; retries reuse it.")
    type: str = Field(pattern=EVENT_TYPE)
    channel_id: str = Field(pattern=CHANNEL_ID)
    timestamp: float = Field(ge=-1e12, le=1e12, description="Stream time, seconds.")
    frame_index: int = Field(ge=-1, le=2**62)
    wall_time: float = Field(ge=MIN_TIME, le=MAX_TIME, description="Unix time of emission.")
    data: dict[str, Any] = Field(default_factory=dict)
    snapshot_jpeg: str | None = Field(None, max_length=_B64_HARD_LIMIT,
                                      description="Base64 JPEG.")

    @field_validator("timestamp", "wall_time")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class IngestBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    node: str | None = Field(None, max_length=64,
                             description="The sender's node id; must match its key.")
    events: list[EventIn]


# PostgreSQL: statements whose text never changes (parsed and planned once per
# connection), each taking one array per column: a batch is one round trip per table.
def _pg_bulk(table: str, columns: list[tuple[str, str]], tail: str) -> str:
    names = ", ".join(c for c, _ in columns)
    arrays = ", ".join(f"%b::{t}[]" for _, t in columns)
    return f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {tail}"


_PG_EVENT_COLUMNS = [
    ("node_id", "varchar"), ("event_id", "varchar"), ("type", "varchar"),
    ("channel_id", "varchar"), ("time", "float8"), ("stream_ts", "float8"),
    ("frame_index", "int8"), ("received", "float8"), ("label", "varchar"), ("track_id", "int8"),
    ("name", "varchar"), ("direction", "varchar"), ("plate", "varchar"), ("person", "varchar"),
    ("data", "text"), ("snapshot", "varchar"), ("snapshot_size", "int4")]
_PG_COUNT_COLUMNS = [("bucket", "int8"), ("node_id", "varchar"), ("channel_id", "varchar"),
                     ("kind", "varchar"), ("name", "varchar"), ("direction", "varchar"),
                     ("label", "varchar"), ("n", "int8")]
_PG_CHANNEL_COLUMNS = [("node_id", "varchar"), ("channel_id", "varchar"),
                       ("first_seen", "float8"), ("last_event", "float8"), ("state", "varchar"),
                       ("state_changed", "float8")]
_NEWER_STATE = ("EXCLUDED.state IS NOT NULL AND (channels.state_changed IS NULL "
                "OR EXCLUDED.state_changed >= channels.state_changed)")
_PG = {
    "events": (_PG_EVENT_COLUMNS, _pg_bulk(
        "events", _PG_EVENT_COLUMNS,
        "ON CONFLICT (node_id, event_id) DO NOTHING RETURNING event_id")),
    "counts": (_PG_COUNT_COLUMNS, _pg_bulk(
        "counts", _PG_COUNT_COLUMNS,
        "ON CONFLICT (bucket, node_id, channel_id, kind, name, direction, label) "
        "DO UPDATE SET n = counts.n + EXCLUDED.n")),
    "plates": ([("plate", "varchar"), ("first_seen", "float8")], _pg_bulk(
        "plates", [("plate", "varchar"), ("first_seen", "float8")],
        "ON CONFLICT (plate) DO NOTHING")),
    "plate_keys": ([("key", "varchar"), ("plate", "varchar")], _pg_bulk(
        "plate_keys", [("key", "varchar"), ("plate", "varchar")],
        "ON CONFLICT (key, plate) DO NOTHING")),
    "channels": (_PG_CHANNEL_COLUMNS, _pg_bulk(
        "channels", _PG_CHANNEL_COLUMNS,
        "ON CONFLICT (node_id, channel_id) DO UPDATE SET "
        "last_event = CASE WHEN channels.last_event IS NULL OR EXCLUDED.last_event > "
        "channels.last_event THEN EXCLUDED.last_event ELSE channels.last_event END, "
        f"state = CASE WHEN {_NEWER_STATE} THEN EXCLUDED.state ELSE channels.state END, "
        f"state_changed = CASE WHEN {_NEWER_STATE} THEN EXCLUDED.state_changed "
        "ELSE channels.state_changed END")),
}


class IngestError(ValueError):
    """An event the server refuses; ``loc`` names it (``events.3.snapshot_jpeg``)."""

    def __init__(self, loc: str, message: str) -> None:
        super().__init__(f"{loc}: {message}")
        self.loc = loc
        self.message = message


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int


def _text(value: Any, limit: int) -> str | None:
    """A non-empty string for an indexed column (NUL removed: PostgreSQL text refuses it)."""
    if isinstance(value, str) and value:
        return value.replace("\x00", "")[:limit] or None
    return None


def _int64(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63:
        return value
    return None


def columns_from(event: EventIn) -> dict[str, Any]:
    """The indexed columns pulled out of ``data`` (by event type)."""
    d = event.data
    name = _text(d.get("line"), 64) or _text(d.get("zone"), 64)
    direction = None
    if event.type == "line_crossing":
        direction = _text(d.get("direction"), 16)
    elif event.type in ("zone_enter", "zone_exit"):
        direction = event.type[5:]
    plate = None
    if "text" in d or "text_latin" in d:
        plate = plate_text.normalise(_text(d.get("text_latin"), 64) or _text(d.get("text"), 64))
    person = _text(d.get("person"), 128)
    return {"label": _text(d.get("label"), 64), "track_id": _int64(d.get("track_id")),
            "name": name, "direction": direction, "plate": plate,
            "person": person.casefold()[:128] if person else None}


def decode_snapshot(text: str, limit: int, loc: str) -> bytes:
    if len(text) > (limit + 2) // 3 * 4 + 4:
        raise IngestError(loc, f"snapshot larger than {limit} bytes")
    try:
        jpeg = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise IngestError(loc, f"not base64 ({exc})") from exc
    if len(jpeg) > limit:
        raise IngestError(loc, f"snapshot larger than {limit} bytes")
    if not jpeg.startswith(JPEG_MAGIC):
        raise IngestError(loc, "snapshot is not a JPEG")
    return jpeg


class SnapshotStore:
    """JPEG files under one root; paths are built from validated ids only."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def relative_path(self, node_id: str, event: EventIn) -> str:
        day = datetime.fromtimestamp(event.wall_time, UTC).strftime("%Y-%m-%d")
        return f"{node_id}/{day}/{event.id}.jpg"

    def resolve(self, relative: str) -> Path | None:
        """The file for a stored relative path, or None if it points outside the root."""
        root = self.root.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or path == root:
            return None
        return path

    def write(self, relative: str, jpeg: bytes) -> None:
        path = self.resolve(relative)
        if path is None:  # cannot happen with validated ids; refuse rather than write
            raise IngestError("snapshot", "invalid snapshot path")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(jpeg)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, relative: str) -> None:
        path = self.resolve(relative)
        if path is not None:
            path.unlink(missing_ok=True)


def _sqlite_statements(db: Database) -> dict[str, Any]:
    """The same statements as :data:`_PG`, for SQLite (executed with a list of rows)."""
    out: dict[str, Any] = {}
    ins = db.insert(events)
    out["events"] = ins.on_conflict_do_nothing(
        index_elements=["node_id", "event_id"]).returning(events.c.event_id)
    ins = db.insert(counts)
    out["counts"] = ins.on_conflict_do_update(
        index_elements=[c.name for c in counts.primary_key.columns],
        set_={"n": counts.c.n + ins.excluded.n})
    out["plates"] = db.insert(plates_table).on_conflict_do_nothing(index_elements=["plate"])
    out["plate_keys"] = db.insert(plate_keys).on_conflict_do_nothing(
        index_elements=["key", "plate"])
    ins = db.insert(channels)
    newer_event = sa.or_(channels.c.last_event.is_(None),
                         ins.excluded.last_event > channels.c.last_event)
    newer_state = sa.and_(ins.excluded.state.is_not(None), sa.or_(
        channels.c.state_changed.is_(None),
        ins.excluded.state_changed >= channels.c.state_changed))
    out["channels"] = ins.on_conflict_do_update(
        index_elements=["node_id", "channel_id"],
        set_={"last_event": sa.case((newer_event, ins.excluded.last_event),
                                    else_=channels.c.last_event),
              "state": sa.case((newer_state, ins.excluded.state), else_=channels.c.state),
              "state_changed": sa.case((newer_state, ins.excluded.state_changed),
                                       else_=channels.c.state_changed)})
    return out


class Ingestor:
    def __init__(self, db: Database, settings: ServerSettings) -> None:
        self.db = db
        self.settings = settings
        self.snapshots = SnapshotStore(settings.snapshot_dir)
        self._sqlite: dict[str, Any] = {}
        if db.is_sqlite:
            self._sqlite = _sqlite_statements(db)

    def _bulk(self, conn: sa.Connection, table: str, rows: list[dict[str, Any]]) -> Any:
        """One multi-row INSERT (upsert) of ``rows`` into ``table``, the dialect's way."""
        if self.db.is_sqlite:
            return conn.execute(self._sqlite[table], rows)
        columns, sql = _PG[table]
        return conn.exec_driver_sql(sql, tuple([r[c] for r in rows] for c, _ in columns))

    # ------------------------------------------------------------------ validation
    def prepare(self, node_id: str, batch: list[EventIn], received: float
                ) -> tuple[list[dict[str, Any]], list[tuple[str, bytes]]]:
        """Rows and snapshot files for a batch; raises :class:`IngestError`."""
        s = self.settings
        if len(batch) > s.max_batch_events:
            raise IngestError("events", f"more than {s.max_batch_events} events in one batch")
        rows: list[dict[str, Any]] = []
        files: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for i, ev in enumerate(batch):
            if ev.id in seen:  # the same id twice in one batch: keep the first
                continue
            seen.add(ev.id)
            try:
                data = json.dumps(ev.data, ensure_ascii=False, separators=(",", ":"),
                                  allow_nan=False)
            except ValueError as exc:
                raise IngestError(f"events.{i}.data", f"not JSON ({exc})") from exc
            if len(data.encode("utf-8")) > s.max_data_bytes:
                raise IngestError(f"events.{i}.data", f"larger than {s.max_data_bytes} bytes")
            row = {"node_id": node_id, "event_id": ev.id, "type": ev.type,
                   "channel_id": ev.channel_id, "time": ev.wall_time,
                   "stream_ts": ev.timestamp, "frame_index": ev.frame_index,
                   "received": received, "data": data, "snapshot": None,
                   "snapshot_size": None, **columns_from(ev)}
            if ev.snapshot_jpeg:
                jpeg = decode_snapshot(ev.snapshot_jpeg, s.max_snapshot_bytes,
                                       f"events.{i}.snapshot_jpeg")
                rel = self.snapshots.relative_path(node_id, ev)
                row["snapshot"], row["snapshot_size"] = rel, len(jpeg)
                files.append((rel, jpeg))
            rows.append(row)
        return rows, files

    # ------------------------------------------------------------------ storing
    def ingest(self, node_id: str, batch: list[EventIn], client: str | None = None
               ) -> IngestResult:
        """Validate and store a batch from one (authenticated) node."""
        received = time.time()
        rows, files = self.prepare(node_id, batch, received)
        for rel, jpeg in files:  # before the rows: a stored row always has its file
            self.snapshots.write(rel, jpeg)
        return self.store(node_id, rows, received, client, duplicates=len(batch) - len(rows))

    def store(self, node_id: str, rows: list[dict[str, Any]], received: float,
              client: str | None = None, duplicates: int = 0) -> IngestResult:
        with self.db.write() as conn:
            inserted = set(self._bulk(conn, "events", rows).scalars().all()) if rows else set()
            new_rows = [r for r in rows if r["event_id"] in inserted]
            self._count(conn, new_rows)
            self._plates(conn, new_rows, received)
            self._channels(conn, node_id, rows, received)
            values: dict[str, Any] = {"last_seen": received,
                                      "events_total": nodes.c.events_total + len(new_rows)}
            if client:
                values["last_ip"] = client[:64]
            conn.execute(nodes.update().where(nodes.c.id == node_id).values(**values))
        return IngestResult(len(new_rows), duplicates + len(rows) - len(new_rows))

    def _count(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        totals: dict[tuple, int] = defaultdict(int)
        for r in rows:
            kind = COUNTED.get(r["type"])
            if kind is None or not r["name"] or not r["direction"]:
                continue
            bucket = int(r["time"] // 3600) * 3600
            totals[(bucket, r["node_id"], r["channel_id"], kind, r["name"], r["direction"],
                    r["label"] or "")] += 1
        if totals:  # sorted: concurrent transactions lock rows in the same order
            keys = ("bucket", "node_id", "channel_id", "kind", "name", "direction", "label")
            self._bulk(conn, "counts", [dict(zip(keys, k, strict=True)) | {"n": n}
                                        for k, n in sorted(totals.items())])

    def _plates(self, conn: sa.Connection, rows: list[dict[str, Any]], now: float) -> None:
        found = sorted({r["plate"] for r in rows if r["plate"]})
        if not found:
            return
        self._bulk(conn, "plates", [{"plate": p, "first_seen": now} for p in found])
        # keys for every plate, not only new ones: retention may be deleting a plate
        # whose last event just expired while this batch brings it back
        keys = sorted({(k, p) for p in found for k in plate_text.deletion_keys(p)})
        self._bulk(conn, "plate_keys", [{"key": k, "plate": p} for k, p in keys])

    def _channels(self, conn: sa.Connection, node_id: str, rows: list[dict[str, Any]],
                  now: float) -> None:
        latest: dict[str, dict[str, Any]] = {}
        for r in rows:
            ch = latest.setdefault(r["channel_id"], {
                "node_id": node_id, "channel_id": r["channel_id"], "first_seen": now,
                "last_event": r["time"], "state": None, "state_changed": None})
            ch["last_event"] = max(ch["last_event"], r["time"])
            if r["type"] == "channel_state":
                state = _text(json.loads(r["data"]).get("to"), 32)
                if state and (ch["state_changed"] is None or r["time"] >= ch["state_changed"]):
                    ch["state"], ch["state_changed"] = state, r["time"]
        if latest:
            self._bulk(conn, "channels", [latest[k] for k in sorted(latest)])
