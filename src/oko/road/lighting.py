"""Lighting and glare without learned weights.

Lighting, over the road region: mean/median luma and its 5th/95th percentiles, a 16-bin
histogram, the share of under-exposed (luma <= ``dark_level``) and over-exposed (>=
``bright_level``) pixels, day / twilight / night from the median luma, and the lit share
of the road (luma >= ``lit_level``): at night, the road under working street lights.

Glare, over the whole frame (it happens on the lens): large saturated regions (connected
pixels >= ``saturated_level`` covering at least ``min_blob`` of the frame) and veiling glare
(stray light over the whole image lifts its darkest parts and collapses contrast: the
5th percentile of the dark channel, i.e. of the per-pixel darkest colour channel after a
7x7 local minimum, above ``veil_dark``, with luma contrast (p95 - p5) / 255 below
``veil_contrast``). A clear scene nearly always has some dark pixels (shadows, tyres, deep
colours); a veiled one does not.

Every figure is defined for any image: an all-black or all-white frame gives fractions of
0 or 1, never a division by zero.
"""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oko.road.scene import Scene, percentile_from_histogram

Phase = Literal["day", "twilight", "night"]


class LightingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dark_level: int = Field(16, ge=0, le=255, description="Luma at or below: under-exposed.")
    bright_level: int = Field(245, ge=0, le=255, description="Luma at or above: over-exposed.")
    night_below: float = Field(45.0, ge=0, le=255, description="Median road luma below: night.")
    day_above: float = Field(90.0, ge=0, le=255, description="Median road luma above: day.")
    lit_level: int = Field(60, ge=0, le=255, description="Road luma at or above: lit (night).")

    @model_validator(mode="after")
    def _ordered(self) -> LightingConfig:
        if self.night_below > self.day_above:
            raise ValueError(f"night_below {self.night_below} > day_above {self.day_above}")
        return self


class GlareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    saturated_level: int = Field(250, ge=0, le=255, description="Luma at or above: saturated.")
    min_blob: float = Field(0.002, ge=0, le=1, description="Smallest saturated region counted, "
                            "as a share of the frame.")
    glare_area: float = Field(0.01, ge=0, le=1, description="Saturated regions covering this "
                              "share of the frame: glare.")
    veil_dark: float = Field(50.0, ge=0, le=255, description="Dark-channel p5 above: veiled "
                             "(with low contrast).")
    veil_contrast: float = Field(0.45, ge=0, le=1, description="Luma (p95 - p5) / 255 below: "
                                 "veiled (with a lifted dark channel).")


def lighting(scene: Scene, config: LightingConfig | None = None) -> dict[str, Any]:
    c = config or LightingConfig()
    hist = scene.luma_histogram()
    n = max(hist.sum(), 1.0)
    levels = np.arange(256)
    median = percentile_from_histogram(hist, 50)
    phase: Phase = ("night" if median < c.night_below else
                    "day" if median > c.day_above else "twilight")
    return {
        "mean_luma": round(float(hist @ levels / n), 2),
        "median_luma": median,
        "p5_luma": percentile_from_histogram(hist, 5),
        "p95_luma": percentile_from_histogram(hist, 95),
        "underexposed": round(float(hist[:c.dark_level + 1].sum() / n), 4),
        "overexposed": round(float(hist[c.bright_level:].sum() / n), 4),
        "lit_fraction": round(float(hist[c.lit_level:].sum() / n), 4),
        "phase": phase,
        "histogram": np.round(hist.reshape(16, 16).sum(axis=1) / n, 4).tolist(),
    }


_VEIL_KERNEL = np.ones((7, 7), np.uint8)


def glare(scene: Scene, config: GlareConfig | None = None) -> dict[str, Any]:
    c = config or GlareConfig()
    luma = scene.luma
    total = luma.size
    saturated = (luma >= c.saturated_level).astype(np.uint8)
    blobs, largest, covered = 0, 0.0, 0.0
    if saturated.any():
        count, _, stats, _ = cv2.connectedComponentsWithStats(saturated, connectivity=8)
        areas = stats[1:count, cv2.CC_STAT_AREA] / total
        big = areas[areas >= c.min_blob]
        blobs, largest, covered = len(big), float(areas.max()), float(big.sum())
    dark = cv2.erode(scene.min_channel, _VEIL_KERNEL)
    dark_hist = np.bincount(dark.ravel(), minlength=256).astype(np.float64)
    dark_level = percentile_from_histogram(dark_hist, 5)
    luma_hist = np.bincount(luma.ravel(), minlength=256).astype(np.float64)
    contrast = (percentile_from_histogram(luma_hist, 95)
                - percentile_from_histogram(luma_hist, 5)) / 255.0
    veiled = dark_level > c.veil_dark and contrast < c.veil_contrast
    return {
        "saturated_fraction": round(float(saturated.mean()), 4),
        "saturated_regions": blobs,
        "largest_region": round(largest, 4),
        "glare_area": round(covered, 4),
        "dark_level": dark_level,
        "contrast": round(contrast, 4),
        "veiled": bool(veiled),
        "glare": bool(covered >= c.glare_area or veiled),
    }
