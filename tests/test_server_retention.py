"""Central server retention: old events, their snapshots, old counts, expired sessions.

Runs on SQLite and on a real PostgreSQL (see server_helpers.py).
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from oko.server.retention import purge
from server_helpers import (TINY_JPEG, crossing, db_url, event, oko_cli,  # noqa: F401
                            pg_server, server)

DAY = 86400.0


def test_old_events_and_their_snapshots_go_recent_ones_stay(server):
    now = time.time()
    old = [crossing(i, wall_time=now - 40 * DAY + i) for i in range(30)]
    old += [event(100 + i, "plate_read", wall_time=now - 35 * DAY, snapshot=TINY_JPEG,
                  text=f"OLD{i}") for i in range(5)]
    new = [crossing(200 + i, wall_time=now - 2 * DAY) for i in range(10)]
    new += [event(300, "plate_read", wall_time=now - DAY, snapshot=TINY_JPEG, text="NEW1")]
    assert server.ingest(old + new).json()["accepted"] == 46
    snaps = server.settings.snapshot_dir / "gate-1"
    assert len(list(snaps.rglob("*.jpg"))) == 6
    settings = server.settings.model_copy(update={"retention_days": 30.0,
                                                  "counts_retention_days": 38.0})
    report = purge(server.state.db, settings)
    assert report["events"] == 35 and report["snapshots"] == 5 and report["plates"] == 5
    assert report["counts"] >= 1  # the hour 40 days ago
    left = server.get("/api/v1/events", limit=1000)["events"]
    assert sorted(int(e["id"], 16) for e in left) == list(range(200, 210)) + [300]
    files = list(snaps.rglob("*.jpg"))
    assert [f.name for f in files] == [f"{300:032x}.jpg"]
    assert len([d for d in snaps.iterdir()]) == 1  # the emptied day folders are gone
    assert [p["plate"] for p in server.get("/api/v1/plates", q="OLD1", mode="fuzzy")["plates"]] == []
    totals = server.get("/api/v1/counts/totals", since=now - 60 * DAY)["totals"]
    assert sum(t["n"] for t in totals) == 10  # the counts of the 40-day-old hour are gone
    assert purge(server.state.db, settings)["events"] == 0  # nothing more to do


def test_expired_sessions_are_removed(server):
    with server.state.db.write() as conn:
        conn.execute(sa.text("UPDATE sessions SET expires_at = :t WHERE user_id = "
                             "(SELECT id FROM users WHERE username = 'viewer')"),
                     {"t": time.time() - 1})
    assert server.client.get("/api/v1/events", headers=server.viewer).status_code == 401
    report = purge(server.state.db, server.settings)
    assert report["sessions"] == 1
    assert server.client.get("/api/v1/events", headers=server.admin).status_code == 200


def test_retention_command(tmp_path):
    from oko.server.app import ServerState
    from oko.server.settings import ServerSettings

    url = f"sqlite:///{tmp_path / 'r.db'}"
    state = ServerState.open(ServerSettings(db_url=url, data_dir=tmp_path / "data",
                                            background=False))
    state.keys.create("n1")
    from oko.server.ingest import EventIn

    now = time.time()
    state.ingestor.ingest("n1", [EventIn.model_validate(crossing(i, wall_time=now - i * DAY))
                                 for i in range(10)])
    state.close()
    proc = oko_cli("retention", "--db", url, "--data-dir", str(tmp_path / "data"),
                   "--days", "5.5")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["events"] == 4  # 6, 7, 8, 9 days old
