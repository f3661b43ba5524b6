"""Events: what the edge node reports (to JSONL files, webhooks, MQTT, the central server).

An event is small, JSON-serialisable metadata; images travel separately. ``id`` is unique
so that receivers can deduplicate retries.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oko.core.detections import Detections


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened on one channel.

    ``type`` names the kind (``detections``, ``line_crossing``, ``zone_enter``,
    ``zone_exit``, ``channel_state``, ...); ``timestamp`` is stream time in seconds,
    ``wall_time`` the Unix time of emission. Kind-specific fields (track id, class, zone or
    line name, direction, counts, plate text, identity) go in ``data``. ``snapshot`` is an
    optional JPEG crop, carried base64-encoded as ``snapshot_jpeg`` in JSON.
    """

    type: str
    channel_id: str
    timestamp: float
    frame_index: int
    data: dict[str, Any] = field(default_factory=dict)
    wall_time: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    snapshot: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "type": self.type, "channel_id": self.channel_id,
               "timestamp": self.timestamp, "frame_index": self.frame_index,
               "wall_time": self.wall_time, "data": self.data}
        if self.snapshot is not None:
            out["snapshot_jpeg"] = base64.b64encode(self.snapshot).decode("ascii")
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        snapshot = d.get("snapshot_jpeg")
        return cls(type=d["type"], channel_id=d["channel_id"], timestamp=float(d["timestamp"]),
                   frame_index=int(d["frame_index"]), data=dict(d.get("data") or {}),
                   wall_time=float(d.get("wall_time", time.time())), id=str(d["id"]),
                   snapshot=base64.b64decode(snapshot) if snapshot else None)

    @classmethod
    def from_json(cls, text: str) -> Event:
        return cls.from_dict(json.loads(text))


def detection_records(dets: Detections, labels: Sequence[str], decimals: int = 1) -> list[dict]:
    """Detections as JSON-ready dicts: ``{"bbox": [x1,y1,x2,y2], "score": s, "label": name}``.

    Boxes are original-frame pixels rounded to ``decimals``; ``track_id`` is added when
    the detections carry one, ``keypoints`` likewise, and every ``data`` column under its
    own name (numbers rounded, arrays as lists, strings and None as they are).
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
    if dets.keypoints is not None:
        points = np.round(dets.keypoints.astype(np.float64), decimals).tolist()
        for record, kp in zip(records, points, strict=True):
            record["keypoints"] = kp
    for name, column in dets.data.items():
        values = _json_column(np.asarray(column))
        for record, value in zip(records, values, strict=True):
            record[name] = value
    return records


def _json_column(column: np.ndarray) -> list[Any]:
    """One data column as JSON-ready values (floats to 4 decimals)."""
    if column.dtype.kind == "f":
        return np.round(column.astype(np.float64), 4).tolist()
    if column.dtype.kind in "biu":
        return column.tolist()
    return [_json_value(v) for v in column.tolist()]


def _json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _json_column(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value
