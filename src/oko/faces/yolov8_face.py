"""YOLOv8-face (Ultralytics pose head with 5 keypoints, e.g. derronqi/yolov8-face exports).

One output ``[batch, 5 + 5 * d, anchors]`` (Ultralytics' channel-first layout; the
transposed ``[batch, anchors, 5 + 5 * d]`` is read too): ``cx, cy, w, h`` in input pixels,
the face score (already sigmoid), then per keypoint ``x, y`` in input pixels and, when
``d == 3``, a visibility score. Input: RGB / 255, centred letterbox padded with 114.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from oko.core.detections import Detections
from oko.core.errors import ModelContractError
from oko.core.geometry import Letterbox
from oko.engines.base import TensorSpec
from oko.faces.face_adapter import FaceDecodeOptions, FaceDetectionAdapter


class YoloFaceOptions(FaceDecodeOptions):
    placement: Literal["top_left", "center"] = Field(
        "center", description="Ultralytics letterboxes centred.")
    upscale: bool = Field(True, description="Ultralytics resizes every frame to fit.")


class YoloV8FaceAdapter(FaceDetectionAdapter):
    family = "yolov8-face"
    options_class = YoloFaceOptions

    def check_outputs(self, outputs: dict[str, TensorSpec]) -> None:
        if len(self.output_names) != 1:
            raise ModelContractError(
                f"{self._where()}: YOLOv8-face has one output, model has "
                f"{len(self.output_names)}", "name it in the manifest's outputs")
        shape = outputs[self.output_names[0]].shape
        widths = (15, 20)  # 5 keypoints of (x, y) or (x, y, visibility)
        if len(shape) != 3 or not ({shape[1], shape[2]} & set(widths)):
            raise ModelContractError(
                f"{self._where()}: output {self.output_names[0]!r} has shape {shape}, expected "
                "[batch, 20, anchors] (or 15 channels without keypoint visibility)")
        # Channel-first unless the last axis is the one with 15/20 entries and the other is not.
        self._channels_last = shape[2] in widths and shape[1] not in widths

    def decode(self, outputs: list[np.ndarray], geom: Letterbox) -> Detections:
        pred = outputs[0] if self._channels_last else outputs[0].T  # (anchors, channels)
        rows = np.flatnonzero(pred[:, 4] > self.post.conf_threshold)
        pred = pred[rows]
        half = pred[:, 2:4] / 2
        boxes = np.concatenate([pred[:, :2] - half, pred[:, :2] + half], axis=1)
        dims = (pred.shape[1] - 5) // 5
        marks = pred[:, 5:].reshape(-1, 5, dims)[:, :, :2]
        return self.faces(boxes, pred[:, 4], marks, geom)
