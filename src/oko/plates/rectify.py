"""Rectification: perspective-warp each plate's four corners to an upright image.

All plates of one frame are warped in a single ``cv2.remap``: the sampling grid of every
plate is computed at once from batched homographies (numpy), stacked, and looked up in one
pass. One-line plates become ``height`` pixels tall and as wide as their own aspect ratio
says (within limits), so a 2:1 US plate is not stretched like a 4.6:1 Russian one;
two-line plates become a fixed ``two_line_size`` image whose lines are then cut apart and
put side by side for a one-line recogniser.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def homographies(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(n, 3, 3) matrices H with ``H @ [src, 1] ~ [dst, 1]``, from 4 point pairs each."""
    src = np.asarray(src, np.float64).reshape(-1, 4, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 4, 2)
    n = len(src)
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zero, one = np.zeros_like(x), np.ones_like(x)
    rows_u = np.stack([x, y, one, zero, zero, zero, -u * x, -u * y], axis=-1)
    rows_v = np.stack([zero, zero, zero, x, y, one, -v * x, -v * y], axis=-1)
    a = np.concatenate([rows_u, rows_v], axis=1)                 # (n, 8, 8)
    b = np.concatenate([u, v], axis=1)[..., None]                # (n, 8, 1)
    h = np.linalg.solve(a, b)[..., 0]
    return np.concatenate([h, np.ones((n, 1))], axis=1).reshape(n, 3, 3)


def warp(image: np.ndarray, corners: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    """Warp quadrilaterals (n, 4, 2; TL, TR, BR, BL) to upright images of ``sizes`` (n, 2)
    as (width, height), in one remap. Pixels outside the frame repeat its border."""
    corners = np.asarray(corners, np.float64).reshape(-1, 4, 2)
    sizes = np.asarray(sizes, np.int64).reshape(-1, 2)
    n = len(corners)
    if n == 0:
        return []
    wmax, hmax = int(sizes[:, 0].max()), int(sizes[:, 1].max())
    w, h = sizes[:, 0].astype(np.float64), sizes[:, 1].astype(np.float64)
    rect = np.stack([np.zeros(n), np.zeros(n), w, np.zeros(n), w, h, np.zeros(n), h],
                    axis=1).reshape(n, 4, 2)
    back = homographies(rect, corners)                            # output -> frame
    # Pixel centres of every output image (continuous coordinates), all plates at once.
    gu, gv = np.meshgrid(np.arange(wmax) + 0.5, np.arange(hmax) + 0.5)
    grid = np.stack([gu, gv, np.ones_like(gu)], axis=-1).reshape(-1, 3)      # (P, 3)
    src = np.einsum("nij,pj->npi", back, grid)                    # (n, P, 3)
    xy = src[..., :2] / src[..., 2:3] - 0.5                       # to remap's pixel indices
    map_x = xy[..., 0].reshape(n * hmax, wmax).astype(np.float32)
    map_y = xy[..., 1].reshape(n * hmax, wmax).astype(np.float32)
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = out.reshape(n, hmax, wmax, *image.shape[2:])
    return [out[i, : sizes[i, 1], : sizes[i, 0]] for i in range(n)]


def one_line_sizes(aspect: np.ndarray, height: int, min_aspect: float = 2.0,
                   max_aspect: float = 7.0) -> np.ndarray:
    """(n, 2) output sizes: ``height`` tall, width from each plate's aspect ratio."""
    a = np.clip(np.asarray(aspect, np.float64), min_aspect, max_aspect)
    return np.stack([np.round(a * height).astype(np.int64),
                     np.full(len(a), height, np.int64)], axis=1)


def split_lines(plates: Sequence[np.ndarray], band: tuple[float, float] = (0.3, 0.7)
                ) -> np.ndarray:
    """Row where each two-line plate (all of one size) divides into its lines.

    The gap between the lines is the row, inside ``band`` of the height, whose pixels vary
    least across the plate (plain background, no character strokes); rows are smoothed
    over three pixels first. Vectorised over the batch.
    """
    stack = np.stack([cv2.cvtColor(p, cv2.COLOR_BGR2GRAY) if p.ndim == 3 else p
                      for p in plates]).astype(np.float32)        # (n, H, W)
    spread = stack.std(axis=2)                                    # (n, H)
    smooth = (spread[:, :-2] + spread[:, 1:-1] + spread[:, 2:]) / 3.0
    h = stack.shape[1]
    lo, hi = int(band[0] * h), int(band[1] * h)
    return lo + smooth[:, lo - 1: hi - 1].argmin(axis=1)


def side_by_side(plate: np.ndarray, row: int, line_height: int, gap: int = 8) -> np.ndarray:
    """A two-line plate as one text line: top line, a gap of background, bottom line."""
    top, bottom = plate[:row], plate[row:]
    parts = []
    for part in (top, bottom):
        ph, pw = part.shape[:2]
        parts.append(cv2.resize(part, (max(1, round(pw * line_height / max(ph, 1))), line_height),
                                interpolation=cv2.INTER_LINEAR))
    fill = np.median(plate.reshape(-1, plate.shape[-1]), axis=0).astype(np.uint8)
    spacer = np.broadcast_to(fill, (line_height, gap, plate.shape[-1]))
    return np.concatenate([parts[0], spacer, parts[1]], axis=1)
