"""Central server ingest: idempotent batches, concurrency, snapshots, heartbeats, status.

Every test runs on SQLite and on a real PostgreSQL (see server_helpers.py).
"""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from server_helpers import (TINY_JPEG, crossing, db_url, event, make_server,  # noqa: F401
                            pg_server, server)


def count_rows(srv, table: str = "events") -> int:
    with srv.state.db.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def line_totals(srv) -> dict[str, int]:
    totals = srv.get("/api/v1/counts/totals", since=0)["totals"]
    return {t["direction"]: t["n"] for t in totals}


def test_a_batch_posted_again_is_not_stored_twice(server):
    batch = [crossing(i, direction="in" if i % 3 else "out") for i in range(200)]
    first = server.ingest(batch)
    assert first.status_code == 200 and first.json() == {"accepted": 200, "duplicates": 0}
    again = server.ingest(batch)
    assert again.json() == {"accepted": 0, "duplicates": 200}
    overlap = server.ingest(batch[150:] + [crossing(i) for i in range(200, 250)])
    assert overlap.json() == {"accepted": 50, "duplicates": 50}
    assert count_rows(server) == 250
    # counts follow the stored events only: retries never inflate them
    assert line_totals(server) == {"in": 133 + 50, "out": 67}
    nodes = server.get("/api/v1/nodes")["nodes"]
    assert nodes[0]["events_total"] == 250


def test_the_same_id_twice_in_one_batch_is_stored_once(server):
    r = server.ingest([crossing(1), crossing(1), crossing(2)])
    assert r.json() == {"accepted": 2, "duplicates": 1}
    assert count_rows(server) == 2


def test_concurrent_retries_of_the_same_batches_store_each_event_once(server):
    from oko.server.ingest import IngestBatch

    batches = [IngestBatch.model_validate({"events": [crossing(b * 100 + i) for i in range(100)]})
               for b in range(6)]
    accepted: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def post_all(order: list[int]) -> None:
        try:
            for b in order:
                result = server.state.ingestor.ingest("gate-1", batches[b].events)
                with lock:
                    accepted.append(result.accepted)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=post_all, args=(list(range(6))[::1 if k % 2 else -1],))
               for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sum(accepted) == 600 and len(accepted) == 36
    assert count_rows(server) == 600
    assert line_totals(server) == {"in": 600}


def test_events_from_two_nodes_with_the_same_id_are_two_events(server):
    other = server.state.keys.create("gate-2")
    assert server.ingest([crossing(1)]).json()["accepted"] == 1
    assert server.ingest([crossing(1)], key=other).json()["accepted"] == 1
    rows = server.get("/api/v1/events")["events"]
    assert sorted(e["node"] for e in rows) == ["gate-1", "gate-2"]


def test_snapshots_are_stored_on_disk_and_served(server):
    when = 1_700_000_000.0  # 2023-11-14 UTC
    r = server.ingest([event("snap1", "plate_read", wall_time=when, snapshot=TINY_JPEG,
                             text="AB123C", track_id=4)])
    assert r.json()["accepted"] == 1
    path = server.settings.snapshot_dir / "gate-1" / "2023-11-14" / "snap1.jpg"
    assert path.read_bytes() == TINY_JPEG
    row = server.get("/api/v1/events/gate-1/snap1")
    assert row["snapshot"] == "/api/v1/events/gate-1/snap1/snapshot.jpg"
    jpeg = server.client.get(row["snapshot"], headers=server.viewer)
    assert jpeg.status_code == 200 and jpeg.content == TINY_JPEG
    assert jpeg.headers["content-type"] == "image/jpeg"
    # a retry rewrites the same file and adds no row
    assert server.ingest([event("snap1", "plate_read", wall_time=when, snapshot=TINY_JPEG,
                                text="AB123C")]).json() == {"accepted": 0, "duplicates": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["snap1.jpg"]
    no_snap = server.ingest([crossing(5)])
    assert no_snap.status_code == 200
    assert server.client.get(f"/api/v1/events/gate-1/{5:032x}/snapshot.jpg",
                             headers=server.viewer).status_code == 404


def test_fields_are_pulled_out_of_data_by_event_type(server):
    now = time.time()
    server.ingest([
        crossing(1, line="door", direction="out", label="car"),
        event(2, "zone_enter", zone="queue", label="person", track_id=9),
        event(3, "zone_exit", zone="queue", label="person", track_id=9, dwell_s=3.5),
        event(4, "plate_read", text="а123вс77", text_latin="A123BC77", format="ru", track_id=11),
        event(5, "face_recognized", person="Alice Smith", similarity=0.71, track_id=12),
        event(6, "face_unknown", track_id=13),
        event(7, "detections", objects=[{"bbox": [1, 2, 3, 4], "score": 0.9, "label": "car"}]),
        event(8, "channel_state", **{"from": "starting", "to": "running", "reason": "opened"}),
    ])
    rows = {e["type"]: e for e in server.get("/api/v1/events", since=now - 60)["events"]}
    assert (rows["line_crossing"]["name"], rows["line_crossing"]["direction"],
            rows["line_crossing"]["label"], rows["line_crossing"]["track_id"]) == ("door", "out",
                                                                                  "car", 1)
    assert (rows["zone_enter"]["name"], rows["zone_enter"]["direction"]) == ("queue", "enter")
    assert rows["zone_exit"]["direction"] == "exit" and rows["zone_exit"]["data"]["dwell_s"] == 3.5
    assert rows["plate_read"]["plate"] == "A123BC77"
    assert rows["face_recognized"]["person"] == "alice smith"
    assert rows["face_unknown"]["person"] is None
    assert rows["detections"]["data"]["objects"][0]["label"] == "car"
    totals = server.get("/api/v1/counts/totals", since=0)["totals"]
    assert {(t["kind"], t["name"], t["direction"]): t["n"] for t in totals} == {
        ("line", "door", "out"): 1, ("zone", "queue", "enter"): 1, ("zone", "queue", "exit"): 1}
    channel = server.get("/api/v1/nodes")["nodes"][0]["channels"][0]
    assert channel["id"] == "cam1" and channel["state"] == "running"


def test_heartbeat_registers_channels_and_node_goes_offline(db_url, tmp_path):
    srv = make_server(db_url, tmp_path / "data", node_offline_s=0.5)
    try:
        nodes = srv.get("/api/v1/nodes")["nodes"]
        assert nodes[0]["health"] == "never seen" and nodes[0]["channels"] == []
        r = srv.client.post("/api/v1/ingest/heartbeat", headers=srv.node_headers(), json={
            "node": "gate-1", "version": "0.1.0", "uptime_s": 12.5,
            "channels": [{"id": "entrance", "state": "running"},
                         {"id": "yard", "state": "reconnecting"}],
            "sink": {"queued": 3, "dropped": 0}})
        assert r.status_code == 200, r.text
        node = srv.get("/api/v1/nodes")["nodes"][0]
        assert node["health"] == "online" and node["version"] == "0.1.0"
        assert node["sink"] == {"queued": 3, "dropped": 0}
        assert {c["id"]: c["state"] for c in node["channels"]} == {
            "entrance": "running", "yard": "reconnecting"}
        # a later channel_state event moves the channel on
        srv.ingest([event(1, "channel_state", channel="yard",
                          **{"from": "reconnecting", "to": "running", "reason": "ok"})])
        node = srv.get("/api/v1/nodes")["nodes"][0]
        assert {c["id"]: c["state"] for c in node["channels"]}["yard"] == "running"
        time.sleep(0.7)
        assert srv.get("/api/v1/nodes")["nodes"][0]["health"] == "offline"
        srv.state.keys.set_disabled("gate-1", True)
        assert srv.get("/api/v1/nodes")["nodes"][0]["health"] == "disabled"
    finally:
        srv.client.close()
        srv.state.close()
