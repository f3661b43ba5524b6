"""YOLOv8 / YOLO11 detection as exported by Ultralytics.

Raw export: one output [B, 4 + nc, N]; rows 0-3 are box centre and size (cx, cy, w, h) in
input pixels, rows 4.. are per-class scores, already sigmoided. No objectness. Decoding
matches Ultralytics' ``non_max_suppression``: best class per anchor, score strictly above
the threshold, top ``max_candidates`` by score, class-aware NMS, ``max_det`` kept.

End-to-end export (``nms=True``, YOLOv10/YOLO26 style): [B, N, 6] rows of
(x1, y1, x2, y2, score, class), already suppressed.
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


class YoloOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["auto", "raw", "end2end"] = Field(
        "auto", description="Output layout; 'auto' tells them apart by shape.")
    max_candidates: int = Field(
        30000, gt=0, description="Most boxes entering NMS (highest scores first).")


class YoloAdapter(DetectionAdapter):
    family = "yolo"
    options_class = YoloOptions

    def check_outputs(self, outputs: dict[str, TensorSpec]) -> None:
        shape = outputs[self.output_names[0]].shape
        nc = len(self.labels)
        if len(shape) != 3:
            raise ModelContractError(
                f"{self._where()}: YOLO output {self.output_names[0]!r} has shape {shape}, "
                "expected [B, 4+nc, N] or [B, N, 6]")
        fmt = self.options.format
        if fmt == "auto":
            fmt = "end2end" if shape[2] == 6 and shape[1] != 4 + nc else "raw"
        if fmt == "raw" and shape[1] is not None and shape[1] != 4 + nc:
            raise ModelContractError(
                f"{self._where()}: YOLO output has {shape[1]} rows, manifest lists {nc} labels "
                f"(expected 4 + {nc} = {4 + nc})", "fix the labels list in the manifest")
        self.format = fmt

    def decode(self, outputs: list[np.ndarray], geom: Letterbox) -> Detections:
        out = outputs[0]
        if self.format == "end2end":
            return self.finish(out[:, :4], out[:, 4], out[:, 5].astype(np.int32), geom)
        cand, xyxy, scores, class_ids = self.candidates(out, len(self.labels))
        return self.finish(xyxy, scores, class_ids, geom)

    def candidates(self, out: np.ndarray, nc: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Raw [4 + nc + extra, N] output: anchors over the threshold (at most
        ``max_candidates``), their xyxy boxes in input pixels, best scores and classes.
        Rows past ``4 + nc`` (mask coefficients, ...) are left to the caller via ``cand``."""
        scores = out[4:4 + nc]  # (nc, N): reduce over the contiguous class axis
        best = scores.max(axis=0)
        cand = np.flatnonzero(best > self.post.conf_threshold)
        if len(cand) > self.options.max_candidates:
            cand = cand[np.argsort(-best[cand], kind="stable")[: self.options.max_candidates]]
        class_ids = scores[:, cand].argmax(axis=0).astype(np.int32)
        xyxy = xywh_to_xyxy(out[:4, cand].T)
        return cand, xyxy, best[cand], class_ids
