"""NanoDet (GFL head) detection.

Per anchor point the model gives class scores and, for each box side (left, top, right,
bottom), a distribution over ``reg_max + 1`` integer distances in stride units. The
distance is the distribution's expectation (softmax, then the mean bin) times the stride.
Anchors are the cell centres ``(col + 0.5, row + 0.5) * stride`` of each level, in the
order of ``strides``, row-major.

Two export layouts are read:
- one output [B, N, nc + 4 * (reg_max + 1)] (nanodet-plus and most exports), or
- per level pairs: ``cls`` [B, n_l, nc] and ``reg`` [B, n_l, 4 * (reg_max + 1)] for each
  stride; the manifest's ``outputs`` lists all class outputs then all box outputs in
  stride order (the bundled human-models conversion).
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


class NanoDetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    strides: tuple[int, ...] = Field((8, 16, 32), description="Feature level strides, in order.")
    reg_max: int = Field(7, ge=1, description="Largest distance bin (bins = reg_max + 1).")
    score_activation: Literal["none", "sigmoid"] = Field(
        "none", description="'none' when the export already applies the sigmoid.")


def anchor_centres(width: int, height: int, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres (N, 2) in input pixels and the stride (N,) of each, level by level."""
    centres, level_strides = [], []
    for s in strides:
        rows, cols = -(-height // s), -(-width // s)  # ceil: partial cells count
        ys, xs = np.mgrid[0:rows, 0:cols]
        centres.append(np.stack([(xs.ravel() + 0.5) * s, (ys.ravel() + 0.5) * s], axis=1))
        level_strides.append(np.full(rows * cols, s, np.float32))
    return np.concatenate(centres).astype(np.float32), np.concatenate(level_strides)


class NanoDetAdapter(DetectionAdapter):
    family = "nanodet"
    options_class = NanoDetOptions

    def check_outputs(self, outputs: dict[str, TensorSpec]) -> None:
        opts = self.options
        spec = self.manifest.input
        self.centres, self.strides = anchor_centres(spec.width, spec.height, opts.strides)
        self.bins = opts.reg_max + 1
        nc, n = len(self.labels), len(self.centres)
        shapes = [outputs[name].shape for name in self.output_names]
        if len(shapes) == 1:
            want = [(n, nc + 4 * self.bins)]
        elif len(shapes) == 2 * len(opts.strides):
            per_level = [len(self.strides[self.strides == s]) for s in opts.strides]
            want = [(k, nc) for k in per_level] + [(k, 4 * self.bins) for k in per_level]
        else:
            raise ModelContractError(
                f"{self._where()}: NanoDet needs 1 output or {2 * len(opts.strides)} "
                f"(class and box per stride), model has {len(shapes)}",
                "list them in the manifest's outputs")
        for name, shape, (rows, cols) in zip(self.output_names, shapes, want, strict=True):
            if len(shape) != 3 or shape[1] not in (None, rows) or shape[2] not in (None, cols):
                raise ModelContractError(
                    f"{self._where()}: output {name!r} has shape {shape}, expected "
                    f"[B, {rows}, {cols}] for {nc} labels, reg_max {opts.reg_max}, "
                    f"strides {list(opts.strides)}")

    def decode(self, outputs: list[np.ndarray], geom: Letterbox) -> Detections:
        nc = len(self.labels)
        if len(outputs) == 1:
            levels = [(outputs[0][:, :nc], outputs[0][:, nc:])]
        else:
            half = len(outputs) // 2
            levels = list(zip(outputs[:half], outputs[half:], strict=True))
        threshold = self.post.conf_threshold
        if self.options.score_activation == "sigmoid":  # compare logits: no exp on every cell
            threshold = float(np.log(threshold / (1 - threshold))) if 0 < threshold < 1 else (
                -np.inf if threshold <= 0 else np.inf)
        # Only cells with some class above the threshold go further ("any" is a cheap
        # reduction; a row-wise max over all cells costs several times more).
        cand, scores, reg, start = [], [], [], 0
        for cls, box in levels:
            rows = np.flatnonzero((cls > threshold).any(axis=1))
            cand.append(rows + start)
            scores.append(cls[rows])
            reg.append(box[rows])
            start += len(cls)
        cand, scores, reg = np.concatenate(cand), np.concatenate(scores), np.concatenate(reg)
        if self.options.score_activation == "sigmoid":
            scores = 1.0 / (1.0 + np.exp(-scores))
        class_ids = scores.argmax(axis=1).astype(np.int32)
        best = scores[np.arange(len(cand)), class_ids]
        # Distribution focal loss: expected bin of a softmax per side, in stride units.
        logits = reg.reshape(-1, 4, self.bins)
        prob = np.exp(logits - logits.max(axis=2, keepdims=True))
        dist = (prob @ np.arange(self.bins, dtype=np.float32)) / prob.sum(axis=2)
        dist *= self.strides[cand, None]
        c = self.centres[cand]
        xyxy = np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1)
        return self.finish(xyxy, best, class_ids, geom)
