"""YuNet (libfacedetection, 2023mar export as in the OpenCV Zoo): faces with 5 landmarks.

Outputs per stride ``s`` (8, 16, 32), one row per cell of the ``H/s x W/s`` grid,
row-major: ``cls_s`` [n, 1] and ``obj_s`` [n, 1] (already sigmoid), ``bbox_s`` [n, 4] and
``kps_s`` [n, 10]. The manifest lists them as all cls, all obj, all bbox, all kps. For the
cell at (col, row), as OpenCV's FaceDetectorYN decodes it:

    score = sqrt(clip(cls, 0, 1) * clip(obj, 0, 1))
    centre = ((col, row) + bbox[0:2]) * s,  size = exp(bbox[2:4]) * s
    landmark k = ((col, row) + kps[2k:2k+2]) * s

Input: BGR, 0-255, no normalisation; any height/width that is a multiple of 32.
"""

from __future__ import annotations

import numpy as np

from oko.core.detections import Detections
from oko.core.errors import ModelContractError
from oko.core.geometry import Letterbox
from oko.engines.base import TensorSpec
from oko.faces.face_adapter import FaceDetectionAdapter, FaceInputGeometry, grid_points


class YuNetAdapter(FaceDetectionAdapter):
    family = "yunet"

    def check_outputs(self, outputs: dict[str, TensorSpec]) -> None:
        n = len(self.options.strides)
        if len(self.output_names) != 4 * n:
            raise ModelContractError(
                f"{self._where()}: YuNet needs 4 outputs per stride (cls, obj, bbox, kps) for "
                f"strides {list(self.options.strides)}, model has {len(self.output_names)}",
                "list them in the manifest's outputs: all cls, all obj, all bbox, all kps")
        widths = [1] * n + [1] * n + [4] * n + [10] * n
        for name, cols in zip(self.output_names, widths, strict=True):
            shape = outputs[name].shape
            if len(shape) != 3 or shape[2] not in (None, cols):
                raise ModelContractError(
                    f"{self._where()}: output {name!r} has shape {shape}, expected [1, cells, "
                    f"{cols}]")
        self._grids: dict[tuple[int, int], list[np.ndarray]] = {}

    def _grid(self, width: int, height: int) -> list[np.ndarray]:
        key = (width, height)
        if key not in self._grids:
            self._grids[key] = [grid_points(width, height, s, 0.0) for s in self.options.strides]
        return self._grids[key]

    def decode(self, outputs: list[np.ndarray], geom: Letterbox) -> Detections:
        assert isinstance(geom, FaceInputGeometry)
        n = len(self.options.strides)
        threshold = self.post.conf_threshold
        grids = self._grid(geom.input_width, geom.input_height)
        boxes, scores, marks = [], [], []
        for level, stride in enumerate(self.options.strides):
            cls, obj, bbox, kps = (outputs[level + k * n] for k in range(4))
            score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
            rows = np.flatnonzero(score > threshold)  # the few candidate cells only
            cells = grids[level][rows]
            centre = (cells + bbox[rows, :2]) * stride
            half = np.exp(bbox[rows, 2:4]) * (stride / 2)
            boxes.append(np.concatenate([centre - half, centre + half], axis=1))
            marks.append((kps[rows].reshape(-1, 5, 2) + cells[:, None, :]) * stride)
            scores.append(score[rows])
        return self.faces(np.concatenate(boxes), np.concatenate(scores),
                          np.concatenate(marks), geom)
