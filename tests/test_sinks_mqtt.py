"""MqttSink against a real mosquitto that is SIGKILLed mid-run and restarted."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oko.core.events import Event
from oko.sinks import MqttSink, create_sink
from oko.sinks.mqtt import topic_for
from oko.sinks.queue import QueuedEvent

MOSQUITTO = Path("/usr/sbin/mosquitto")
NODE = "test-node"

pytestmark = pytest.mark.skipif(not MOSQUITTO.exists(), reason="mosquitto is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Broker:
    """A private mosquitto on a loopback port, without persistence."""

    def __init__(self, workdir: Path, extra: str = "") -> None:
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        # max_inflight_messages 0: the broker writes every message to the subscriber
        # before it acknowledges the publisher, so a SIGKILL cannot swallow a message
        # that the broker already acknowledged (a broker-side loss the sink cannot fix).
        # As root, mosquitto would switch to its own user, which cannot read tmp_path.
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             "persistence false\nmax_inflight_messages 0\nlog_dest stderr\n"
                             + ("user root\n" if os.geteuid() == 0 else "") + extra)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(self.conf)],
                                         stdout=log, stderr=log)

        def accepting() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        assert wait_for(accepting, 10), self.log.read_text()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class GatedProxy:
    """TCP relay between the sink and the broker.

    While the gate is shut it hangs up on new connections: the test restarts the broker
    and resubscribes the subscriber before the sink can reconnect; otherwise messages
    published in between would reach no subscription (with persistence off the broker
    forgets subscriptions), a test artefact. ``lose_up`` / ``lose_down`` discard bytes
    towards the broker (PUBLISH lost) / towards the sink (PUBACK lost) on live links.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.gate = threading.Event()
        self.gate.set()
        self.refused = 0
        self.lose_up = threading.Event()
        self.lose_down = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.gate.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for src, dst, lose in ((client, upstream, self.lose_up),
                                   (upstream, client, self.lose_down)):
                threading.Thread(target=self._pump, args=(src, dst, lose), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, lose: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if not lose.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._listener.close()


class Subscriber:
    """QoS 1 subscriber with a fixed client id and a persistent session; resubscribes on
    every connect (a broker without persistence forgets sessions when it dies)."""

    def __init__(self, port: int, topic: str) -> None:
        from paho.mqtt.client import CallbackAPIVersion, Client

        self.ids: list[str] = []
        self.topics: dict[str, str] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        client = Client(CallbackAPIVersion.VERSION2, client_id="oko-test-subscriber",
                        clean_session=False)
        client.reconnect_delay_set(min_delay=0.05, max_delay=0.3)  # type: ignore[arg-type]
        client.on_connect = lambda c, u, flags, rc, props: c.subscribe(topic, qos=1)
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.connect("127.0.0.1", port, keepalive=10)
        client.loop_start()
        self.client = client

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: list, props: Any) -> None:
        if all(not c.is_failure for c in codes):
            self.subscribed.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        event_id = json.loads(msg.payload)["id"]
        with self.lock:
            self.ids.append(event_id)
            self.topics[event_id] = msg.topic

    def received(self) -> list[str]:
        with self.lock:
            return list(self.ids)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.kill()


def make_sink(port: int, tmp_path: Path, **overrides: Any) -> MqttSink:
    cfg = {"kind": "mqtt", "host": "127.0.0.1", "port": port, "node": NODE,
           "queue": {"path": str(tmp_path / "mqtt.sqlite3")}, "backoff_initial_s": 0.05,
           "backoff_max_s": 0.5, "connect_timeout_s": 2.0, "close_timeout_s": 2.0} | overrides
    sink = create_sink(cfg)
    assert isinstance(sink, MqttSink)
    return sink


def event(i: int) -> Event:
    return Event("zone_enter", f"gate/{i % 3}", i * 0.1, i, {"i": i, "zone": "door"},
                 id=f"{i:032x}")


def test_broker_sigkill_mid_run_loses_nothing(broker, tmp_path):
    proxy = GatedProxy(broker.port)
    sub = Subscriber(broker.port, f"oko/{NODE}/#")
    assert sub.subscribed.wait(5)
    sink = make_sink(proxy.port, tmp_path)
    sent = [event(i) for i in range(300)]
    ids = [ev.id for ev in sent]
    try:
        for ev in sent[:100]:  # steady traffic
            sink.send(ev)
            time.sleep(0.002)
        assert wait_for(lambda: sink.stats()["delivered"] == 100, 5)
        # 30 reach the subscriber but their PUBACKs are lost on the way back ...
        proxy.lose_down.set()
        for ev in sent[100:130]:
            sink.send(ev)
        assert wait_for(lambda: set(ids[:130]) <= set(sub.received()), 5)
        # ... and 20 are lost on the way to the broker: a sink that acked on publish, or
        # did not republish after reconnecting, would lose these
        proxy.lose_up.set()
        for ev in sent[130:150]:
            sink.send(ev)
        assert wait_for(lambda: sink.stats()["in_flight"] == 50, 5), sink.stats()
        proxy.gate.clear()
        broker.kill()  # SIGKILL with 50 events unacknowledged
        received_before_kill = len(set(sub.received()))
        assert wait_for(lambda: sink.stats()["connected"] is False, 5)
        # only now: the relay may still be passing on bytes the broker wrote before dying
        proxy.lose_up.clear()
        proxy.lose_down.clear()
        for ev in sent[150:225]:  # the broker is down: these wait on disk
            sink.send(ev)
            time.sleep(0.002)
        assert sink.stats()["queued"] == 125 and sink.stats()["in_flight"] == 0
        sub.subscribed.clear()
        broker.start()  # same port, empty: no sessions, no subscriptions
        assert sub.subscribed.wait(10), "subscriber did not resubscribe"
        proxy.gate.set()  # now the sink may reconnect
        for ev in sent[225:]:
            sink.send(ev)
            time.sleep(0.002)
        assert sink.flush(15), sink.stats()
        assert wait_for(lambda: set(ids) <= set(sub.received()), 10)
        stats = sink.stats()
    finally:
        sink.close()
        sub.close()
        proxy.close()
    raw = sub.received()
    unique = set(raw)
    duplicates = len(raw) - len(unique)
    print(f"\nmqtt broker SIGKILL: sent {len(sent)}, received {len(raw)} raw, {len(unique)} "
          f"unique, {duplicates} duplicates; 50 unacknowledged at the kill (30 PUBACKs lost, "
          f"20 PUBLISHes lost), {received_before_kill} received before it, {stats['retries']} "
          f"retries, {proxy.refused} reconnects refused while the gate was shut")
    assert unique == set(ids)  # exactly once after dedup by id
    assert 30 <= duplicates <= 50  # the lost-PUBACK ones come twice, nothing else should
    assert stats["queued"] == 0 and stats["dropped"] == 0 and stats["connected"] is True
    assert sub.topics[event(4).id] == f"oko/{NODE}/gate_1/zone_enter"


def test_events_queued_while_the_broker_is_down_go_out_after_a_sink_restart(broker, tmp_path):
    port = broker.port
    broker.kill()
    sink = make_sink(port, tmp_path)
    for i in range(40):
        sink.send(event(i))
    assert wait_for(lambda: sink.stats()["retries"] >= 1, 5)
    assert "cannot connect" in sink.stats()["last_error"]
    sink.close(0.1)
    broker.start()
    sub = Subscriber(port, f"oko/{NODE}/#")
    assert sub.subscribed.wait(5)
    sink = make_sink(port, tmp_path)  # the next process, same queue file
    try:
        assert sink.flush(10)
        assert wait_for(lambda: len(set(sub.received())) == 40, 5)
    finally:
        sink.close()
        sub.close()
    assert set(sub.received()) == {event(i).id for i in range(40)}


def test_mqtt5_and_clean_close(broker, tmp_path):
    sub = Subscriber(broker.port, f"edge/{NODE}/#")
    assert sub.subscribed.wait(5)
    sink = make_sink(broker.port, tmp_path, protocol="5", topic="edge/{node}/{type}")
    try:
        for i in range(20):
            sink.send(event(i))
        assert sink.flush(10)
        assert sink.stats()["delivered"] == 20
        assert wait_for(lambda: len(sub.received()) == 20, 5)
    finally:
        sink.close()
        sub.close()
    assert sink.stats()["queued"] == 0


def test_topic_values_cannot_add_levels_or_wildcards():
    item = QueuedEvent(1, "id", "a+b", "cam/1#", "{}")
    assert topic_for("oko/{node}/{channel_id}/{type}", "n/1", item) == "oko/n_1/cam_1_/a_b"
    assert topic_for("x/{channel_id}", "n", QueuedEvent(1, "id", "t", "", "{}")) == "x/_"


def test_reconnecting_with_an_empty_queue_idles(broker, tmp_path):
    sink = make_sink(broker.port, tmp_path)
    try:
        for i in range(5):
            sink.send(event(i))
        assert sink.flush(5)
        broker.kill()
        assert wait_for(lambda: sink.stats()["connected"] is False, 5)
        broker.start()
        assert wait_for(lambda: sink.stats()["connected"] is True, 10)
        # CPU time of the sender thread alone: other threads of the test process (left by
        # earlier tests in a full run) must not count.
        clock = time.pthread_getcpuclockid(sink._thread.ident)
        cpu = time.clock_gettime(clock)
        time.sleep(1.0)
        cpu = time.clock_gettime(clock) - cpu
        assert cpu < 0.3, f"sender thread busy while idle: {cpu:.2f} s CPU in 1 s"
        sink.send(event(5))  # and it still wakes up for new events
        assert sink.flush(5)
    finally:
        sink.close()


def test_a_silent_link_is_detected_by_the_ack_timeout(broker, tmp_path):
    proxy = GatedProxy(broker.port)
    sub = Subscriber(broker.port, f"oko/{NODE}/#")
    assert sub.subscribed.wait(5)
    sink = make_sink(proxy.port, tmp_path, ack_timeout_s=0.5)
    try:
        assert wait_for(lambda: sink.stats()["connected"] is True, 5)
        proxy.lose_down.set()  # the link stays up but PUBACKs never come back
        for i in range(10):
            sink.send(event(i))
        assert wait_for(lambda: sink.stats()["retries"] >= 1, 5)
        assert "no PUBACK" in sink.stats()["last_error"]
        proxy.lose_down.clear()
        assert sink.flush(10)
        assert wait_for(lambda: len(set(sub.received())) == 10, 5)
    finally:
        sink.close()
        sub.close()
        proxy.close()
    assert len(sub.received()) >= 20  # each was published, unacknowledged, and sent again


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True,
                       timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=oko test CA")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_tls_to_the_broker(tmp_path):
    ca, cert, key = make_certificates(tmp_path)
    tls_port = free_port()
    broker = Broker(tmp_path, f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\n"
                              f"keyfile {key}\n")
    broker.start()
    assert wait_for(lambda: "running" in broker.log.read_text(), 5)
    sub = Subscriber(broker.port, f"oko/{NODE}/#")  # plain listener for the subscriber
    assert sub.subscribed.wait(5)
    untrusted = make_sink(tls_port, tmp_path / "u", tls={})  # system CAs: not ours
    trusted = make_sink(tls_port, tmp_path, tls={"ca_file": str(ca)})
    try:
        untrusted.send(event(99))
        assert wait_for(lambda: untrusted.stats()["retries"] >= 1, 5)
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stats()["last_error"]
        for i in range(10):
            trusted.send(event(i))
        assert trusted.flush(10), trusted.stats()
        assert wait_for(lambda: len(set(sub.received())) == 10, 5)
    finally:
        untrusted.close(0)
        trusted.close()
        sub.close()
        broker.kill()
    assert event(99).id not in sub.received()
