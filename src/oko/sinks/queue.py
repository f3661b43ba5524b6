"""A bounded, persistent FIFO of events in SQLite: what a remote sink has not delivered yet.

One file per sink (WAL mode). Events stay in the file until the sink acknowledges them,
so a process restart or a receiver outage loses nothing; bounds keep the disk from
filling: when a put exceeds ``max_events`` or ``max_bytes``, the OLDEST events are
dropped, counted (:attr:`DiskQueue.dropped`) and reported by a rate-limited warning.

Events the receiver refuses for good (e.g. HTTP 400 for that one event) are moved to a
``dead`` table in the same file (the newest ``max_dead`` are kept) so that an operator
can look at them with ``sqlite3 FILE 'select * from dead'``.

Durability: ``synchronous=NORMAL`` in WAL mode: an event whose ``put`` returned survives
a crash of the process; a power cut can lose the last few transactions.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from oko.core.errors import ConfigError
from oko.core.events import Event

try:  # POSIX only; elsewhere two processes sharing one queue file go unnoticed
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

DROP_WARNING_INTERVAL_S = 10.0
_CHUNK = 500  # ids per SQL statement (SQLite's variable limit is 32766)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    enqueued REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    time REAL NOT NULL
);
"""


class QueueConfig(BaseModel):
    """Where a remote sink buffers undelivered events, and how much it may keep."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: Path | None = Field(
        None, description="SQLite file of this sink's queue; default "
                          "$XDG_STATE_HOME/oko/queues/<sink name>.sqlite3 "
                          "(~/.local/state/oko/queues/...).")
    max_events: int = Field(
        100_000, ge=1, description="Most events kept; beyond it the oldest are dropped.")
    max_bytes: int = Field(
        256 * 2**20, ge=4096,
        description="Most bytes of event JSON kept (snapshots included); beyond it the oldest "
                    "are dropped. The file itself is somewhat larger and does not shrink.")
    max_dead: int = Field(
        10_000, ge=0, description="Permanently rejected events kept for inspection.")


def default_queue_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "oko" / "queues"


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One queued event: its position, id, routing fields and JSON text."""

    seq: int
    id: str
    type: str
    channel_id: str
    body: str

    def event(self) -> Event:
        return Event.from_json(self.body)


class DiskQueue:
    """Persistent FIFO of events; safe to share between producer threads and one sender.

    Delivery protocol: :meth:`peek_batch` (does not remove), deliver, then :meth:`ack`
    the delivered ids (removes them) or :meth:`reject` those refused for good. Event ids
    are unique in the queue: putting an event whose id is still queued is a no-op.
    """

    def __init__(self, path: str | Path, max_events: int = 100_000,
                 max_bytes: int = 256 * 2**20, max_dead: int = 10_000) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_dead = max_dead
        self.dropped = 0
        self._pending_drops = 0
        self._last_drop_log = -float("inf")
        self._cond = threading.Condition(threading.Lock())
        self._lock_file = self._acquire_file_lock()
        try:
            self._db = self._open()
        except BaseException:
            self._release_file_lock()
            raise
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(MAX(seq), 0) FROM events").fetchone()
        self._count, self._bytes, self.last_seq = int(row[0]), int(row[1]), int(row[2])
        if self._count:
            log.info("queue %s: %d undelivered events from a previous run", self.path, self._count)

    @classmethod
    def from_config(cls, config: QueueConfig, name: str) -> DiskQueue:
        path = config.path or default_queue_dir() / f"{name}.sqlite3"
        return cls(path, config.max_events, config.max_bytes, config.max_dead)

    # ------------------------------------------------------------------ opening
    def _acquire_file_lock(self) -> Any:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(f"{self.path}.lock", "a+b")  # noqa: SIM115 (held until close)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot create the sink queue ({exc.strerror})",
                              "set queue.path to a writable location") from exc
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                handle.close()
                raise ConfigError(f"{self.path}: sink queue is already in use",
                                  "give each sink its own name or queue.path") from exc
        return handle

    def _release_file_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the flock
            self._lock_file = None

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: cannot open the sink queue ({exc})",
                              "move the file aside (its undelivered events are lost) "
                              "or set queue.path") from exc
        return db

    # ------------------------------------------------------------------ producer side
    def put(self, event: Event) -> int | None:
        """Append ``event``; returns its sequence number, or None if not queued.

        None means the id is already queued, or the event alone is larger than
        ``max_bytes`` (dropped and counted). When the queue is over a bound after the
        append, the oldest events are dropped to make room.
        """
        body = event.to_json()
        size = len(body.encode("utf-8"))
        with self._cond:
            if size > self.max_bytes:
                self._note_dropped(1, f"event {event.id} alone is {size} bytes")
                return None
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO events (id, type, channel_id, body, size, enqueued) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (event.id, event.type, event.channel_id, body, size, time.time()))
                if cur.rowcount == 0:
                    self._db.execute("ROLLBACK")
                    return None
                seq = int(cur.lastrowid or 0)
                self._count += 1
                self._bytes += size
                evicted = self._evict_oldest()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._recount()
                raise
            self.last_seq = seq
            if evicted:
                self._note_dropped(evicted, "queue full, oldest first")
                self._cond.notify_all()
            return seq

    def _evict_oldest(self) -> int:
        """Delete the oldest rows until both bounds hold (inside the caller's transaction)."""
        evicted = 0
        while self._count > self.max_events or self._bytes > self.max_bytes:
            over_n = self._count - self.max_events
            rows = self._db.execute("SELECT seq, size FROM events ORDER BY seq LIMIT ?",
                                    (max(over_n, 64),)).fetchall()
            last = None
            for seq, size in rows:
                if self._count <= self.max_events and self._bytes <= self.max_bytes:
                    break
                last = seq
                self._count -= 1
                self._bytes -= size
                evicted += 1
            if last is None:
                break
            self._db.execute("DELETE FROM events WHERE seq <= ?", (last,))
        return evicted

    def _note_dropped(self, n: int, why: str) -> None:
        self.dropped += n
        self._pending_drops += n
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_WARNING_INTERVAL_S:
            log.warning("queue %s (max_events=%d, max_bytes=%d): dropped %d events (%s); "
                        "%d dropped since start", self.path, self.max_events, self.max_bytes,
                        self._pending_drops, why, self.dropped)
            self._pending_drops = 0
            self._last_drop_log = now

    # ------------------------------------------------------------------ sender side
    def peek_batch(self, n: int, after_seq: int = 0) -> list[QueuedEvent]:
        """Up to ``n`` of the oldest events with ``seq > after_seq``, oldest first."""
        with self._cond:
            rows = self._db.execute(
                "SELECT seq, id, type, channel_id, body FROM events WHERE seq > ? "
                "ORDER BY seq LIMIT ?", (after_seq, n)).fetchall()
        return [QueuedEvent(*row) for row in rows]

    def ack(self, ids: Iterable[str]) -> int:
        """Remove delivered events; unknown ids (already acked or dropped) are ignored."""
        return self._remove(list(ids), None)

    def reject(self, ids: Iterable[str], reason: str) -> int:
        """Move events the receiver refused for good to the ``dead`` table."""
        return self._remove(list(ids), reason)

    def _remove(self, ids: list[str], reason: str | None) -> int:
        if not ids:
            return 0
        removed = 0
        with self._cond:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for i in range(0, len(ids), _CHUNK):
                    chunk = ids[i:i + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    if reason is not None and self.max_dead > 0:
                        self._db.execute(
                            f"INSERT INTO dead (id, body, reason, time) SELECT id, body, ?, ? "
                            f"FROM events WHERE id IN ({marks}) ORDER BY seq",
                            (reason, time.time(), *chunk))
                    rows = self._db.execute(
                        f"DELETE FROM events WHERE id IN ({marks}) RETURNING size",
                        chunk).fetchall()
                    removed += len(rows)
                    self._count -= len(rows)
                    self._bytes -= sum(r[0] for r in rows)
                if reason is not None and self.max_dead > 0:
                    self._db.execute(
                        "DELETE FROM dead WHERE seq <= (SELECT MAX(seq) FROM dead) - ?",
                        (self.max_dead,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._recount()
                raise
            if removed:
                self._cond.notify_all()
        return removed

    def _recount(self) -> None:
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()
        self._count, self._bytes = int(row[0]), int(row[1])

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest permanently rejected events: id, reason, time and the event JSON."""
        with self._cond:
            rows = self._db.execute("SELECT id, reason, time, body FROM dead "
                                    "ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [{"id": r[0], "reason": r[1], "time": r[2], "body": r[3]} for r in rows]

    # ------------------------------------------------------------------ waiting, sizes
    def wait_until_done(self, seq: int, timeout_s: float | None = None) -> bool:
        """Wait until no event with sequence number <= ``seq`` is queued any more."""
        def done() -> bool:
            head = self._db.execute("SELECT MIN(seq) FROM events").fetchone()[0]
            return head is None or head > seq

        with self._cond:
            return self._cond.wait_for(done, timeout_s)

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of event JSON queued (what ``max_bytes`` bounds)."""
        return self._bytes

    def close(self) -> None:
        with self._cond:
            if self._db is None:
                return
            if self._pending_drops:
                log.warning("queue %s: dropped %d events since the last warning; "
                            "%d dropped since start", self.path, self._pending_drops,
                            self.dropped)
                self._pending_drops = 0
            self._db.close()
            self._db = None  # type: ignore[assignment]
            self._release_file_lock()

    @property
    def closed(self) -> bool:
        return self._db is None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
