"""Ground-plane calibration: image pixels to metres on the road, from four points.

The user gives four image points and where they lie on the road in metres (a local
frame: e.g. the corners of a lane segment, 3.5 m wide and 12 m long, as
``[[0, 0], [3.5, 0], [3.5, 12], [0, 12]]``). The homography between the two maps any
image point on the road plane to metres, so a defect polygon gets its real area. It is
only right on the road plane and gets coarse far away, where one pixel spans metres.

Three of the four points on one line (in the image or on the ground) leave the
homography undefined: that is refused with the points named.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from oko.core.errors import ConfigError


def _collinear_triple(points: np.ndarray, tolerance: float) -> tuple[int, int, int] | None:
    """Indices of three points spanning a triangle smaller than ``tolerance`` x the
    squared extent of all points (scale-free), or None."""
    extent = float(np.ptp(points, axis=0).max()) or 1.0
    for i, j, k in combinations(range(len(points)), 3):
        a, b, c = points[i], points[j], points[k]
        area = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) / 2
        if area < tolerance * extent * extent:
            return i, j, k
    return None


class GroundCalibration(BaseModel):
    """Four image points (frame pixels) and their road positions (metres)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    image: list[tuple[float, float]] = Field(min_length=4, max_length=4)
    ground: list[tuple[float, float]] = Field(min_length=4, max_length=4)

    @model_validator(mode="after")
    def _not_collinear(self) -> GroundCalibration:
        for name, pts in (("image", self.image), ("ground", self.ground)):
            bad = _collinear_triple(np.asarray(pts, np.float64), 1e-3)
            if bad is not None:
                raise ValueError(
                    f"calibration {name} points {[list(pts[i]) for i in bad]} lie on one "
                    "line; give four points with no three in a line (e.g. the corners of "
                    "a lane segment)")
        return self


class GroundPlane:
    def __init__(self, calibration: GroundCalibration) -> None:
        self.calibration = calibration
        self.matrix = cv2.getPerspectiveTransform(
            np.asarray(calibration.image, np.float32), np.asarray(calibration.ground, np.float32))

    @classmethod
    def from_points(cls, image: Sequence[Sequence[float]], ground: Sequence[Sequence[float]]
                    ) -> GroundPlane:
        try:
            return cls(GroundCalibration(image=image, ground=ground))  # type: ignore[arg-type]
        except ValidationError as exc:
            raise ConfigError("; ".join(str(e["msg"]).removeprefix("Value error, ")
                                        for e in exc.errors())) from exc

    def to_ground(self, points: np.ndarray) -> np.ndarray:
        """(n, 2) image points -> (n, 2) metres on the road plane."""
        pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(pts, self.matrix).reshape(-1, 2)

    def area_m2(self, polygon: np.ndarray) -> float:
        """Area in square metres of an image polygon lying on the road (shoelace)."""
        g = self.to_ground(polygon)
        if len(g) < 3:
            return 0.0
        x, y = g[:, 0], g[:, 1]
        return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)

    def length_m(self, polyline: np.ndarray) -> float:
        g = self.to_ground(polyline)
        return float(np.linalg.norm(np.diff(g, axis=0), axis=1).sum())
