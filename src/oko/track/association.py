"""Pure association functions: IoU, gated linear assignment, OC-SORT's direction cost.

Matrices are (tracks, detections). Boxes are float xyxy; everything is float64 so
that the trackers' Kalman states can be compared without casts.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (len(a), len(b)) of xyxy boxes.

    A lean float64 version of :func:`oko.core.geometry.box_iou` for the trackers' hot
    path (no conversions); pairs of zero-area boxes give 0.
    """
    # Coordinate-major copies: each broadcast below then reads contiguous rows.
    ax1, ay1, ax2, ay2 = a.T.copy()[:, :, None]
    bx1, by1, bx2, by2 = b.T.copy()
    inter = np.minimum(ax2, bx2)
    inter -= np.maximum(ax1, bx1)
    h = np.minimum(ay2, by2)
    h -= np.maximum(ay1, by1)
    np.maximum(inter, 0.0, out=inter)
    np.maximum(h, 0.0, out=h)
    inter *= h
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1)
    union -= inter
    inter /= np.maximum(union, 1e-12, out=union)
    return inter


def one_to_one(rows: np.ndarray, cols: np.ndarray) -> bool:
    """Whether candidate pairs (in ``np.nonzero`` order) use each row and column once."""
    if len(rows) <= 1:
        return True
    # nonzero() lists rows in order, so a repeated row shows up as equal neighbours.
    return bool((rows[1:] != rows[:-1]).all()) and int(np.bincount(cols).max()) == 1


def assign_pairs(rows: np.ndarray, cols: np.ndarray, gain: np.ndarray,
                 shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs to keep so that the total ``gain`` is largest.

    ``rows``, ``cols`` list the allowed pairs of a (tracks, detections) problem of
    ``shape`` and ``gain`` their values (treated as at least a tiny positive value).
    Each row and column is used at most once. When the candidates are already one to
    one, the common case for well separated objects, they are returned as they are and
    the solver is skipped, as in OC-SORT's reference code.
    """
    if one_to_one(rows, cols):
        return rows, cols
    dense = np.zeros(shape)
    dense[rows, cols] = np.maximum(gain, 1e-9)
    r, c = linear_sum_assignment(dense, maximize=True)
    keep = dense[r, c] > 0
    return r[keep], c[keep]


def linear_assignment(score: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (rows, cols) maximising the total ``score`` of the ``allowed`` pairs used;
    disallowed pairs are never returned. See :func:`assign_pairs`."""
    rows, cols = np.nonzero(allowed)
    return assign_pairs(rows, cols, score[rows, cols], score.shape)


def row_directions(src_xyxy: np.ndarray, dst_xyxy: np.ndarray) -> np.ndarray:
    """Unit vectors (n, 2) as (dy, dx) from each source box centre to its own destination
    (zero when the centres coincide)."""
    # Doubled centres: the factor 2 cancels in the normalised direction.
    d = ((dst_xyxy[:, :2] + dst_xyxy[:, 2:]) - (src_xyxy[:, :2] + src_xyxy[:, 2:]))[:, ::-1]
    return d / (np.sqrt((d * d).sum(1)) + 2e-6)[:, None]


def direction_consistency(velocity: np.ndarray, previous_xyxy: np.ndarray,
                          det_xyxy: np.ndarray) -> np.ndarray:
    """OC-SORT's observation-centric momentum term of track-detection pairs, in [-0.5, 0.5].

    Row by row: ``velocity`` (n, 2) is a track's unit motion direction (dy, dx) estimated
    from its own observations (zeros when unknown), ``previous_xyxy`` (n, 4) the
    observation the direction to the detection ``det_xyxy`` (n, 4) is measured from. The
    term is ``(pi/2 - angle) / pi`` for the angle between the two directions, i.e.
    ``arcsin(cos angle) / pi``: 0.5 straight ahead, -0.5 behind, 0 for tracks without a
    direction. For a (tracks, detections) matrix pass the pairs' rows.
    """
    cos = (velocity * row_directions(previous_xyxy, det_xyxy)).sum(1)
    np.clip(cos, -1.0, 1.0, out=cos)
    return np.arcsin(cos) * (1.0 / np.pi)
