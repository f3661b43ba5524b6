"""Road defects as events: one pothole is one event, not one per frame.

Per frame the segmentation gives polygons of defect classes (crack, pothole, puddle,
manhole, ...). Each is matched to the defects already known on this channel: same class
and bounding boxes overlapping (IoU >= ``match_iou``; a fixed camera sees a defect in the
same place). A new defect is announced once it has been seen in ``confirm_frames``
frames (one-frame segmentation noise is not a defect), with its largest polygon so far;
it is forgotten after ``forget_s`` seconds unseen. Area is in pixels and, with a ground
calibration, in square metres. Severity is ``low``/``medium``/``high`` from class weight x
area (m2 when calibrated, else per cent of the frame): a rough triage, not a standard.

Known limit: matching by position suits fixed cameras; from a moving patrol car one
defect gives one event per pass only when frames are far apart, else several.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.road.calibration import GroundPlane


class DefectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    classes: list[str] = Field(["crack", "pothole", "puddle", "manhole"],
                               description="Segmentation labels that are defects.")
    min_area_px: float = Field(50.0, ge=0, description="Smaller regions are ignored.")
    match_iou: float = Field(0.3, gt=0, le=1, description="Box IoU to be the same defect.")
    confirm_frames: int = Field(3, ge=1, description="Frames before a defect is announced.")
    forget_s: float = Field(60.0, gt=0, description="Unseen this long: forgotten.")
    weights: dict[str, float] = Field(
        {"pothole": 3.0, "crack": 1.0, "puddle": 1.0, "manhole": 0.5},
        description="Severity weight per class (others: 1).")
    medium_from: float = Field(1.0, ge=0, description="Score (weight x m2, or x % of frame "
                               "uncalibrated) from which severity is medium.")
    high_from: float = Field(4.0, ge=0, description="Score from which severity is high.")


def _box(polygon: np.ndarray) -> np.ndarray:
    p = np.asarray(polygon, np.float32).reshape(-1, 2)
    return np.concatenate([p.min(axis=0), p.max(axis=0)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Defect:
    id: int
    label: str
    box: np.ndarray
    polygon: np.ndarray
    area_px: float
    first_seen: float
    last_seen: float
    frames: int = 1
    announced: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class DefectTracker:
    def __init__(self, config: DefectConfig | None = None,
                 ground: GroundPlane | None = None) -> None:
        self.config = config or DefectConfig()
        self.ground = ground
        self.defects: list[Defect] = []
        self._ids = itertools.count(1)

    def severity(self, label: str, area_px: float, area_m2: float | None,
                 frame_area: float) -> str:
        c = self.config
        size = area_m2 if area_m2 is not None else 100.0 * area_px / max(frame_area, 1.0)
        score = c.weights.get(label, 1.0) * size
        return "high" if score >= c.high_from else "medium" if score >= c.medium_from else "low"

    def update(self, regions: list[dict[str, Any]], t: float, frame_area: float
               ) -> list[dict[str, Any]]:
        """Regions ``{label, polygon, area}`` of this frame -> newly confirmed defects."""
        c = self.config
        self.defects = [d for d in self.defects if t - d.last_seen <= c.forget_s]
        confirmed = []
        for region in regions:
            label, area = region["label"], float(region["area"])
            if label not in c.classes or area < c.min_area_px:
                continue
            polygon = np.asarray(region["polygon"], np.float32).reshape(-1, 2)
            box = _box(polygon)
            match = max((d for d in self.defects if d.label == label),
                        key=lambda d: _iou(d.box, box), default=None)
            if match is None or _iou(match.box, box) < c.match_iou:
                self.defects.append(Defect(next(self._ids), label, box, polygon, area, t, t))
                match = self.defects[-1]
            else:
                match.frames += 1
                match.last_seen = t
                if area > match.area_px:
                    match.polygon, match.area_px, match.box = polygon, area, box
            if not match.announced and match.frames >= c.confirm_frames:
                match.announced = True
                confirmed.append(self.describe(match, frame_area))
        return confirmed

    def describe(self, d: Defect, frame_area: float) -> dict[str, Any]:
        area_m2 = self.ground.area_m2(d.polygon) if self.ground is not None else None
        out: dict[str, Any] = {
            "defect_id": d.id, "class": d.label,
            "polygon": np.round(d.polygon, 1).tolist(), "area_px": round(d.area_px, 1),
            "severity": self.severity(d.label, d.area_px, area_m2, frame_area),
            "frames": d.frames, "first_seen": round(d.first_seen, 3)}
        if area_m2 is not None:
            out["area_m2"] = round(area_m2, 3)
        return out
