"""WebhookSink against a real HTTP receiver on loopback: outages, 5xx, refusals, restarts."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from oko.core.events import Event
from oko.sinks import WebhookSink, create_sink
from oko.sinks.webhook import classify, retry_after_s

API_KEY = "s3cret-key"


class Receiver:
    """An HTTP endpoint that records event ids; its behaviour can be switched per test."""

    def __init__(self) -> None:
        self.port = 0
        self.lock = threading.Lock()
        self.ids: list[str] = []  # every id received in a 2xx-answered (or dropped) batch
        self.statuses: list[int] = []
        self.fail_next = 0  # answer 500 to this many requests
        self.vanish_next = 0  # record the batch, then drop the connection without answering
        self.status: int | None = None  # answer this to everything (e.g. 401)
        self.refuse: Callable[[dict[str, Any]], bool] = lambda event: False
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                events = json.loads(body)["events"]
                with receiver.lock:
                    if self.headers.get("X-Api-Key") != API_KEY:
                        status = 403
                    elif receiver.status is not None:
                        status = receiver.status
                    elif receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        status = 500
                    elif any(receiver.refuse(e) for e in events):
                        status = 400
                    else:
                        status = 200
                        receiver.ids.extend(e["id"] for e in events)
                        if receiver.vanish_next > 0:  # stored, but the answer is lost
                            receiver.vanish_next -= 1
                            receiver.statuses.append(0)
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                    receiver.statuses.append(status)
                reply = b'{"ok":true}' if status == 200 else b'{"error":"no"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self._server = server

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def received(self) -> list[str]:
        with self.lock:
            return list(self.ids)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def make_sink(receiver_url: str, tmp_path: Path, **overrides: Any) -> WebhookSink:
    cfg = {"kind": "webhook", "url": receiver_url, "headers": {"X-Api-Key": API_KEY},
           "queue": {"path": str(tmp_path / "webhook.sqlite3")}, "batch_size": 20,
           "timeout_s": 2.0, "backoff_initial_s": 0.05, "backoff_max_s": 0.4} | overrides
    sink = create_sink(cfg)
    assert isinstance(sink, WebhookSink)
    return sink


def event(i: int, **data: Any) -> Event:
    return Event("line_crossing", f"cam{i % 3}", i * 0.1, i, {"i": i, **data}, id=f"{i:032x}")


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_receiver_outage_mid_run_loses_nothing_and_dedup_gives_exactly_once(receiver, tmp_path):
    sink = make_sink(receiver.url, tmp_path)
    sent = [event(i) for i in range(300)]
    try:
        for ev in sent[:100]:
            sink.send(ev)
            time.sleep(0.001)
        receiver.stop()  # receiver goes away with events still queued
        for ev in sent[100:200]:
            sink.send(ev)
            time.sleep(0.001)
        assert wait_for(lambda: sink.stats()["retries"] >= 2, 10)
        down = sink.stats()
        assert down["connected"] is False and down["queued"] > 0
        assert "ConnectError" in down["last_error"]
        receiver.vanish_next = 1  # first batch after the restart: stored, answer lost
        receiver.start()  # back on the same port
        for ev in sent[200:]:
            sink.send(ev)
            time.sleep(0.001)
        assert sink.flush(15), sink.stats()
        stats = sink.stats()
    finally:
        sink.close()
    raw = receiver.received()
    unique = set(raw)
    duplicates = len(raw) - len(unique)
    print(f"\nwebhook outage: sent {len(sent)}, received {len(raw)} raw, {len(unique)} unique, "
          f"{duplicates} duplicates, {stats['retries']} retries")
    assert unique == {ev.id for ev in sent}
    assert duplicates >= 1  # the batch whose answer vanished was posted again
    assert duplicates <= 20  # ... and only that batch
    assert stats["queued"] == 0 and stats["dropped"] == 0 and stats["connected"] is True
    assert stats["delivered"] == len(sent)  # confirmed deliveries; the vanished answer was not


def test_500_responses_are_retried(receiver, tmp_path):
    receiver.fail_next = 3
    sink = make_sink(receiver.url, tmp_path)
    try:
        for i in range(10):
            sink.send(event(i))
        assert sink.flush(10)
        stats = sink.stats()
    finally:
        sink.close()
    assert receiver.statuses.count(500) == 3 and receiver.statuses[-1] == 200
    assert sorted(receiver.received()) == sorted(event(i).id for i in range(10))
    assert stats["retries"] >= 3 and stats["dropped"] == 0
    assert "HTTP 500" in stats["last_error"]


def test_a_refused_event_is_isolated_and_dead_lettered_the_rest_delivered(receiver, tmp_path):
    receiver.refuse = lambda e: bool(e["data"].get("poison"))
    receiver.stop()  # queue everything first, so the poison sits inside a full batch
    sink = make_sink(receiver.url, tmp_path)
    try:
        sent = [event(i, poison=(i == 13)) for i in range(40)]
        for ev in sent:
            sink.send(ev)
        receiver.start()
        assert sink.flush(10)
        stats = sink.stats()
        dead = sink.queue.dead_letters()
    finally:
        sink.close()
    received = receiver.received()
    assert sorted(received) == sorted(ev.id for ev in sent if ev.data["i"] != 13)
    assert len(received) == len(set(received))
    assert stats["rejected"] == 1 and stats["dropped"] == 1
    assert [d["id"] for d in dead] == [event(13).id] and "HTTP 400" in dead[0]["reason"]


def test_401_is_retried_not_dropped(receiver, tmp_path):
    receiver.status = 401
    sink = make_sink(receiver.url, tmp_path)
    try:
        for i in range(5):
            sink.send(event(i))
        assert not sink.flush(0.5)
        stats = sink.stats()
        assert stats["queued"] == 5 and stats["dropped"] == 0 and stats["retries"] >= 1
        receiver.status = None  # the key was fixed on the receiver's side
        assert sink.flush(10)
    finally:
        sink.close()
    assert sorted(receiver.received()) == sorted(event(i).id for i in range(5))


def test_undelivered_events_go_out_after_a_sink_restart(receiver, tmp_path):
    receiver.stop()
    sink = make_sink(receiver.url, tmp_path)
    for i in range(30):
        sink.send(event(i))
    sink.close(0.2)  # the receiver is down: everything stays on disk
    assert sink.stats()["queued"] == 30
    receiver.start()
    sink = make_sink(receiver.url, tmp_path)  # "the next process", same queue file
    try:
        assert sink.flush(10)
    finally:
        sink.close()
    assert sorted(receiver.received()) == sorted(event(i).id for i in range(30))


def test_send_stays_cheap_while_the_receiver_hangs(tmp_path):
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)  # accepts TCP connections (backlog) but never answers
    url = f"http://127.0.0.1:{hang.getsockname()[1]}/events"
    sink = make_sink(url, tmp_path, timeout_s=0.5)
    try:
        time.sleep(0.05)
        sink.send(event(0))
        assert wait_for(lambda: sink.stats()["in_flight"] == 1, 5)  # sender is stuck
        start = time.perf_counter()
        for i in range(1, 501):
            sink.send(event(i))
        per_send_ms = (time.perf_counter() - start) / 500 * 1000
        print(f"\nsend() while the receiver hangs: {per_send_ms:.3f} ms per event")
        assert per_send_ms < 10
        assert sink.stats()["queued"] == 501
        start = time.perf_counter()
        sink.close(0.1)
        assert time.perf_counter() - start < 3  # bounded by flush timeout + request timeout
    finally:
        hang.close()


def test_status_classes_and_retry_after():
    assert [classify(s) for s in (200, 204, 400, 413, 422)] == [
        "delivered", "delivered", "reject", "reject", "reject"]
    assert [classify(s) for s in (301, 401, 403, 404, 408, 429, 500, 503)] == ["retry"] * 8
    assert retry_after_s("3") == 3.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    assert 0 <= retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_headers_never_appear_in_logs_or_repr(receiver, tmp_path, caplog):
    receiver.stop()
    sink = make_sink(receiver.url + "?token=abc", tmp_path)
    try:
        sink.send(event(0))
        assert wait_for(lambda: sink.stats()["retries"] >= 1, 5)
    finally:
        sink.close(0.1)
    text = caplog.text + repr(sink.config) + str(sink.stats())
    assert API_KEY not in text and "token=abc" not in caplog.text
