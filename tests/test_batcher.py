"""Cross-channel batching: sizes, waiting, fairness, backpressure."""

import threading
import time

import numpy as np

from oko.core import Detections, Frame
from oko.video.batcher import BatchConfig, InferenceWorker


class FakeDetector:
    """A module that records batch sizes; each frame gets one box whose x1 is its index."""

    labels = ["person"]

    def __init__(self, max_batch=None, delay_s=0.0):
        self.max_batch = max_batch
        self.delay_s = delay_s
        self.batches: list[list[str]] = []

    def process(self, frames):
        images = [f.image for f in frames]
        time.sleep(self.delay_s)
        self.batches.append([int(img[0, 0, 0]) for img in images])
        return [Detections(xyxy=[[float(img[0, 0, 0]), 0, 1, 1]], confidence=[0.9], class_id=[0])
                for img in images]


def frame(channel, index):
    img = np.zeros((4, 4, 3), np.uint8)
    img[0, 0, 0] = index % 256
    return Frame(img, channel, index, index / 10)


def collect(worker, channels, capacity=100, drop_oldest=False):
    got = {c: [] for c in channels}
    done = threading.Event()

    def handler_for(c):
        def handle(f, dets):
            got[c].append((f.index, float(dets.xyxy[0, 0]), f.timings.get("batch")))
            if sum(map(len, got.values())) >= expected[0]:
                done.set()
        return handle

    expected = [0]
    buffers = {c: worker.attach(c, capacity, drop_oldest, handler_for(c)) for c in channels}
    return got, buffers, done, expected


def test_batches_fill_across_channels_and_keep_order():
    det = FakeDetector(delay_s=0.01)
    worker = InferenceWorker("fake", det, BatchConfig(max_size=6, max_wait_ms=50))
    got, buffers, done, expected = collect(worker, ["a", "b", "c"])
    expected[0] = 60
    for i in range(20):
        for c in "abc":
            buffers[c].put(frame(c, i))
    worker.start()
    assert done.wait(10)
    worker.stop()
    for c in "abc":
        assert [i for i, _, _ in got[c]] == list(range(20))  # per-channel order kept
        assert [x for _, x, _ in got[c]] == [float(i) for i in range(20)]  # results matched
    assert max(len(b) for b in det.batches) == 6
    assert sum(len(b) for b in det.batches) == 60
    # Round robin: a full batch holds two frames of each channel.
    assert all(len(b) == 6 for b in det.batches)


def test_a_lone_frame_waits_at_most_max_wait():
    det = FakeDetector()
    worker = InferenceWorker("fake", det, BatchConfig(max_size=8, max_wait_ms=30))
    got, buffers, done, expected = collect(worker, ["a"])
    expected[0] = 1
    worker.start()
    t0 = time.monotonic()
    buffers["a"].put(frame("a", 0))
    assert done.wait(5)
    elapsed = time.monotonic() - t0
    worker.stop()
    assert det.batches == [[0]]
    assert elapsed < 1.0


def test_fixed_batch_models_get_at_most_their_batch():
    det = FakeDetector(max_batch=1)
    worker = InferenceWorker("fake", det, BatchConfig(max_size=8, max_wait_ms=5))
    got, buffers, done, expected = collect(worker, ["a", "b"])
    expected[0] = 10
    for i in range(5):
        buffers["a"].put(frame("a", i))
        buffers["b"].put(frame("b", i))
    worker.start()
    assert done.wait(5)
    worker.stop()
    assert all(len(b) == 1 for b in det.batches)


def test_live_buffers_drop_oldest_and_count_it():
    det = FakeDetector()
    worker = InferenceWorker("fake", det, BatchConfig(max_size=4, max_wait_ms=1))
    got, buffers, done, expected = collect(worker, ["live"], capacity=3, drop_oldest=True)
    for i in range(10):  # worker not started: the buffer overflows
        assert buffers["live"].put(frame("live", i))
    assert buffers["live"].dropped == 7
    expected[0] = 3
    worker.start()
    assert done.wait(5)
    worker.stop()
    assert [i for i, _, _ in got["live"]] == [7, 8, 9]  # the newest frames survive


def test_file_buffers_block_instead_of_dropping():
    det = FakeDetector(delay_s=0.005)
    worker = InferenceWorker("fake", det, BatchConfig(max_size=2, max_wait_ms=1))
    got, buffers, done, expected = collect(worker, ["file"], capacity=2, drop_oldest=False)
    expected[0] = 50
    worker.start()
    producer = threading.Thread(target=lambda: [buffers["file"].put(frame("file", i))
                                                for i in range(50)])
    producer.start()
    assert done.wait(10)
    producer.join(5)
    worker.stop()
    assert buffers["file"].dropped == 0
    assert [i for i, _, _ in got["file"]] == list(range(50))


def test_a_failing_handler_does_not_stop_other_channels():
    det = FakeDetector()
    worker = InferenceWorker("fake", det, BatchConfig(max_size=4, max_wait_ms=1))
    seen = []
    ok = threading.Event()

    def bad(f, dets):
        raise RuntimeError("boom")

    def good(f, dets):
        seen.append(f.index)
        if len(seen) == 5:
            ok.set()

    a = worker.attach("bad", 10, False, bad)
    b = worker.attach("good", 10, False, good)
    worker.start()
    for i in range(5):
        a.put(frame("bad", i))
        b.put(frame("good", i))
    assert ok.wait(5)
    worker.stop()
    assert seen == list(range(5))
