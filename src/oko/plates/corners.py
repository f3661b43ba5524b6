"""Plate corners: canonical order, margins, shape, and corners estimated inside a box.

Corners are float32 (n, 4, 2) pixel points in the order top-left, top-right,
bottom-right, bottom-left (clockwise on screen, image y pointing down).
"""

from __future__ import annotations

import cv2
import numpy as np


def order_corners(points: np.ndarray) -> np.ndarray:
    """Put any four points per plate in TL, TR, BR, BL order (vectorised).

    Sorting by angle around the centre gives the clockwise cycle; the top edge starts it:
    of the two long edges (all four when the plate is nearly square), the one whose middle
    is highest. Wide plates tilted by up to 45 degrees (nearly square ones up to about 35)
    keep their top-left corner first whatever order a detector emitted.
    """
    pts = np.asarray(points, np.float32).reshape(-1, 4, 2)
    if not len(pts):
        return pts
    d = pts - pts.mean(axis=1, keepdims=True)
    cyc = np.take_along_axis(pts, np.argsort(np.arctan2(d[..., 1], d[..., 0]), axis=1,
                                             kind="stable")[..., None], axis=1)
    nxt = np.roll(cyc, -1, axis=1)
    length = np.linalg.norm(nxt - cyc, axis=2)                      # edge i: corner i -> i+1
    mid_y = 0.5 * (cyc[..., 1] + nxt[..., 1])
    long_pair = np.where(length[:, [0]] + length[:, [2]] >= length[:, [1]] + length[:, [3]],
                         np.array([[True, False, True, False]]), np.array([[False, True, False, True]]))
    wide = ((length[:, [0]] + length[:, [2]]) / np.maximum(length[:, [1]] + length[:, [3]], 1e-6))
    wide = (wide > 1.3) | (wide < 1 / 1.3)
    candidate = np.where(wide, long_pair, True)
    start = np.where(candidate, mid_y, np.inf).argmin(axis=1)
    order = (start[:, None] + np.arange(4)[None]) % 4
    return np.take_along_axis(cyc, order[..., None], axis=1)


def box_corners(xyxy: np.ndarray) -> np.ndarray:
    """The four corners of axis-aligned boxes."""
    b = np.asarray(xyxy, np.float32).reshape(-1, 4)
    return np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], axis=1)


def edge_lengths(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(width, height) per plate: mean of the top/bottom and of the left/right edges."""
    c = np.asarray(corners, np.float32)
    width = 0.5 * (np.linalg.norm(c[:, 1] - c[:, 0], axis=1) + np.linalg.norm(c[:, 2] - c[:, 3], axis=1))
    height = 0.5 * (np.linalg.norm(c[:, 3] - c[:, 0], axis=1) + np.linalg.norm(c[:, 2] - c[:, 1], axis=1))
    return width, height


def expand(corners: np.ndarray, margin_x: float, margin_y: float) -> np.ndarray:
    """Grow each quadrilateral along its own axes by a fraction of its width/height per side.

    Used before reading: a detector's corners may sit on or inside the outermost
    characters, and a recogniser misses characters cut at the image edge.
    """
    c = np.asarray(corners, np.float32)
    x_axis = 0.5 * ((c[:, 1] - c[:, 0]) + (c[:, 2] - c[:, 3]))   # left -> right
    y_axis = 0.5 * ((c[:, 3] - c[:, 0]) + (c[:, 2] - c[:, 1]))   # top -> bottom
    sx = np.array([-1, 1, 1, -1], np.float32)[None, :, None]
    sy = np.array([-1, -1, 1, 1], np.float32)[None, :, None]
    return c + sx * margin_x * x_axis[:, None] + sy * margin_y * y_axis[:, None]


def estimate_in_box(image: np.ndarray, xyxy: np.ndarray, min_fill: float = 0.45,
                    max_fill: float = 0.98, min_solidity: float = 0.65) -> np.ndarray:
    """Corners of plates found by a box-only detector, estimated from the pixels in the box.

    A plate is a large region of one tone (light plates with dark characters, or the other
    way round). For both tones of Otsu's threshold, the largest region's minimum-area
    rectangle is a candidate if it covers between ``min_fill`` and ``max_fill`` of the box
    and the tone fills at least ``min_solidity`` of it; the most solid candidate wins (a
    plate is its tone but for the characters, a ring of background around it is not),
    rotation included. Without one, the box corners are kept. One small OpenCV
    pass per box (boxes differ in size, so this cannot be one array operation).
    """
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    out = box_corners(boxes)
    h, w = image.shape[:2]
    for i, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(int)):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 - x1 < 8 or y2 - y1 < 4:
            continue
        grey = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
        if grey.std() < 8.0:  # no contrast, nothing to outline
            continue
        _, binary = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        best, best_solidity = None, 0.0
        for tone in (binary, 255 - binary):
            contours, _ = cv2.findContours(tone, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            if not contours:
                continue
            biggest = max(contours, key=cv2.contourArea)
            rect = cv2.minAreaRect(biggest)
            area = rect[1][0] * rect[1][1]
            # Solid: the tone fills most of its outline (a plate with characters on it),
            # unlike a ring of background around the plate.
            inside = np.zeros_like(tone)
            cv2.drawContours(inside, [biggest], -1, 255, -1)
            solidity = np.count_nonzero(tone & inside) / max(area, 1.0)
            if solidity >= max(min_solidity, best_solidity) and \
                    min_fill * tone.size <= area <= max_fill * tone.size:
                best, best_solidity = rect, solidity
        if best is not None:
            out[i] = order_corners(cv2.boxPoints(best) + np.array([x1, y1], np.float32))[0]
    return out
