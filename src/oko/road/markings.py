"""Marking visibility: how much of the expected lane marking the segmentation sees.

The channel config draws the markings that should be there as polylines in frame
pixels. Points are sampled every ``step_px`` along each line; the visible share is the
fraction of them on (or within ``tolerance_px`` of) a pixel of a marking class in the
class map. Worn or snow-covered markings fall below 1; a line drawn where there is no
marking at all reads 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class MarkingLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    points: list[tuple[float, float]] = Field(min_length=2, description="Polyline, frame px.")


def sample_polyline(points: Sequence[Sequence[float]], step_px: float = 2.0) -> np.ndarray:
    """Points every ``step_px`` along a polyline, (n, 2) float."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    seg = np.diff(pts, axis=0)
    lengths = np.linalg.norm(seg, axis=1)
    total = float(lengths.sum())
    if total == 0:
        return pts[:1]
    s = np.arange(0.0, total + 1e-9, step_px)
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    frac = (s - cum[i]) / np.where(lengths[i] > 0, lengths[i], 1.0)
    return pts[i] + seg[i] * frac[:, None]


def marking_visibility(class_map: np.ndarray, marking_ids: Sequence[int],
                       lines: Sequence[MarkingLine], tolerance_px: int = 3,
                       step_px: float = 2.0) -> dict[str, float]:
    """Visible share (0..1) per line name."""
    seen = np.isin(class_map, list(marking_ids)).astype(np.uint8)
    if tolerance_px > 0:
        k = 2 * tolerance_px + 1
        seen = cv2.dilate(seen, np.ones((k, k), np.uint8))
    h, w = class_map.shape[:2]
    out = {}
    for line in lines:
        pts = np.round(sample_polyline(line.points, step_px)).astype(int)
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
        pts = pts[inside]
        out[line.name] = round(float(seen[pts[:, 1], pts[:, 0]].mean()) if len(pts) else 0.0, 4)
    return out
