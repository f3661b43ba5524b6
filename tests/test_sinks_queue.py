"""DiskQueue: FIFO order, acks, persistence across reopen and process death, bounds."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pytest

from oko.core.errors import ConfigError
from oko.core.events import Event
from oko.sinks.backoff import Backoff
from oko.sinks.queue import DiskQueue


def make_event(i: int, channel: str = "cam", payload: str = "") -> Event:
    return Event("detections", channel, i / 10, i, {"i": i, "pad": payload}, wall_time=1e9 + i,
                 id=f"ev{i:06d}")


def test_fifo_peek_does_not_remove_and_ack_does(tmp_path):
    with DiskQueue(tmp_path / "q.sqlite3") as q:
        seqs = [q.put(make_event(i)) for i in range(10)]
        assert seqs == sorted(seqs) and len(q) == 10
        batch = q.peek_batch(4)
        assert [b.id for b in batch] == [f"ev{i:06d}" for i in range(4)]
        assert [b.id for b in q.peek_batch(4)] == [b.id for b in batch]  # peek is not a pop
        assert batch[2].event() == make_event(2)
        assert (batch[0].type, batch[0].channel_id) == ("detections", "cam")
        # after_seq skips what is already in flight
        assert [b.id for b in q.peek_batch(3, after_seq=batch[-1].seq)] == [
            "ev000004", "ev000005", "ev000006"]
        assert q.ack([b.id for b in batch] + ["unknown"]) == 4
        assert q.ack(["ev000000"]) == 0  # acking twice is harmless
        assert len(q) == 6 and q.peek_batch(1)[0].id == "ev000004"
        # out-of-order acks keep the rest in order
        q.ack(["ev000006"])
        assert [b.id for b in q.peek_batch(10)] == ["ev000004", "ev000005", "ev000007",
                                                     "ev000008", "ev000009"]


def test_an_id_still_queued_is_not_queued_twice(tmp_path):
    with DiskQueue(tmp_path / "q.sqlite3") as q:
        assert q.put(make_event(1)) is not None
        assert q.put(make_event(1)) is None
        assert len(q) == 1
        q.ack(["ev000001"])
        assert q.put(make_event(1)) is not None  # once delivered, it may be sent again


def test_unacked_events_survive_reopen_in_order(tmp_path):
    path = tmp_path / "q.sqlite3"
    with DiskQueue(path) as q:
        for i in range(20):
            q.put(make_event(i))
        q.ack([f"ev{i:06d}" for i in range(5)])
        last = q.last_seq
    with DiskQueue(path) as q:
        assert len(q) == 15
        assert [b.id for b in q.peek_batch(100)] == [f"ev{i:06d}" for i in range(5, 20)]
        assert q.put(make_event(99)) > last  # sequence numbers never go back
        q.ack([b.id for b in q.peek_batch(100)])
    with DiskQueue(path) as q:
        assert len(q) == 0
        assert q.put(make_event(100)) > last  # not reused even after the queue emptied


def test_events_survive_the_process_being_killed(tmp_path):
    path = tmp_path / "q.sqlite3"
    code = f"""
import os
from oko.core.events import Event
from oko.sinks.queue import DiskQueue
q = DiskQueue({str(path)!r})
for i in range(50):
    q.put(Event("x", "cam", 0.0, i, id=f"ev{{i:06d}}"))
q.ack(["ev000000", "ev000001"])
os._exit(0)  # no close(), no atexit: like a crash right after the last put
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with DiskQueue(path) as q:  # the dead process's lock is gone with it
        assert len(q) == 48
        assert q.peek_batch(1)[0].id == "ev000002"


def test_full_queue_drops_the_oldest_and_says_how_many(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="oko.sinks.queue")
    with DiskQueue(tmp_path / "q.sqlite3", max_events=5) as q:
        for i in range(8):
            q.put(make_event(i))
        assert len(q) == 5 and q.dropped == 3
        assert [b.id for b in q.peek_batch(10)] == [f"ev{i:06d}" for i in range(3, 8)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # one warning at the first drop (rate-limited), one summary of the rest at close
    assert len(warnings) == 2, warnings
    assert "dropped 1 events" in warnings[0] and "max_events=5" in warnings[0]
    assert "dropped 2 events" in warnings[1] and "3 dropped since start" in warnings[1]


def test_byte_bound_drops_the_oldest_and_rejects_an_event_too_big_alone(tmp_path):
    one = len(make_event(0, payload="x" * 1000).to_json())
    with DiskQueue(tmp_path / "q.sqlite3", max_bytes=4 * one + 10) as q:
        for i in range(10):
            q.put(make_event(i, payload="x" * 1000))
        assert len(q) == 4 and q.nbytes <= 4 * one + 10 and q.dropped == 6
        assert q.peek_batch(1)[0].id == "ev000006"
        assert q.put(make_event(50, payload="x" * 10 * one)) is None
        assert q.dropped == 7 and len(q) == 4  # the others are not evicted for it
    with DiskQueue(tmp_path / "q.sqlite3", max_bytes=4 * one + 10) as q:
        assert q.nbytes == 4 * one  # byte count restored from the file


def test_reject_moves_events_to_the_dead_table(tmp_path):
    with DiskQueue(tmp_path / "q.sqlite3", max_dead=2) as q:
        for i in range(5):
            q.put(make_event(i))
        assert q.reject(["ev000001", "ev000002", "ev000003"], "HTTP 400 bad") == 3
        assert [b.id for b in q.peek_batch(10)] == ["ev000000", "ev000004"]
        dead = q.dead_letters()
        assert [d["id"] for d in dead] == ["ev000003", "ev000002"]  # newest max_dead kept
        assert dead[0]["reason"] == "HTTP 400 bad" and '"ev000003"' in dead[0]["body"]


def test_concurrent_producers_and_a_consumer_lose_nothing(tmp_path):
    producers, per = 4, 300
    delivered: list[str] = []
    with DiskQueue(tmp_path / "q.sqlite3") as q:
        done = threading.Event()

        def produce(p: int) -> None:
            for i in range(per):
                q.put(Event("x", f"cam{p}", 0.0, i, id=f"p{p}-{i}"))

        def consume() -> None:
            while True:
                batch = q.peek_batch(37)
                if not batch:
                    if done.is_set() and len(q) == 0:
                        return
                    time.sleep(0.001)
                    continue
                delivered.extend(b.id for b in batch)
                q.ack(b.id for b in batch)

        consumer = threading.Thread(target=consume)
        consumer.start()
        threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        consumer.join(timeout=30)
        assert not consumer.is_alive()
        assert len(q) == 0 and q.nbytes == 0
    assert len(delivered) == len(set(delivered)) == producers * per
    for p in range(producers):  # per producer, FIFO order holds
        mine = [d for d in delivered if d.startswith(f"p{p}-")]
        assert mine == [f"p{p}-{i}" for i in range(per)]


def test_wait_until_done_returns_when_earlier_events_are_acked(tmp_path):
    with DiskQueue(tmp_path / "q.sqlite3") as q:
        for i in range(3):
            q.put(make_event(i))
        target = q.last_seq
        assert not q.wait_until_done(target, timeout_s=0.05)
        timer = threading.Timer(0.05, q.ack, args=(["ev000000", "ev000001", "ev000002"],))
        timer.start()
        assert q.wait_until_done(target, timeout_s=5)
        q.put(make_event(3))  # later events do not matter
        assert q.wait_until_done(target, timeout_s=0)


def test_one_queue_file_cannot_be_used_twice(tmp_path):
    with DiskQueue(tmp_path / "q.sqlite3"), pytest.raises(ConfigError, match="already in use"):
        DiskQueue(tmp_path / "q.sqlite3")
    DiskQueue(tmp_path / "q.sqlite3").close()  # released on close


def test_a_file_that_is_not_a_queue_is_a_config_error(tmp_path):
    bad = tmp_path / "q.sqlite3"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="cannot open the sink queue"):
        DiskQueue(bad)


def test_backoff_doubles_with_jitter_up_to_the_cap():
    import random

    b = Backoff(0.5, 4.0, rng=random.Random(1))
    delays = [b.next() for _ in range(8)]
    steps = [0.5, 1, 2, 4, 4, 4, 4, 4]
    assert all(s / 2 <= d <= s for d, s in zip(delays, steps, strict=True))
    assert len(set(delays)) == len(delays)  # jittered
    b.reset()
    assert b.next() <= 0.5
