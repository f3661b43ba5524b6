"""Per-track attribute votes: one event per track with its attributes decided over frames.

Shared by the modules that classify objects frame by frame (vehicles, person attributes).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from oko.core.detections import Detections
from oko.core.events import Event
from oko.core.frame import Frame
from oko.modules.base import TrackReporter


@dataclass
class _Track:
    first_seen: float
    last_seen: float = 0.0
    frames: int = 0
    tallies: dict[str, dict[Any, float]] = field(default_factory=lambda: defaultdict(
        lambda: defaultdict(float)))
    best_area: float = 0.0
    best: dict[str, Any] = field(default_factory=dict)
    snapshot: bytes | None = None


class VotingReporter(TrackReporter):
    """One event per track when it ends (``event_type``): class, and every per-frame
    attribute column that has a ``<name>_confidence`` twin (colour, classifier heads)
    voted over the track's frames weighted by confidence, and the largest view.

    ``options`` needs ``track_timeout_s``, ``min_frames`` and ``snapshots``."""

    event_type: ClassVar[str] = "track"

    def __init__(self, channel_id: str, options: Any, labels: list[str]) -> None:
        self.channel_id = channel_id
        self.options = options
        self.labels = labels
        self._tracks: dict[int, _Track] = {}

    def update(self, frame: Frame, dets: Detections) -> list[Event]:
        if dets.track_id is not None and len(dets):
            votable = [k for k, v in dets.data.items()
                       if v.dtype == object and f"{k}_confidence" in dets.data]
            for i in np.flatnonzero(dets.track_id >= 0):
                tid = int(dets.track_id[i])
                t = self._tracks.setdefault(tid, _Track(first_seen=frame.timestamp))
                t.last_seen = frame.timestamp
                t.frames += 1
                t.tallies["label"][self.labels[int(dets.class_id[i])]] += float(dets.confidence[i])
                for key in votable:
                    value = dets.data[key][i]
                    if value is not None:
                        t.tallies[key][value] += float(dets.data[f"{key}_confidence"][i])
                area = float(np.prod(dets.xyxy[i, 2:] - dets.xyxy[i, :2]))
                if area > 1.2 * t.best_area:
                    t.best_area = area
                    t.best = {"bbox": [round(float(v), 1) for v in dets.xyxy[i]],
                              "timestamp": frame.timestamp, "frame_index": frame.index}
                    if self.options.snapshots:
                        t.snapshot = _jpeg(frame.image, dets.xyxy[i])
        return self._close(frame.timestamp)

    def finish(self) -> list[Event]:
        return self._close(None)

    def _close(self, now: float | None) -> list[Event]:
        events = []
        for tid in [tid for tid, t in self._tracks.items()
                    if now is None or now - t.last_seen > self.options.track_timeout_s]:
            t = self._tracks.pop(tid)
            if t.frames < self.options.min_frames:
                continue
            data: dict[str, Any] = {"track_id": tid, "frames": t.frames,
                                    "first_seen": round(t.first_seen, 3),
                                    "last_seen": round(t.last_seen, 3), "bbox": t.best.get("bbox")}
            for key, tally in t.tallies.items():
                value, weight = max(tally.items(), key=lambda kv: kv[1])
                data[key] = value
                if key != "label":
                    data[f"{key}_confidence"] = round(weight / t.frames, 4)
            events.append(Event(self.event_type, self.channel_id, t.best.get("timestamp", t.last_seen),
                                t.best.get("frame_index", -1), data, snapshot=t.snapshot))
        return events


def _jpeg(image: np.ndarray, box: np.ndarray) -> bytes | None:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = np.clip(np.round(box), 0, [w, h, w, h]).astype(int)
    if x2 <= x1 or y2 <= y1:
        return None
    ok, jpeg = cv2.imencode(".jpg", image[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, 85])
    return jpeg.tobytes() if ok else None
