"""YOLOv8-seg / YOLO11-seg instance segmentation as exported by Ultralytics (``task=segment``).

Raw export, two outputs:

- ``output0`` [B, 4 + nc + nm, N]: box centre and size in input pixels, nc sigmoided class
  scores, then nm (32) mask coefficients per anchor;
- ``output1`` [B, nm, H/4, W/4]: mask prototypes.

Boxes, scores and classes come from the detection decoder (:class:`YoloAdapter`: same
candidates, class-aware NMS and cap). Masks follow Ultralytics' ``retina_masks=True`` path
(``process_mask_native``), vectorised over the instances:

1. logits = coefficients (n, nm) @ prototypes (nm, h*w): one matrix product;
2. one bilinear resampling of all n logit maps straight from prototype resolution to the
   original frame (the letterbox undone in the same affine map; sample positions clamped to
   the letterbox content, as Ultralytics crops the padding before it resizes);
3. threshold at logit 0 (i.e. sigmoid > 0.5; the sigmoid itself is never computed);
4. crop to the box in frame pixels (column c kept when x1 <= c < x2, rows likewise), *after*
   the resize as Ultralytics does (cropping at prototype resolution first smears the bilinear
   edge outside the box).

Instances whose mask ends up empty are dropped, as Ultralytics' segment predictor does
(``drop_empty``). ``Detections.mask`` is bool (n, frame height, frame width).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.core.detections import Detections
from oko.core.errors import ModelContractError
from oko.core.geometry import Letterbox
from oko.engines.base import TensorSpec
from oko.models.yolo import YoloAdapter

# Instances per cv2.resize call (channels; OpenCV allows up to 512) and the float
# pixels one call may produce (64 MB), so that memory stays bounded on large frames.
_CHUNK = 256
_PIXEL_BUDGET = 16_000_000


def _resize(maps: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear, half-pixel centres (= torch interpolate, align_corners=False); HWC."""
    if maps.shape[2] > _CHUNK:
        return np.concatenate([_resize(np.ascontiguousarray(maps[..., i:i + _CHUNK]), width,
                                       height) for i in range(0, maps.shape[2], _CHUNK)], axis=2)
    up = cv2.resize(maps, (width, height), interpolation=cv2.INTER_LINEAR)
    return up[..., None] if up.ndim == 2 else up


def _upsample_factor(geom: Letterbox, sx: float, sy: float) -> int:
    """Smallest f in (1, 2, 4) with the padding and content a whole number of pixels at
    prototype resolution x f (Ultralytics' process_mask_native rule)."""
    edges = (geom.pad_x / sx, geom.pad_y / sy,
             (geom.pad_x + geom.src_width * geom.scale_x) / sx,
             (geom.pad_y + geom.src_height * geom.scale_y) / sy)
    for f in (1, 2, 4):
        if all(abs(e * f - round(e * f)) < 1e-6 for e in edges):
            return f
    return 4


class YoloSegOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["raw"] = Field("raw", description="Only the raw two-output export.")
    max_candidates: int = Field(30000, gt=0, description="Most boxes entering NMS.")
    drop_empty: bool = Field(
        True, description="Drop instances whose mask is empty (as Ultralytics does).")


class YoloSegAdapter(YoloAdapter):
    family = "yolo_seg"
    options_class = YoloSegOptions

    def _match_outputs(self, outputs):  # noqa: ANN001, ANN202
        names = super()._match_outputs(outputs)
        if self.manifest.outputs is None and len(names) == 2:
            # Ultralytics names them output0 (detections) and output1 (prototypes); order
            # by rank so that a renamed export still works: 3-D first, 4-D second.
            ranks = {o.name: len(o.shape) for o in outputs}
            names = sorted(names, key=lambda n: ranks[n])
        return names

    def check_outputs(self, outputs: dict[str, TensorSpec]) -> None:
        if len(self.output_names) != 2:
            raise ModelContractError(
                f"{self._where()}: YOLO-seg needs 2 outputs (detections, prototypes), "
                f"model has {self.output_names}", "list them in manifest outputs")
        det = outputs[self.output_names[0]].shape
        proto = outputs[self.output_names[1]].shape
        nc = len(self.labels)
        if len(det) != 3 or len(proto) != 4:
            raise ModelContractError(
                f"{self._where()}: YOLO-seg outputs have shapes {det} and {proto}, expected "
                "[B, 4+nc+nm, N] and [B, nm, H/4, W/4]")
        nm = proto[1]
        if nm is not None and det[1] is not None and det[1] != 4 + nc + nm:
            raise ModelContractError(
                f"{self._where()}: YOLO-seg output has {det[1]} rows, expected 4 + {nc} labels "
                f"+ {nm} mask coefficients = {4 + nc + nm}", "fix the labels list in the manifest")
        self.format = "raw"

    def decode(self, outputs: list[np.ndarray], geom: Letterbox) -> Detections:
        out, protos = outputs
        nc = len(self.labels)
        cand, xyxy, scores, class_ids = self.candidates(out, nc)
        kept = self.select(xyxy, scores, class_ids)
        boxes = geom.boxes_to_source(xyxy[kept])
        coeffs = out[4 + nc:, cand[kept]].T  # (n, nm)
        masks = self.masks(coeffs, protos, boxes, geom)
        dets = Detections(xyxy=boxes, confidence=scores[kept], class_id=class_ids[kept],
                          mask=masks)
        if self.options.drop_empty and len(dets):
            nonempty = masks.any(axis=(1, 2))
            if not nonempty.all():
                dets = dets[nonempty]
        return dets

    def masks(self, coeffs: np.ndarray, protos: np.ndarray, boxes: np.ndarray,
              geom: Letterbox) -> np.ndarray:
        """Bool (n, src_height, src_width) masks from coefficients and prototypes."""
        height, width = geom.src_height, geom.src_width
        n = len(coeffs)
        if n == 0:
            return np.zeros((0, height, width), dtype=bool)
        nm, mh, mw = protos.shape
        logits = coeffs.astype(np.float32) @ protos.reshape(nm, -1).astype(np.float32)
        # HWC with the instances as channels: cv2.resize does them all in one call.
        maps = np.ascontiguousarray(logits.reshape(n, mh, mw).transpose(1, 2, 0))
        # Input pixels per prototype pixel (4 for Ultralytics' heads). When the letterbox
        # padding is not a whole number of prototype pixels, upsample by the smallest
        # factor f (2 or 4) that makes it one, as Ultralytics does.
        sx, sy = self.manifest.input.width / mw, self.manifest.input.height / mh
        f = _upsample_factor(geom, sx, sy)
        if f > 1:
            maps = _resize(maps, mw * f, mh * f)
            sx, sy = sx / f, sy / f
        # Crop the letterbox content (whole pixels now), then one resize to the frame.
        x0, y0 = round(geom.pad_x / sx), round(geom.pad_y / sy)
        x1 = x0 + round(width * geom.scale_x / sx)
        y1 = y0 + round(height * geom.scale_y / sy)
        maps = maps[y0:y1, x0:x1]
        out = np.empty((n, height, width), dtype=bool)
        step = max(1, min(_CHUNK, _PIXEL_BUDGET // (height * width)))
        for i in range(0, n, step):
            up = _resize(np.ascontiguousarray(maps[..., i:i + step]), width, height)
            out[i:i + step] = (up > 0).transpose(2, 0, 1)  # logit > 0 <=> sigmoid > 0.5
        cols = np.arange(width, dtype=np.float32)
        rows = np.arange(height, dtype=np.float32)
        in_x = (cols >= boxes[:, 0:1]) & (cols < boxes[:, 2:3])  # (n, W)
        in_y = (rows >= boxes[:, 1:2]) & (rows < boxes[:, 3:4])  # (n, H)
        out &= in_y[:, :, None]
        out &= in_x[:, None, :]
        return out
