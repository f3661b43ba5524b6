"""Vectorised plane geometry for zones and lines, in image pixels (x right, y down).

Every function takes many points at once as an (n, 2) array and returns one value per
point; there is no Python loop over points.
"""

from __future__ import annotations

import numpy as np


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Whether each point lies inside ``polygon`` (crossing-number / even-odd rule).

    ``points`` is (n, 2), ``polygon`` (m, 3+) vertices in order (closed implicitly).
    Returns bool (n,). Self-intersecting polygons follow the even-odd rule; a point
    exactly on an edge may fall either way (edges are half-open).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros(0, dtype=bool)
    x = pts[:, 0:1]  # (n, 1) against (1, m) edges
    y = pts[:, 1:2]
    x1, y1 = poly[:, 0][None, :], poly[:, 1][None, :]
    nxt = np.roll(poly, -1, axis=0)
    x2, y2 = nxt[:, 0][None, :], nxt[:, 1][None, :]
    straddles = (y1 > y) != (y2 > y)  # the edge spans the point's row (never horizontal)
    dy = np.where(y2 == y1, 1.0, y2 - y1)  # value unused where the edge is horizontal
    x_cross = x1 + (y - y1) * (x2 - x1) / dy
    crossings = np.count_nonzero(straddles & (x < x_cross), axis=1)
    return (crossings % 2) == 1


def signed_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Signed perpendicular distance (pixels) of points from the infinite line start->end.

    Positive on the right-hand side of an observer standing at ``start`` and looking
    towards ``end`` on the displayed image (y down); negative on the left; 0 on the line.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(start, dtype=np.float64)
    d = np.asarray(end, dtype=np.float64) - s
    cross = d[0] * (pts[:, 1] - s[1]) - d[1] * (pts[:, 0] - s[0])
    return cross / float(np.hypot(d[0], d[1]))


def segment_position(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Where each point projects onto the segment: 0 at ``start``, 1 at ``end``.

    A point whose projection falls within the segment has a value in [0, 1]; values
    outside that range lie beside the segment's infinite extension.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(start, dtype=np.float64)
    d = np.asarray(end, dtype=np.float64) - s
    return ((pts - s) @ d) / float(d @ d)


def polygon_area(polygon: np.ndarray) -> float:
    """Absolute area of a simple polygon (shoelace formula)."""
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
