"""MQTT ingest: events that edge nodes publish with the ``mqtt`` sink, stored like HTTP ones.

The server subscribes at QoS 1 with a fixed client id and a persistent session
(``clean_session=False``), and acknowledges a message (PUBACK, paho's manual ack) only
after the transaction holding its event committed. While the server is down the broker
keeps the session's messages; unacknowledged ones are redelivered after a reconnect, and
the ``(node, event id)`` uniqueness turns redeliveries into no-ops. If the database fails,
the batch is retried (still unacknowledged) until it succeeds.

The node id is the topic level ``node_level`` (``oko/{node}/{channel_id}/{type}``). The
broker authenticates publishers, so restrict each node to its own topics there, e.g.
mosquitto ``acl_file`` with ``pattern write oko/%u/#`` and one broker user per node.
Messages for nodes the server does not know (or has disabled) are acknowledged and
dropped, counted in ``rejected``, like events that fail validation.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import ValidationError

from oko.server.ingest import EventIn, IngestError, Ingestor
from oko.server.models import nodes
from oko.server.settings import MqttIngestConfig

if TYPE_CHECKING:
    from paho.mqtt.client import Client, MQTTMessage

log = logging.getLogger(__name__)


class MqttIngest:
    def __init__(self, config: MqttIngestConfig, ingestor: Ingestor) -> None:
        self.config = config
        self.ingestor = ingestor
        self._inbox: queue.Queue[MQTTMessage] = queue.Queue(maxsize=config.batch_size * 20)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="oko-mqtt-ingest", daemon=True)
        self._client: Client | None = None
        self._nodes: dict[str, bool] = {}
        self._nodes_at = 0.0
        self._lock = threading.Lock()
        self.received = self.stored = self.duplicates = self.rejected = 0
        self.connected = threading.Event()
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        from paho.mqtt.client import CallbackAPIVersion, Client

        cfg = self.config
        client = Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
                        clean_session=False, manual_ack=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)  # type: ignore[arg-type]
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.connect_async(cfg.host, cfg.port, keepalive=30)
        client.loop_start()
        self._client = client
        self._thread.start()
        log.info("MQTT ingest: subscribing to %s on %s:%d", cfg.topic, cfg.host, cfg.port)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"received": self.received, "stored": self.stored,
                    "duplicates": self.duplicates, "rejected": self.rejected,
                    "connected": self.connected.is_set(), "last_error": self.last_error}

    # ------------------------------------------------------------------ paho callbacks
    def _on_connect(self, client: Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection ({reason})"
            log.error("MQTT ingest: %s", self.last_error)
            return
        client.subscribe(self.config.topic, qos=1)
        self.connected.set()

    def _on_disconnect(self, client: Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("MQTT ingest: disconnected (%s); reconnecting", reason)

    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        self._inbox.put(msg)  # blocks paho's thread when full: backpressure to the broker

    # ------------------------------------------------------------------ storing
    def _node_enabled(self, node_id: str) -> bool:
        now = time.monotonic()
        stale = now - self._nodes_at > 5.0
        if stale or (node_id not in self._nodes and now - self._nodes_at > 1.0):
            with self.ingestor.db.engine.connect() as conn:
                rows = conn.execute(sa.select(nodes.c.id, nodes.c.disabled)).all()
            self._nodes = {r.id: not r.disabled for r in rows}
            self._nodes_at = now
        return self._nodes.get(node_id, False)

    def _take_batch(self) -> list[MQTTMessage]:
        try:
            batch = [self._inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.config.batch_wait_s
        while len(batch) < self.config.batch_size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if batch:
                self._store(batch)

    def _reject(self, msg: MQTTMessage, why: str) -> None:
        with self._lock:
            self.rejected += 1
            first = self.rejected == 1 or self.rejected % 1000 == 0
        if first:
            log.warning("MQTT ingest: dropped a message on %r: %s (%d dropped so far)",
                        msg.topic, why, self.rejected)

    def _store(self, batch: list[MQTTMessage]) -> None:
        with self._lock:
            self.received += len(batch)
        received = time.time()
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        files: list[tuple[str, bytes]] = []
        level = self.config.node_level
        for msg in batch:
            parts = msg.topic.split("/")
            node_id = parts[level] if len(parts) > level else ""
            try:
                if not self._node_enabled(node_id):
                    raise IngestError("topic", f"unknown or disabled node {node_id[:64]!r}")
                event = EventIn.model_validate_json(msg.payload)
                r, f = self.ingestor.prepare(node_id, [event], received)
            except (ValidationError, IngestError, ValueError) as exc:
                self._reject(msg, str(exc).splitlines()[0][:200])
                continue
            rows[node_id].extend(r)
            files.extend(f)
        backoff = 0.5
        while True:
            try:
                for rel, jpeg in files:
                    self.ingestor.snapshots.write(rel, jpeg)
                for node_id in sorted(rows):
                    result = self.ingestor.store(node_id, rows[node_id], received)
                    with self._lock:
                        self.stored += result.accepted
                        self.duplicates += result.duplicates
                break
            except Exception as exc:  # database or disk trouble: retry, still unacked
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.error("MQTT ingest: storing %d events failed (%s); retrying in %.1f s",
                          len(batch), self.last_error, backoff)
                if self._stop.wait(backoff):
                    return  # unacknowledged: the broker redelivers them to the next run
                backoff = min(backoff * 2, 30.0)
        client = self._client
        if client is not None:
            for msg in batch:
                if msg.qos > 0:
                    client.ack(msg.mid, msg.qos)
