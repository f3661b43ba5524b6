"""Which views of a person are worth embedding: crop quality, and a per-track best-K keeper.

A track sees a person in many frames; most views are poor for appearance (small, blurred,
cut by the frame edge, half hidden behind someone else). Every detection of a frame gets
a score in [0, 1] from four factors, computed for all boxes at once:

- size: box height relative to ``full_height`` px (capped at 1): small people are blurs;
- frame edge: a box touching the border is truncated (x ``edge_penalty``);
- occlusion: the largest share of the box covered by another box of the same frame,
  (1 - share), so a person half behind another one scores half;
- sharpness: variance of the Laplacian of the grey crop relative to ``sharp_ref``
  (capped at 1), computed only for boxes that could enter a track's best set.

Each track keeps its ``k`` best crops (copies: frames are not kept alive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

EDGE_MARGIN_PX = 2


def box_quality(xyxy: np.ndarray, frame_w: int, frame_h: int, full_height: float = 160.0,
                edge_penalty: float = 0.3) -> np.ndarray:
    """Size x edge x occlusion factor per box, float32 (n,)."""
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, np.float32)
    w = np.maximum(boxes[:, 2] - boxes[:, 0], 0)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    size = np.minimum(h / full_height, 1.0)
    touches = ((boxes[:, 0] <= EDGE_MARGIN_PX) | (boxes[:, 1] <= EDGE_MARGIN_PX)
               | (boxes[:, 2] >= frame_w - EDGE_MARGIN_PX)
               | (boxes[:, 3] >= frame_h - EDGE_MARGIN_PX))
    edge = np.where(touches, edge_penalty, 1.0)
    # Intersection of every pair, as a share of the row box's own area.
    ix = np.maximum(0, np.minimum(boxes[:, None, 2], boxes[None, :, 2])
                    - np.maximum(boxes[:, None, 0], boxes[None, :, 0]))
    iy = np.maximum(0, np.minimum(boxes[:, None, 3], boxes[None, :, 3])
                    - np.maximum(boxes[:, None, 1], boxes[None, :, 1]))
    share = ix * iy / np.maximum(w * h, 1e-6)[:, None]
    np.fill_diagonal(share, 0.0)
    occlusion = 1.0 - np.minimum(share.max(axis=1), 1.0)
    return (size * edge * occlusion).astype(np.float32)


def sharpness(crop: np.ndarray, sharp_ref: float = 100.0) -> float:
    """Variance of the Laplacian of the grey crop (at most 128 px high), over ``sharp_ref``,
    capped at 1."""
    if crop.shape[0] < 3 or crop.shape[1] < 3:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    if grey.shape[0] > 128:  # the same scale for every crop: blur is relative to size
        grey = cv2.resize(grey, (max(3, grey.shape[1] * 128 // grey.shape[0]), 128),
                          interpolation=cv2.INTER_AREA)
    return float(min(cv2.Laplacian(grey, cv2.CV_32F).var() / sharp_ref, 1.0))


def crop_box(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The box's pixels (a view), clipped to the frame; at least 1x1 when inside."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = np.clip(np.round(box), 0, [w, h, w, h]).astype(int)
    return image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]


@dataclass
class View:
    """One kept view of a track."""

    score: float
    crop: np.ndarray                 # BGR uint8 copy
    mask: np.ndarray | None          # bool, crop-sized (from a segmentation detector)
    timestamp: float
    frame_index: int
    box: list[float]


@dataclass
class BestViews:
    """The ``k`` best views of one track, best first."""

    k: int = 4
    views: list[View] = field(default_factory=list)
    good_frames: int = 0             # views that scored at least ``min_score``

    def worst_kept(self) -> float:
        return self.views[-1].score if len(self.views) >= self.k else -1.0

    def offer(self, view: View) -> None:
        if view.score <= self.worst_kept():
            return
        self.views.append(view)
        self.views.sort(key=lambda v: -v.score)
        del self.views[self.k:]
