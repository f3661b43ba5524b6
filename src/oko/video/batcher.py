"""Cross-channel batching: one inference thread per model, fed by every channel using it.

Each channel's decode thread puts frames into its own :class:`FrameBuffer`. The
:class:`InferenceWorker` takes frames round-robin across buffers (so no channel starves
the others), up to ``max_size`` frames or until ``max_wait_ms`` has passed since the first
frame of the batch, whichever comes first, runs the model once, and hands each frame's
detections back to its channel. Live sources drop their oldest frame when their buffer
is full (counted); files block their decoder instead, so they never drop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from oko.core.detections import Detections
from oko.core.frame import Frame
from oko.modules.base import Module

log = logging.getLogger(__name__)


class BatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_size: int = Field(8, ge=1, le=256, description="Most frames in one inference batch.")
    max_wait_ms: float = Field(
        20.0, ge=0, description="Longest wait for a batch to fill after its first frame.")


class FrameBuffer:
    """Bounded FIFO of one channel's frames waiting for inference."""

    def __init__(self, capacity: int, drop_oldest: bool, cond: threading.Condition) -> None:
        self.capacity = capacity
        self.drop_oldest = drop_oldest
        self._frames: deque[Frame] = deque()
        self._cond = cond
        self.dropped = 0
        self.closed = False

    def put(self, frame: Frame) -> bool:
        """Queue a frame; False when the buffer was closed (the channel is going away)."""
        with self._cond:
            while len(self._frames) >= self.capacity and not self.closed:
                if self.drop_oldest:
                    self._frames.popleft()
                    self.dropped += 1
                    break
                self._cond.wait(0.1)  # files: wait for the worker to make room
            if self.closed:
                return False
            self._frames.append(frame)
            self._cond.notify_all()
            return True

    def pop(self) -> Frame | None:
        """Next frame or None (caller holds the condition)."""
        return self._frames.popleft() if self._frames else None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._frames.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._frames)


ResultHandler = Callable[[Frame, Detections], None]


class InferenceWorker:
    """The single inference path for one module (model), shared by all channels using it."""

    def __init__(self, name: str, module: Module, config: BatchConfig) -> None:
        self.name = name
        self.module = module
        self.config = config
        # A model with a fixed batch axis cannot take more frames than it was built for.
        self.max_size = min(config.max_size, module.max_batch or config.max_size)
        self.cond = threading.Condition()
        self._channels: dict[str, tuple[FrameBuffer, ResultHandler]] = {}
        self._order: list[str] = []
        self._next = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"oko-infer-{name}", daemon=True)
        self.batches = 0
        self.frames = 0
        self.errors = 0

    # ------------------------------------------------------------------ channels
    def attach(self, channel_id: str, capacity: int, drop_oldest: bool,
               handler: ResultHandler) -> FrameBuffer:
        buffer = FrameBuffer(capacity, drop_oldest, self.cond)
        with self.cond:
            self._channels[channel_id] = (buffer, handler)
            self._order = list(self._channels)
        return buffer

    def detach(self, channel_id: str) -> None:
        with self.cond:
            entry = self._channels.pop(channel_id, None)
            self._order = list(self._channels)
        if entry is not None:
            entry[0].close()

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def pending(self) -> int:
        with self.cond:
            return sum(len(buf) for buf, _ in self._channels.values())

    # ------------------------------------------------------------------ batching
    def _take_round_robin(self, batch: list[tuple[Frame, ResultHandler]], limit: int) -> None:
        """Add up to ``limit - len(batch)`` frames, one per channel per round."""
        if not self._order:
            return
        progressed = True
        while len(batch) < limit and progressed:
            progressed = False
            for _ in range(len(self._order)):
                channel_id = self._order[self._next % len(self._order)]
                self._next += 1
                buffer, handler = self._channels[channel_id]
                frame = buffer.pop()
                if frame is not None:
                    batch.append((frame, handler))
                    progressed = True
                    if len(batch) >= limit:
                        break

    def _collect(self) -> list[tuple[Frame, ResultHandler]] | None:
        """Block for the next batch; None when stopping."""
        batch: list[tuple[Frame, ResultHandler]] = []
        with self.cond:
            while not self._stop:
                self._take_round_robin(batch, self.max_size)
                if batch:
                    break
                self.cond.wait(0.2)
            if self._stop:
                return None
            deadline = time.monotonic() + self.config.max_wait_ms / 1000.0
            while len(batch) < self.max_size and not self._stop:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
                self._take_round_robin(batch, self.max_size)
            self.cond.notify_all()  # producers blocked on full buffers can go on
        return batch

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            frames = [frame for frame, _ in batch]
            try:
                results = self.module.process(frames)  # writes each frame's stage timings
            except Exception:  # one bad batch must not stop the shared path
                self.errors += 1
                log.exception("inference %s failed on a batch of %d frames from %s", self.name,
                              len(frames), sorted({f.channel_id for f in frames}))
                continue
            self.batches += 1
            self.frames += len(frames)
            for (frame, handler), dets in zip(batch, results, strict=True):
                frame.timings["batch"] = float(len(frames))
                try:
                    handler(frame, dets)
                except Exception:  # caught at the channel's boundary; others go on
                    log.exception("channel %s failed handling frame %d", frame.channel_id,
                                  frame.index)
