"""Anchor points of boxes: the one point per box that zones and lines test.

``bottom_center`` (the middle of the box's lower edge) is the default for people and
vehicles: it is where they touch the ground, so it moves across a painted line or a floor
zone the way the object does, while the box centre floats above the ground plane.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np


class Anchor(StrEnum):
    """Which point of a box stands for the object."""

    CENTER = "center"
    BOTTOM_CENTER = "bottom_center"
    TOP_CENTER = "top_center"
    CENTER_LEFT = "center_left"
    CENTER_RIGHT = "center_right"
    TOP_LEFT = "top_left"
    TOP_RIGHT = "top_right"
    BOTTOM_LEFT = "bottom_left"
    BOTTOM_RIGHT = "bottom_right"


# (fraction of the width from x1, fraction of the height from y1); image y points down.
_FRACTIONS: dict[Anchor, tuple[float, float]] = {
    Anchor.CENTER: (0.5, 0.5),
    Anchor.BOTTOM_CENTER: (0.5, 1.0),
    Anchor.TOP_CENTER: (0.5, 0.0),
    Anchor.CENTER_LEFT: (0.0, 0.5),
    Anchor.CENTER_RIGHT: (1.0, 0.5),
    Anchor.TOP_LEFT: (0.0, 0.0),
    Anchor.TOP_RIGHT: (1.0, 0.0),
    Anchor.BOTTOM_LEFT: (0.0, 1.0),
    Anchor.BOTTOM_RIGHT: (1.0, 1.0),
}


def anchor_points(xyxy: np.ndarray, anchor: Anchor | str = Anchor.BOTTOM_CENTER) -> np.ndarray:
    """Anchor points of ``xyxy`` boxes (n, 4) as float64 (n, 2) pixel coordinates."""
    fx, fy = _FRACTIONS[Anchor(anchor)]
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    x = boxes[:, 0] + fx * (boxes[:, 2] - boxes[:, 0])
    y = boxes[:, 1] + fy * (boxes[:, 3] - boxes[:, 1])
    return np.stack([x, y], axis=1)
