"""Events: what the edge node reports (to JSONL files, webhooks, MQTT, the central server).

An event is small, JSON-serialisable metadata; images travel separately. ``id`` is unique
so that receivers can deduplicate retries.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from oko.core.detections import Detections


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened on one channel.

    ``type`` names the kind (``detections``, ``line_crossing``, ``channel_error``, ...);
    ``timestamp`` is stream time in seconds, ``wall_time`` the Unix time of emission.
    """

    type: str
    channel_id: str
    timestamp: float
    frame_index: int
    data: dict[str, Any] = field(default_factory=dict)
    wall_time: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


def detection_records(dets: Detections, labels: Sequence[str], decimals: int = 1) -> list[dict]:
    """Detections as JSON-ready dicts: ``{"bbox": [x1,y1,x2,y2], "score": s, "label": name}``.

    Boxes are original-frame pixels rounded to ``decimals``; ``track_id`` is added when
    the detections carry one.
    """
    n = len(dets)
    if n == 0:
        return []
    boxes = np.round(dets.xyxy.astype(np.float64), decimals).tolist()
    scores = (np.round(dets.confidence.astype(np.float64), 4).tolist()
              if dets.confidence is not None else [None] * n)
    names = dets.labels(labels)
    records = [{"bbox": b, "score": s, "label": name}
               for b, s, name in zip(boxes, scores, names, strict=True)]
    if dets.track_id is not None:
        for record, tid in zip(records, dets.track_id.tolist(), strict=True):
            record["track_id"] = tid
    return records
