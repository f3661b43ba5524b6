"""Per-channel statistics: input and processed fps, latency, drops."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from oko.core.detections import Detections


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
    detections_by_class: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    track_ids_by_class: dict[int, set[int]] = field(default_factory=dict)

    def count_objects(self, dets: Detections) -> None:
        """Detections per class, and distinct confirmed track ids per class."""
        if not len(dets) or dets.class_id is None:
            return
        counts = np.bincount(dets.class_id, minlength=len(self.detections_by_class))
        with self.lock:
            if len(counts) > len(self.detections_by_class):
                self.detections_by_class = np.pad(
                    self.detections_by_class, (0, len(counts) - len(self.detections_by_class)))
            self.detections_by_class[: len(counts)] += counts
            if dets.track_id is not None:
                confirmed = dets.track_id >= 0
                for cid, tid in zip(dets.class_id[confirmed].tolist(),
                                    dets.track_id[confirmed].tolist(), strict=True):
                    self.track_ids_by_class.setdefault(cid, set()).add(tid)

    def per_label(self, labels: list[str]) -> dict[str, dict[str, int]]:
        with self.lock:
            out = {}
            for cid in np.flatnonzero(self.detections_by_class).tolist():
                name = labels[cid] if cid < len(labels) else str(cid)
                out[name] = {"detections": int(self.detections_by_class[cid]),
                             "tracks": len(self.track_ids_by_class.get(cid, ()))}
            return out

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
