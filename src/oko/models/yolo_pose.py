"""YOLOv8 / YOLO11 pose models as exported by Ultralytics (``task=pose``), any keypoint count.

Plate detectors with four corner keypoints are the design most often ported to Sophon
boxes; face detectors with five landmarks have the same head.

Raw export: one output [B, 4 + nc + K*D, N]: box centre and size (cx, cy, w, h) in input
pixels, nc class scores (sigmoided), then K keypoints of D values each (x, y in input
pixels, and a sigmoided visibility when D = 3). End-to-end export (``nms=True``):
[B, N, 6 + K*D] rows of (x1, y1, x2, y2, score, class, keypoints...), already suppressed.
Keypoints come out as Detections.keypoints (n, K, D) in source pixels.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.core.detections import Detections
from oko.core.errors import ModelContractError
from oko.core.geometry import Letterbox, xywh_to_xyxy
from oko.engines.base import TensorSpec
from oko.models.adapter import DetectionAdapter


class YoloPoseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    keypoints: int = Field(4, gt=0, description="Keypoints per object (K; 4 plate corners).")
    keypoint_dims: Literal[2, 3] = Field(3, description="Values per keypoint: x, y[, visibility].")
    format: Literal["auto", "raw", "end2end"] = Field(
        "auto", description="Output layout; 'auto' tells them apart by shape.")
    max_candidates: int = Field(30000, gt=0, description="Most boxes entering NMS.")


class YoloPoseAdapter(DetectionAdapter):
    family = "yolo_pose"
    options_class = YoloPoseOptions

    def check_outputs(self, outputs: dict[str, TensorSpec]) -> None:
        shape = outputs[self.output_names[0]].shape
        nc, kd = len(self.labels), self.options.keypoints * self.options.keypoint_dims
        if len(shape) != 3:
            raise ModelContractError(
                f"{self._where()}: YOLO pose output has shape {shape}, expected "
                f"[B, 4+nc+K*D, N] or [B, N, 6+K*D]")
        fmt = self.options.format
        if fmt == "auto":
            fmt = "end2end" if shape[2] == 6 + kd and shape[1] != 4 + nc + kd else "raw"
        rows = shape[1] if fmt == "raw" else shape[2]
        want = 4 + nc + kd if fmt == "raw" else 6 + kd
        if rows is not None and rows != want:
            raise ModelContractError(
                f"{self._where()}: YOLO pose output has {rows} values per object, the manifest "
                f"({nc} labels, {self.options.keypoints} keypoints x "
                f"{self.options.keypoint_dims}) gives {want}",
                "fix labels or decode.keypoints/keypoint_dims in the manifest")
        self.format = fmt

    def decode(self, outputs: list[np.ndarray], geom: Letterbox) -> Detections:
        out = outputs[0]
        k, d = self.options.keypoints, self.options.keypoint_dims
        if self.format == "end2end":
            kpts = out[:, 6:].reshape(-1, k, d)
            return self.finish(out[:, :4], out[:, 4], out[:, 5].astype(np.int32), geom, kpts)
        nc = len(self.labels)
        scores = out[4:4 + nc]
        best = scores.max(axis=0)
        cand = np.flatnonzero(best > self.post.conf_threshold)
        if len(cand) > self.options.max_candidates:
            cand = cand[np.argsort(-best[cand], kind="stable")[: self.options.max_candidates]]
        class_ids = scores[:, cand].argmax(axis=0).astype(np.int32)
        xyxy = xywh_to_xyxy(out[:4, cand].T)
        kpts = out[4 + nc:, cand].T.reshape(-1, k, d)
        return self.finish(xyxy, best[cand], class_ids, geom, kpts)
