"""CenterNet detection (objects as points).

Two export layouts are read:
- ``decoded``: the graph ends in its own peak picking and top-K, one output [B, K, 6] of
  (x1, y1, x2, y2, score, class) in input pixels (the bundled MobileNetV3 CenterNet);
- ``heads``: the raw heads as most exports give them: a class heat map [B, C, H, W]
  (or NHWC), box size [B, 2, H, W] and centre offset [B, 2, H, W] at ``output_stride``.
  Peaks are 3x3 local maxima of the heat map (the max-pool NMS of the paper), top
  ``max_candidates`` of them are kept; then thresholds and class-aware NMS as every family.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.core.detections import Detections
from oko.core.errors import ModelContractError
from oko.core.geometry import Letterbox
from oko.engines.base import TensorSpec
from oko.models.adapter import DetectionAdapter


class CenterNetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["decoded", "heads"] = Field(
        "decoded", description="'decoded': [B, K, 6] output; 'heads': heat map, size, offset.")
    heads_layout: Literal["NCHW", "NHWC"] = Field("NCHW", description="Layout of raw heads.")
    output_stride: int = Field(4, ge=1, description="Input pixels per heat-map cell.")
    heatmap_activation: Literal["none", "sigmoid"] = Field(
        "sigmoid", description="Activation still to apply to the raw heat map.")
    max_candidates: int = Field(100, gt=0, description="Peaks kept before thresholds (top-K).")


def local_maxima(heat: np.ndarray) -> np.ndarray:
    """Boolean (C, H, W): cells equal to the maximum of their 3x3 neighbourhood."""
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    h, w = heat.shape[1:]
    neighbourhood = padded[:, 0:h, 0:w]
    for dy in range(3):
        for dx in range(3):
            if dy or dx:
                neighbourhood = np.maximum(neighbourhood, padded[:, dy:dy + h, dx:dx + w])
    return heat >= neighbourhood


class CenterNetAdapter(DetectionAdapter):
    family = "centernet"
    options_class = CenterNetOptions

    def check_outputs(self, outputs: dict[str, TensorSpec]) -> None:
        shapes = [outputs[name].shape for name in self.output_names]
        if self.options.format == "decoded":
            if len(shapes[0]) != 3 or shapes[0][2] not in (None, 6):
                raise ModelContractError(
                    f"{self._where()}: CenterNet 'decoded' output {self.output_names[0]!r} has "
                    f"shape {shapes[0]}, expected [B, K, 6]")
            self.output_names = self.output_names[:1]
            return
        if len(shapes) < 3:
            raise ModelContractError(
                f"{self._where()}: CenterNet 'heads' needs heat map, size and offset outputs, "
                f"model has {len(shapes)}", "list them in that order in the manifest's outputs")
        self.output_names = self.output_names[:3]
        channel_axis = 1 if self.options.heads_layout == "NCHW" else 3
        nc = len(self.labels)
        got = shapes[0][channel_axis] if len(shapes[0]) == 4 else None
        if got is not None and got != nc:
            raise ModelContractError(
                f"{self._where()}: heat map has {got} classes, manifest lists {nc} labels")

    def decode(self, outputs: list[np.ndarray], geom: Letterbox) -> Detections:
        if self.options.format == "decoded":
            out = outputs[0]
            return self.finish(out[:, :4], out[:, 4], out[:, 5].astype(np.int32), geom)
        heat, size, offset = outputs
        if self.options.heads_layout == "NHWC":
            heat, size, offset = (a.transpose(2, 0, 1) for a in (heat, size, offset))
        if self.options.heatmap_activation == "sigmoid":
            heat = 1.0 / (1.0 + np.exp(-heat))
        peaks = np.where(local_maxima(heat), heat, 0.0).ravel()
        k = min(self.options.max_candidates, peaks.size)
        top = np.argpartition(-peaks, k - 1)[:k]
        cls, rem = np.divmod(top, heat.shape[1] * heat.shape[2])
        ys, xs = np.divmod(rem, heat.shape[2])
        cx = (xs + offset[0, ys, xs]) * self.options.output_stride
        cy = (ys + offset[1, ys, xs]) * self.options.output_stride
        half_w = size[0, ys, xs] * self.options.output_stride / 2
        half_h = size[1, ys, xs] * self.options.output_stride / 2
        xyxy = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        return self.finish(xyxy.astype(np.float32), peaks[top].astype(np.float32),
                           cls.astype(np.int32), geom)
