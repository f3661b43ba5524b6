"""Snow on the road without learned weights: bright, colourless, smooth pixels, smoothed
over time.

A pixel is snow-like when it is bright (luma >= ``min_luma`` and at least ``relative``
times the region's 90th-percentile luma, so an overall bright overcast frame does not
turn the whole road white), colourless (HSV saturation <= ``max_saturation``) and smooth
(luma standard deviation in a 5x5 window <= ``max_texture``: asphalt, gravel and wet
reflections are grainy, settled snow is not). A morphological opening (``open_px``)
removes thin bright lines, i.e. lane markings, which are also white and smooth. Each
frame's snow-like map is blended into a running per-pixel average (``smoothing``: the
weight of the new frame), so passing vehicles, headlights and flakes in the air do not
flicker the figure; the snow cover is the share of road-region pixels whose average is
at least 0.5.

Known limits: white vehicles parked long enough, white-painted areas wider than
``open_px`` and a road surface in full sun overexposed to white look like snow; dirty
grey slush and snow at night under sodium lights (orange) do not.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.road.scene import Scene


class SnowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min_luma: int = Field(150, ge=0, le=255, description="Darkest luma that can be snow.")
    relative: float = Field(0.8, ge=0, le=1, description="Snow is at least this share of the "
                            "region's 90th-percentile luma.")
    max_saturation: int = Field(45, ge=0, le=255, description="Most HSV saturation (0-255).")
    max_texture: float = Field(10.0, ge=0, description="Most luma std in a 5x5 window.")
    open_px: int = Field(3, ge=0, le=15, description="Opening size that removes thin lines "
                         "(markings), in analysis pixels (320 px wide frames).")
    smoothing: float = Field(0.3, gt=0, le=1, description="Weight of each new frame in the "
                             "running average (1: no smoothing).")


class SnowEstimator:
    """Per-channel state: the running per-pixel snow average."""

    def __init__(self, config: SnowConfig | None = None) -> None:
        self.config = config or SnowConfig()
        self.average: np.ndarray | None = None
        c = self.config
        self._kernel = (cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (c.open_px, c.open_px))
                        if c.open_px > 1 else None)

    def snow_like(self, scene: Scene) -> np.ndarray:
        """This frame's snow-like pixels, bool at the analysis size."""
        c = self.config
        luma = scene.luma
        roi_luma = scene.roi_luma
        p90 = float(np.percentile(roi_luma, 90)) if roi_luma.size else 255.0
        bright = luma >= max(c.min_luma, c.relative * p90)
        colourless = scene.hsv[..., 1] <= c.max_saturation
        y = luma.astype(np.float32)
        mean = cv2.blur(y, (5, 5))
        var = cv2.blur(y * y, (5, 5)) - mean * mean
        smooth = var <= c.max_texture ** 2
        mask = (bright & colourless & smooth).astype(np.uint8)
        if self._kernel is not None:
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        return mask.astype(bool)

    def __call__(self, scene: Scene) -> dict[str, Any]:
        now = self.snow_like(scene).astype(np.float32)
        if self.average is None or self.average.shape != now.shape:
            self.average = now
        else:
            a = self.config.smoothing
            cv2.addWeighted(now, a, self.average, 1.0 - a, 0.0, dst=self.average)
        roi = scene.roi
        n = max(int(roi.sum()), 1)
        return {"snow_cover": round(float((self.average[roi] >= 0.5).sum() / n), 4),
                "snow_cover_frame": round(float(now[roi].sum() / n), 4)}
