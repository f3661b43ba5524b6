"""Per-channel statistics: input and processed fps, latency, drops."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field


class RateMeter:
    """Events per second over a sliding window of recent timestamps."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self.total = 0

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        self.total += 1
        cutoff = now - self.window_s
        while self._times and self._times[0] < cutoff:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        cutoff = now - self.window_s
        while self._times and self._times[0] < cutoff:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], 1e-6)
        return len(self._times) / span


@dataclass
class ChannelStats:
    """Counters of one channel; updated by its decode thread and the inference thread."""

    decoded: RateMeter = field(default_factory=RateMeter)
    processed: RateMeter = field(default_factory=RateMeter)
    latency_ms: float = 0.0  # exponential moving average, decode -> results handled
    events: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def frame_decoded(self) -> None:
        with self.lock:
            self.decoded.tick()

    def frame_processed(self, latency_ms: float) -> None:
        with self.lock:
            self.processed.tick()
            alpha = 0.1 if self.processed.total > 1 else 1.0
            self.latency_ms += alpha * (latency_ms - self.latency_ms)

    def snapshot(self) -> dict[str, float | int]:
        with self.lock:
            return {
                "frames_decoded": self.decoded.total,
                "frames_processed": self.processed.total,
                "input_fps": round(self.decoded.rate(), 2),
                "processed_fps": round(self.processed.rate(), 2),
                "latency_ms": round(self.latency_ms, 1),
                "events": self.events,
                "errors": self.errors,
            }
