"""Clothing colours without learned weights: the dominant named colour of the upper and the
lower body, counted on the silhouette only (for "person in a red jacket" searches).

The box is split by height: upper body 15-50 % (below the head, above the hips), lower
body 55-90 % (legs, above the feet and the floor). Pixels are named by the same HSV rules
as vehicle paint (:func:`oko.vehicles.colour.name_pixels`), silver folded into grey.
Clothing hue is weaker than paint, so a hue wins when at least ``chromatic_share`` of the
region's pixels carry one; otherwise the most common of black, grey and white. Without a
mask the middle 60 % of the box width is used (background sits at the sides).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from oko.vehicles.colour import COLOURS, name_pixels

REGIONS = {"upper": (0.15, 0.50), "lower": (0.55, 0.90)}
SAMPLE_H, SAMPLE_W = 24, 16
CLOTHING_COLOURS = ("black", "grey", "white", "red", "orange", "yellow", "green", "blue",
                    "purple", "brown", "beige")
# COLOURS index -> CLOTHING_COLOURS index (silver -> grey).
_FOLD = np.array([CLOTHING_COLOURS.index("grey" if c == "silver" else c) for c in COLOURS])
_N_ACHROMATIC = 3


def clothing_colours(crops: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None
                     = None, chromatic_share: float = 0.3, min_pixels: int = 24
                     ) -> list[dict[str, str | None]]:
    """``{"upper_colour": name|None, "lower_colour": name|None}`` per BGR person crop;
    None for a region with fewer than ``min_pixels`` (silhouette) pixels of the crop."""
    n = len(crops)
    if n == 0:
        return []
    k = len(CLOTHING_COLOURS)
    out: list[dict[str, str | None]] = [{} for _ in range(n)]
    for region, (top, bottom) in REGIONS.items():
        samples = np.zeros((n, SAMPLE_H, SAMPLE_W, 3), np.uint8)
        weights = np.zeros((n, SAMPLE_H, SAMPLE_W), np.float32)
        for i, crop in enumerate(crops):  # crops differ in size: one resize each
            h, w = crop.shape[:2]
            y1, y2 = int(top * h), max(int(bottom * h), int(top * h) + 1)
            mask = None if masks is None else masks[i]
            if mask is None:
                x1, x2 = int(0.2 * w), max(int(0.8 * w), int(0.2 * w) + 1)
            else:
                x1, x2 = 0, w
            part = crop[y1:y2, x1:x2]
            if part.size == 0:
                continue
            samples[i] = cv2.resize(part, (SAMPLE_W, SAMPLE_H), interpolation=cv2.INTER_AREA)
            # Each sample cell stands for part.size / cells crop pixels, so that the
            # totals (and ``min_pixels``) count the crop's pixels, not the sample grid's.
            weights[i] = (1.0 if mask is None else cv2.resize(
                mask[y1:y2, x1:x2].astype(np.uint8), (SAMPLE_W, SAMPLE_H),
                interpolation=cv2.INTER_NEAREST)) * (part.shape[0] * part.shape[1]
                                                    / (SAMPLE_H * SAMPLE_W))
        hsv = cv2.cvtColor(samples.reshape(n * SAMPLE_H, SAMPLE_W, 3), cv2.COLOR_BGR2HSV)
        names = _FOLD[name_pixels(hsv).astype(np.int64)].reshape(n, -1)
        w = weights.reshape(n, -1)
        hist = np.bincount((names + np.arange(n)[:, None] * k).ravel(), w.ravel(),
                           minlength=n * k).reshape(n, k)
        total = hist.sum(axis=1)
        chromatic = hist[:, _N_ACHROMATIC:].sum(axis=1) >= chromatic_share * np.maximum(total, 1)
        choice = np.where(chromatic, _N_ACHROMATIC + hist[:, _N_ACHROMATIC:].argmax(axis=1),
                          hist[:, :_N_ACHROMATIC].argmax(axis=1))
        for i in range(n):
            out[i][f"{region}_colour"] = (CLOTHING_COLOURS[choice[i]]
                                          if total[i] >= min_pixels else None)
    return out
