"""MQTT ingest against a real mosquitto: the edge `mqtt` sink publishes, the server
subscribes (QoS 1, persistent session) and stores; while the server's subscriber is down
the broker keeps the messages, and nothing is stored twice.

Runs on SQLite and on a real PostgreSQL (see server_helpers.py).
"""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from oko.core.events import Event
from oko.server.app import ServerState
from oko.server.mqtt import MqttIngest
from oko.server.settings import MqttIngestConfig, ServerSettings
from oko.sinks import create_sink
from server_helpers import db_url, pg_server, wait_for  # noqa: F401
from test_sinks_mqtt import MOSQUITTO, Broker

pytestmark = pytest.mark.skipif(not MOSQUITTO.exists(), reason="mosquitto is not installed")


def edge_event(i: int, channel: str = "cam1") -> Event:
    return Event("zone_enter", channel, i * 0.1, i,
                 {"zone": "queue", "label": "person", "track_id": i}, id=f"{i:032x}")


def stored(state: ServerState) -> list[str]:
    with state.db.engine.connect() as conn:
        return conn.execute(sa.text("SELECT event_id FROM events")).scalars().all()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.kill()


@pytest.mark.slow
def test_mqtt_events_are_stored_once_even_across_a_subscriber_outage(broker, db_url, tmp_path):
    cfg = MqttIngestConfig(host="127.0.0.1", port=broker.port, batch_wait_s=0.02,
                           client_id=f"oko-server-test-{uuid.uuid4().hex[:8]}")
    state = ServerState.open(ServerSettings(db_url=db_url, data_dir=tmp_path / "data",
                                            background=False, mqtt=cfg))
    state.keys.create("gate-1")
    ingest = MqttIngest(cfg, state.ingestor)
    ingest.start()
    sink = create_sink({"kind": "mqtt", "host": "127.0.0.1", "port": broker.port,
                        "queue": {"path": str(tmp_path / "mqtt.sqlite3")},
                        "backoff_initial_s": 0.05, "backoff_max_s": 0.5}, node="gate-1")
    try:
        assert ingest.connected.wait(10)
        assert wait_for(lambda: ingest.stats()["connected"], 5)
        for i in range(200):
            sink.send(edge_event(i, f"cam{i % 2}"))
        assert sink.flush(20)
        assert wait_for(lambda: len(stored(state)) == 200, 20), ingest.stats()
        ingest.stop()  # the server goes away; its persistent session stays on the broker
        for i in range(200, 350):
            sink.send(edge_event(i))
        assert sink.flush(20)  # the broker took them (PUBACK) for the offline session
        assert len(stored(state)) == 200
        ingest = MqttIngest(cfg, state.ingestor)  # the server is back, same client id
        ingest.start()
        assert wait_for(lambda: len(stored(state)) == 350, 30), ingest.stats()
        for i in range(100, 130):  # a publisher retry of stored events
            sink.send(edge_event(i))
        assert sink.flush(10)
        assert wait_for(lambda: ingest.stats()["duplicates"] >= 30, 10), ingest.stats()
        # messages the server must not store: an unknown node, and garbage
        from paho.mqtt.client import CallbackAPIVersion, Client

        rogue = Client(CallbackAPIVersion.VERSION2, client_id="rogue")
        rogue.connect("127.0.0.1", broker.port)
        rogue.loop_start()
        rogue.publish("oko/intruder/cam1/zone_enter", edge_event(999).to_json(), qos=1).wait_for_publish(5)
        rogue.publish("oko/gate-1/cam1/zone_enter", b"{not json", qos=1).wait_for_publish(5)
        rogue.publish("oko/gate-1/cam1/zone_enter",
                      json.dumps(edge_event(998).to_dict() | {"id": "../../x"}), qos=1
                      ).wait_for_publish(5)
        rogue.loop_stop()
        rogue.disconnect()
        assert wait_for(lambda: ingest.stats()["rejected"] >= 3, 10), ingest.stats()
        stats = ingest.stats()
    finally:
        sink.close()
        ingest.stop()
        ids = stored(state)
        state.close()
    assert sorted(ids) == sorted(f"{i:032x}" for i in range(350))
    assert stats["rejected"] == 3 and stats["duplicates"] >= 30
