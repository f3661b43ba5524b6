"""Retention by age: old events with their snapshot files, old hourly counts, expired
sessions, plates no event refers to any more.

Deletes go in batches of :data:`BATCH` rows (short transactions: ingest keeps flowing
during a large purge). Run by the server every ``retention_interval_s`` and by
``oko server retention`` (e.g. from cron when the server runs with several workers).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from oko.server.db import Database
from oko.server.ingest import SnapshotStore
from oko.server.models import counts, events, plate_keys, plates, sessions
from oko.server.settings import ServerSettings

log = logging.getLogger(__name__)

BATCH = 5000
DAY = 86400.0


def purge(db: Database, settings: ServerSettings, now: float | None = None) -> dict[str, Any]:
    """Apply the retention settings once; returns what was deleted."""
    now = time.time() if now is None else now
    store = SnapshotStore(settings.snapshot_dir)
    report = {"events": 0, "snapshots": 0, "counts": 0, "sessions": 0, "plates": 0}
    if settings.retention_days is not None:
        cutoff = now - settings.retention_days * DAY
        while True:
            old = (sa.select(events.c.seq).where(events.c.time < cutoff)
                   .order_by(events.c.time).limit(BATCH).scalar_subquery())
            with db.write() as conn:
                files = conn.execute(events.delete().where(events.c.seq.in_(old))
                                     .returning(events.c.snapshot)).scalars().all()
            report["events"] += len(files)
            for rel in files:
                if rel:
                    store.delete(rel)
                    report["snapshots"] += 1
            if len(files) < BATCH:
                break
        with db.write() as conn:
            unused = sa.select(plates.c.plate).where(
                ~sa.exists().where(events.c.plate == plates.c.plate))
            gone = conn.execute(plates.delete().where(plates.c.plate.in_(unused))
                                .returning(plates.c.plate)).scalars().all()
            if gone:
                conn.execute(plate_keys.delete().where(plate_keys.c.plate.in_(gone)))
            report["plates"] = len(gone)
        _prune_empty_dirs(store.root)
    if settings.counts_retention_days is not None:
        cutoff_bucket = int(now - settings.counts_retention_days * DAY) // 3600 * 3600
        with db.write() as conn:
            report["counts"] = conn.execute(
                counts.delete().where(counts.c.bucket < cutoff_bucket)).rowcount
    with db.write() as conn:
        report["sessions"] = conn.execute(
            sessions.delete().where(sessions.c.expires_at < now)).rowcount
    if any(report.values()):
        log.info("retention: deleted %s", ", ".join(f"{v} {k}" for k, v in report.items()))
    return report


def _prune_empty_dirs(root: Path) -> None:
    """Remove empty day folders (and then empty node folders) under the snapshot root."""
    if not root.is_dir():
        return
    for node_dir in root.iterdir():
        if not node_dir.is_dir() or node_dir.is_symlink():
            continue
        for day_dir in node_dir.iterdir():
            if day_dir.is_dir() and not day_dir.is_symlink() and not any(day_dir.iterdir()):
                day_dir.rmdir()
        if not any(node_dir.iterdir()):
            node_dir.rmdir()


class RetentionJob:
    """Runs :func:`purge` now and then every ``retention_interval_s`` on a thread."""

    def __init__(self, db: Database, settings: ServerSettings) -> None:
        self.db = db
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="oko-retention", daemon=True)
        self.runs = 0

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                purge(self.db, self.settings)
            except Exception:  # a failed purge is retried at the next interval
                log.exception("retention failed")
            self.runs += 1
            self._stop.wait(self.settings.retention_interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
