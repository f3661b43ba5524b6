"""One frame prepared once for every weight-free road analytic (lighting, glare, snow).

The analytics look at large-scale brightness and colour, not detail, so the frame is
shrunk once (area averaging, ``width`` px wide, 320 by default: 1280x720 becomes 320x180)
and luma, min-channel and HSV planes are computed once on the small image. That is what
lets lighting run at hundreds and snow at tens of frames per second on a small CPU. The
road region (a polygon in frame pixels) becomes a mask at the small size; figures are
taken inside it (the whole frame when none is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from oko.core.errors import ConfigError

DEFAULT_WIDTH = 320


def region_mask(polygon: Sequence[Sequence[float]] | None, frame_w: int, frame_h: int,
                width: int, height: int) -> np.ndarray:
    """A bool (height, width) mask of ``polygon`` (frame pixels) at the analysis size.

    A polygon that lies entirely outside the frame is a configuration error."""
    if polygon is None:
        return np.ones((height, width), bool)
    pts = np.asarray(polygon, np.float64).reshape(-1, 2)
    if len(pts) < 3:
        raise ConfigError(f"road region needs at least 3 points, got {len(pts)}")
    scaled = np.round(pts * [width / frame_w, height / frame_h]).astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [scaled], 1)
    if not mask.any():
        raise ConfigError(f"road region {pts.round(1).tolist()} lies outside the "
                          f"{frame_w}x{frame_h} frame", "give the region in frame pixels")
    return mask.astype(bool)


@dataclass
class Scene:
    """The shrunk frame and its planes; ``roi`` is the road region at the same size."""

    small: np.ndarray            # BGR uint8 (h, w, 3)
    roi: np.ndarray              # bool (h, w)

    @classmethod
    def from_frame(cls, image: np.ndarray, polygon: Sequence[Sequence[float]] | None = None,
                   width: int = DEFAULT_WIDTH, roi: np.ndarray | None = None) -> Scene:
        h, w = image.shape[:2]
        sw = min(width, w)
        sh = max(1, round(h * sw / w))
        small = image if sw == w else cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        if roi is None:
            roi = region_mask(polygon, w, h, sw, sh)
        return cls(small, roi)

    @cached_property
    def luma(self) -> np.ndarray:
        """BT.601 luma, uint8."""
        return cv2.cvtColor(self.small, cv2.COLOR_BGR2GRAY)

    @cached_property
    def min_channel(self) -> np.ndarray:
        """Per-pixel darkest channel (the "dark channel" before its local minimum)."""
        return self.small.min(axis=2)

    @cached_property
    def hsv(self) -> np.ndarray:
        return cv2.cvtColor(self.small, cv2.COLOR_BGR2HSV)

    @cached_property
    def roi_luma(self) -> np.ndarray:
        """Luma values inside the road region, flat."""
        return self.luma[self.roi]

    def luma_histogram(self, bins: int = 256) -> np.ndarray:
        """Counts of luma values 0..255 inside the region (float64, sums to pixel count)."""
        return np.bincount(self.roi_luma, minlength=256).astype(np.float64).reshape(
            bins, -1).sum(axis=1)


def percentile_from_histogram(hist: np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0..100) of values 0..len(hist)-1 given their counts."""
    total = hist.sum()
    if total <= 0:
        return 0.0
    cdf = np.cumsum(hist)
    return float(np.searchsorted(cdf, q / 100.0 * total, side="left"))
