"""The edge `server` sink against the real central server (`oko server run` in a
subprocess) that is SIGKILLed mid-run and restarted: nothing is lost, nothing is stored
twice. On PostgreSQL the server runs with two uvicorn workers (the scale-out setup).
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from oko.core.events import Event
from oko.server.db import Database
from oko.sinks import create_sink
from oko.sinks.server import ServerSink
from server_helpers import (TINY_JPEG, ServerProcess, db_url, oko_cli, pg_server,  # noqa: F401
                            wait_for)


def make_sink(url: str, key: str, tmp_path, **overrides) -> ServerSink:
    cfg = {"kind": "server", "url": url, "api_key": key,
           "queue": {"path": str(tmp_path / "server-sink.sqlite3")}, "batch_size": 40,
           "timeout_s": 3.0, "backoff_initial_s": 0.05, "backoff_max_s": 0.5,
           "heartbeat_s": 0.3} | overrides
    sink = create_sink(cfg, node="gate-1")
    assert isinstance(sink, ServerSink)
    return sink


def edge_event(i: int) -> Event:
    if i % 50 == 0:
        return Event("channel_state", f"cam{i % 3}", 0.0, -1,
                     {"from": "starting", "to": "running", "reason": "opened"}, id=f"{i:032x}")
    return Event("line_crossing", f"cam{i % 3}", i * 0.1, i,
                 {"line": "door", "direction": "in", "label": "person", "track_id": i},
                 id=f"{i:032x}", snapshot=TINY_JPEG if i % 10 == 1 else None)


def stored_ids(db_url: str) -> list[str]:
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            return conn.execute(sa.text("SELECT event_id FROM events WHERE node_id = 'gate-1'")
                                ).scalars().all()
    finally:
        db.dispose()


@pytest.mark.slow
def test_server_killed_and_restarted_mid_run_loses_nothing_and_stores_once(db_url, tmp_path):
    add = oko_cli("add-node", "gate-1", "--db", db_url)
    assert add.returncode == 0, add.stderr
    key = add.stdout.strip()
    workers = 1 if db_url.startswith("sqlite") else 2
    server = ServerProcess(db_url, tmp_path / "data", workers=workers).start()
    sink = make_sink(server.url, key, tmp_path)
    sent = [edge_event(i) for i in range(400)]
    try:
        for ev in sent[:150]:
            sink.send(ev)
            time.sleep(0.002)
        server.kill()  # a crash, possibly in the middle of a request
        for ev in sent[150:280]:
            sink.send(ev)
            time.sleep(0.002)
        assert wait_for(lambda: sink.stats()["retries"] >= 2, 15)
        assert sink.stats()["connected"] is False and sink.stats()["queued"] > 0
        server.start()  # same port, same database
        for ev in sent[280:]:
            sink.send(ev)
            time.sleep(0.002)
        assert sink.flush(30), sink.stats()
        # a retry of already stored events (as after a lost answer) stores nothing new
        for ev in sent[:60]:
            sink.send(ev)
        assert sink.flush(15), sink.stats()
        stats = sink.stats()
        assert wait_for(lambda: sink.heartbeats_sent >= 1, 5)
        nodes = _nodes(server.url, db_url)
    finally:
        sink.close()
        server.stop()
    ids = stored_ids(db_url)
    print(f"\nserver sink outage ({workers} worker(s)): sent {len(sent)}, stored {len(ids)} "
          f"rows, {len(set(ids))} unique; sink: {stats}")
    assert sorted(ids) == sorted(ev.id for ev in sent)  # zero lost, zero duplicated
    assert stats["dropped"] == 0 and stats["queued"] == 0 and stats["retries"] >= 2
    snapshots = list((tmp_path / "data" / "snapshots" / "gate-1").rglob("*.jpg"))
    assert len(snapshots) == sum(1 for ev in sent if ev.snapshot)
    node = nodes[0]
    assert node["id"] == "gate-1" and node["health"] == "online"
    assert {c["id"]: c["state"] for c in node["channels"]} == {
        "cam0": "running", "cam1": "running", "cam2": "running"}


def _nodes(url: str, db_url: str) -> list[dict]:
    """The node list through the API, as an admin."""
    import httpx

    add = oko_cli("add-user", "admin", "--role", "admin", "--password-stdin", "--db", db_url,
                  stdin="admin-password\n")
    assert add.returncode == 0, add.stderr
    token = httpx.post(url + "/api/v1/auth/token",
                       json={"username": "admin", "password": "admin-password"}).json()["token"]
    return httpx.get(url + "/api/v1/nodes",
                     headers={"Authorization": f"Bearer {token}"}).json()["nodes"]


@pytest.mark.slow
def test_refused_event_is_dead_lettered_and_the_rest_delivered(tmp_path):
    """A 422 for one event (here: a snapshot that is not a JPEG) splits the batch."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    key = oko_cli("add-node", "gate-1", "--db", url).stdout.strip()
    server = ServerProcess(url, tmp_path / "data").start()
    sink = make_sink(server.url, key, tmp_path, heartbeat_s=0)
    try:
        events = [edge_event(i) for i in range(1, 31)]
        bad = Event("plate_read", "cam1", 0.0, 1, {"text": "AB1"}, id="bad-snapshot",
                    snapshot=b"GIF89a not a jpeg")
        for ev in events[:15] + [bad] + events[15:]:
            sink.send(ev)
        assert sink.flush(20), sink.stats()
        stats = sink.stats()
        dead = sink.queue.dead_letters()
    finally:
        sink.close()
        server.stop()
    assert sorted(stored_ids(url)) == sorted(ev.id for ev in events)
    assert stats["rejected"] == 1 and [d["id"] for d in dead] == ["bad-snapshot"]
    assert "HTTP 422" in dead[0]["reason"] and "snapshot" in dead[0]["reason"]


@pytest.mark.slow
def test_wrong_key_keeps_events_queued(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    key = oko_cli("add-node", "gate-1", "--db", url).stdout.strip()
    server = ServerProcess(url, tmp_path / "data").start()
    sink = make_sink(server.url, "oko_" + "x" * 43, tmp_path, heartbeat_s=0)
    try:
        for i in range(1, 6):
            sink.send(edge_event(i))
        assert not sink.flush(1.0)
        stats = sink.stats()
        assert stats["queued"] == 5 and stats["dropped"] == 0 and "HTTP 401" in stats["last_error"]
    finally:
        sink.close(0.1)
    sink = make_sink(server.url, key, tmp_path, heartbeat_s=0)  # the key fixed, same queue
    try:
        assert sink.flush(10)
    finally:
        sink.close()
        server.stop()
    assert len(stored_ids(url)) == 5


@pytest.mark.slow
def test_a_pipeline_with_the_server_sink_fills_the_dashboard_data(tmp_path):
    """`oko run`'s runtime (detection, tracking, a counting line) -> server sink -> server."""
    import json

    import httpx

    from conftest import SAMPLE_VIDEO
    from oko.config import parse_config
    from oko.video.runtime import Runtime

    url = f"sqlite:///{tmp_path / 's.db'}"
    key = oko_cli("add-node", "gate-1", "--db", url).stdout.strip()
    server = ServerProcess(url, tmp_path / "data").start()
    line = {"name": "walkway", "start": [0.5, 0.22], "end": [0.5, 0.62], "normalized": True,
            "classes": ["person"]}
    cfg = parse_config({
        "node": "gate-1", "api": {"enabled": False},
        "sinks": [{"kind": "jsonl", "path": str(tmp_path / "events.jsonl")},
                  {"kind": "server", "url": server.url, "api_key": key, "heartbeat_s": 0.5,
                   "queue": {"path": str(tmp_path / "q.sqlite3")}}],
        "channels": [{"id": "walkway", "source": str(SAMPLE_VIDEO), "max_frames": 150,
                      "lines": [line], "snapshots": True}],
    }, "test")
    runtime = Runtime(cfg.engine, cfg.batch, cfg.sinks, node=cfg.node)
    try:
        runtime.add_channel(cfg.channels[0])
        assert runtime.wait(timeout_s=180)
        crossings = runtime.snapshot()["channels"][0]["analytics"]["lines"][0]
    finally:
        runtime.stop()  # flushes the sinks
    try:
        written = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
        add = oko_cli("add-user", "u", "--password-stdin", "--db", url, stdin="password-1\n")
        assert add.returncode == 0
        token = httpx.post(server.url + "/api/v1/auth/token",
                           json={"username": "u", "password": "password-1"}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        totals = httpx.get(server.url + "/api/v1/counts/totals", params={"since": 0},
                           headers=auth).json()["totals"]
        snaps = httpx.get(server.url + "/api/v1/events", params={"type": "line_crossing"},
                          headers=auth).json()["events"]
    finally:
        server.stop()
    assert crossings["in"] + crossings["out"] >= 1
    assert sorted(stored_ids(url)) == sorted(e["id"] for e in written)  # every event, once
    got = {t["direction"]: t["n"] for t in totals if t["name"] == "walkway"}
    assert got.get("in", 0) == crossings["in"] and got.get("out", 0) == crossings["out"]
    assert any(e["snapshot"] for e in snaps)  # crops of the crossing people
