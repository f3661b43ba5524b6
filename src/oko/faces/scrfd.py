"""SCRFD (InsightFace) ONNX exports: faces with 5 keypoints.

Outputs, in the order InsightFace's exporter writes them: scores for each stride, then box
distances for each stride, then keypoint offsets for each stride (``[n, 1]``, ``[n, 4]``,
``[n, 10]``; with or without a leading batch axis). Each cell of a level has
``anchors_per_cell`` anchors (2 in the released models), all at the cell's corner
``(col, row) * s`` (no half-cell offset). For an anchor at ``(x, y)``:

    box = (x - d0 * s, y - d1 * s, x + d2 * s, y + d3 * s)
    keypoint k = (x + kps[2k] * s, y + kps[2k+1] * s)

Scores are already sigmoid. Input: RGB, ``(pixel - 127.5) / 128``, the frame resized to
fit and placed top-left (InsightFace pads bottom/right).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from oko.core.detections import Detections
from oko.core.errors import ModelContractError
from oko.core.geometry import Letterbox
from oko.engines.base import TensorSpec
from oko.faces.face_adapter import (
    FaceDecodeOptions,
    FaceDetectionAdapter,
    FaceInputGeometry,
    grid_points,
)


class ScrfdOptions(FaceDecodeOptions):
    anchors_per_cell: int = Field(2, ge=1, description="Anchors at each cell (2 for SCRFD).")
    upscale: bool = Field(True, description="InsightFace resizes every frame to fit the input.")


class ScrfdAdapter(FaceDetectionAdapter):
    family = "scrfd"
    options_class = ScrfdOptions

    def check_outputs(self, outputs: dict[str, TensorSpec]) -> None:
        n = len(self.options.strides)
        if len(self.output_names) != 3 * n:
            raise ModelContractError(
                f"{self._where()}: SCRFD with keypoints has 3 outputs per stride (scores, "
                f"boxes, keypoints), model has {len(self.output_names)} for strides "
                f"{list(self.options.strides)}", "SCRFD exports without keypoints cannot "
                "align faces; list the outputs in the manifest's outputs if their order differs")
        widths = [1] * n + [4] * n + [10] * n
        for name, cols in zip(self.output_names, widths, strict=True):
            shape = outputs[name].shape
            if len(shape) not in (2, 3) or shape[-1] not in (None, cols):
                raise ModelContractError(
                    f"{self._where()}: output {name!r} has shape {shape}, expected [n, {cols}] "
                    f"or [batch, n, {cols}]")
        self._has_batch = len(outputs[self.output_names[0]].shape) == 3
        self._grids: dict[tuple[int, int], list[np.ndarray]] = {}

    def _batched(self, output: np.ndarray) -> bool:
        return self._has_batch

    def _grid(self, width: int, height: int) -> list[np.ndarray]:
        key = (width, height)
        if key not in self._grids:
            self._grids[key] = [grid_points(width, height, s, 0.0, self.options.anchors_per_cell)
                                * s for s in self.options.strides]
        return self._grids[key]

    def decode(self, outputs: list[np.ndarray], geom: Letterbox) -> Detections:
        assert isinstance(geom, FaceInputGeometry)
        n = len(self.options.strides)
        grids = self._grid(geom.input_width, geom.input_height)
        boxes, scores, marks = [], [], []
        for level, stride in enumerate(self.options.strides):
            score, dist, kps = outputs[level][:, 0], outputs[level + n], outputs[level + 2 * n]
            if len(score) != len(grids[level]):
                raise ModelContractError(
                    f"{self._where()}: stride {stride} output has {len(score)} anchors, a "
                    f"{geom.input_width}x{geom.input_height} input gives {len(grids[level])}",
                    "check decode.strides and decode.anchors_per_cell")
            rows = np.flatnonzero(score > self.post.conf_threshold)
            at = grids[level][rows]
            d = dist[rows] * stride
            boxes.append(np.concatenate([at - d[:, :2], at + d[:, 2:]], axis=1))
            marks.append(kps[rows].reshape(-1, 5, 2) * stride + at[:, None, :])
            scores.append(score[rows])
        return self.faces(np.concatenate(boxes), np.concatenate(scores),
                          np.concatenate(marks), geom)
