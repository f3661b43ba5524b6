"""What a semantic segmentation says about one frame: a class per pixel, and views of it.

:class:`SegmentationResult` holds the class map in original frame pixels and answers the
questions road analytics ask of it, all vectorised (no per-pixel Python):

- ``mask(cls)``: one class as a bool mask, made on demand;
- ``coverage(roi_mask)``: the fraction of the frame (or of a region of interest) each class
  covers, from one ``np.bincount``;
- ``polygons(...)``: outlines of each class's connected regions (``cv2.findContours`` then
  ``cv2.approxPolyDP``), with their exact pixel areas, small ones dropped;
- ``colorize()`` / ``blend(image, alpha)``: BGR images for annotated video.

Colours are given RGB (as manifests list them) and drawn BGR (as OpenCV frames are).
Pixels equal to ``ignore_index`` belong to no class: they are uncoloured, never outlined,
and counted in the coverage denominator only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Cityscapes' palette (RGB): road, sidewalk, building, wall, fence, pole, traffic light,
# traffic sign, vegetation, terrain, sky, person, rider, car, truck, bus, train, motorcycle,
# bicycle. Classes beyond 19 get evenly spread hues.
_PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32)], dtype=np.uint8)


def default_colors(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB: the Cityscapes palette, then golden-ratio hues."""
    if n <= len(_PALETTE):
        return _PALETTE[:n].copy()
    extra = n - len(_PALETTE)
    hues = ((np.arange(extra) * 0.618034) % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(extra, 200, np.uint8), np.full(extra, 230, np.uint8)], -1)
    rgb = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]
    return np.concatenate([_PALETTE, rgb])


@dataclass(frozen=True, eq=False)
class SegmentationResult:
    """One frame's class map (uint8 or uint16, frame height x width) and its label set."""

    class_map: np.ndarray
    labels: tuple[str, ...]
    colors: np.ndarray  # (len(labels), 3) uint8 RGB
    ignore_index: int | None = 255

    @property
    def shape(self) -> tuple[int, int]:
        return self.class_map.shape[:2]

    def class_id(self, cls: int | str) -> int:
        """The index of a class given by index or label name."""
        if isinstance(cls, str):
            try:
                return self.labels.index(cls)
            except ValueError:
                raise KeyError(f"no class {cls!r}; labels are {list(self.labels)}") from None
        if not 0 <= int(cls) < len(self.labels):
            raise KeyError(f"class index {cls} out of range 0..{len(self.labels) - 1}")
        return int(cls)

    def mask(self, cls: int | str) -> np.ndarray:
        """Bool (H, W): the pixels of one class."""
        return self.class_map == self.class_id(cls)

    def pixel_counts(self, roi_mask: np.ndarray | None = None) -> np.ndarray:
        """int64 (len(labels),): pixels per class, inside ``roi_mask`` when given."""
        values = self.class_map if roi_mask is None else self.class_map[self._roi(roi_mask)]
        counts = np.bincount(values.ravel(), minlength=len(self.labels))
        return counts[:len(self.labels)].astype(np.int64)

    def coverage(self, roi_mask: np.ndarray | None = None) -> dict[str, float]:
        """Fraction of the frame (or of the ROI's pixels) each label covers.

        The denominator is every pixel considered, ignored ones included, so the fractions
        sum to 1 minus the ignored share. An empty ROI gives zeros.
        """
        total = self.class_map.size if roi_mask is None else int(
            np.count_nonzero(self._roi(roi_mask)))
        counts = self.pixel_counts(roi_mask)
        fractions = counts / total if total else np.zeros(len(self.labels))
        return {label: float(f) for label, f in zip(self.labels, fractions, strict=True)}

    def polygons(self, class_ids: Sequence[int | str] | None = None, min_area: float = 0.0,
                 epsilon: float = 1.5) -> list[dict]:
        """Outlines of each class's connected regions, largest first within a class.

        Each item is ``{"label", "class_id", "polygon": [[x, y], ...], "area"}``: the outer
        boundary (8-connected, holes not subtracted from the outline) through pixel centres
        in frame pixels, simplified by ``cv2.approxPolyDP`` with ``epsilon`` pixels
        tolerance (0 keeps every corner); ``area`` is the region's exact pixel count.
        Regions with fewer than ``min_area`` pixels are dropped.
        """
        if class_ids is None:
            ids = [int(i) for i in np.flatnonzero(self.pixel_counts())]
        else:
            ids = [self.class_id(c) for c in class_ids]
        out: list[dict] = []
        for cid in ids:
            mask = (self.class_map == cid).view(np.uint8)
            n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            if n <= 1:
                continue
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            found = []
            for contour in contours:  # one per connected region
                x, y = contour[0, 0]
                area = int(stats[comp[y, x], cv2.CC_STAT_AREA])
                if area < min_area:
                    continue
                poly = cv2.approxPolyDP(contour, epsilon, True) if epsilon > 0 else contour
                found.append({"label": self.labels[cid], "class_id": cid,
                              "polygon": poly.reshape(-1, 2).tolist(), "area": area})
            out.extend(sorted(found, key=lambda p: -p["area"]))
        return out

    def colorize(self) -> np.ndarray:
        """BGR uint8 (H, W, 3): each class in its colour, ignored pixels black."""
        size = 256 if self.class_map.dtype == np.uint8 else 65536
        lut = np.zeros((size, 3), np.uint8)
        lut[:len(self.labels)] = self.colors[:, ::-1]
        return np.take(lut, self.class_map, axis=0)

    def blend(self, image: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """``image`` (BGR, frame-sized) with the class colours laid over it at ``alpha``;
        ignored pixels keep the image."""
        if image.shape[:2] != self.shape:
            raise ValueError(f"image is {image.shape[1]}x{image.shape[0]}, class map "
                             f"{self.shape[1]}x{self.shape[0]}")
        out = cv2.addWeighted(image, 1.0 - alpha, self.colorize(), alpha, 0.0)
        if self.ignore_index is not None:
            ignored = self.class_map == self.ignore_index
            if ignored.any():
                out[ignored] = image[ignored]
        return out

    def _roi(self, roi_mask: np.ndarray) -> np.ndarray:
        roi = np.asarray(roi_mask)
        if roi.shape[:2] != self.shape:
            raise ValueError(f"ROI mask is {roi.shape[1]}x{roi.shape[0]}, class map "
                             f"{self.shape[1]}x{self.shape[0]}")
        return roi.astype(bool, copy=False) if roi.ndim == 2 else roi[..., 0].astype(bool)
