"""What every face detector family shares: fitting a frame into the model input, and
faces (box + 5 landmarks) back in original-frame pixels.

Face detectors are ordinary :class:`DetectionAdapter` families (label ``face``, keypoints
= 5 landmarks in the ArcFace order: image-left eye, image-right eye, nose tip, image-left
mouth corner, image-right mouth corner), so :class:`oko.models.Detector` runs them.

Input sizing differs from the object detectors: a face detector's input may be dynamic
(YuNet, most SCRFD exports), and then the frame is only scaled down to fit the manifest's
width x height and padded up to a multiple of the stride, not to a square, so a 16:9 frame
costs 640x384, not 640x640. Small frames are not scaled up by default: YuNet finds faces
of about 10 to 300 pixels, and a close-up blown up to 640 pixels would be too large.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.core.detections import Detections
from oko.core.errors import ModelContractError
from oko.core.geometry import Letterbox
from oko.engines.base import TensorSpec
from oko.models.adapter import DetectionAdapter
from oko.models.manifest import Layout, Manifest, ResizeMode
from oko.models.preprocess import InputPreprocessor

FACE_LABELS = ("face",)
N_LANDMARKS = 5


class FaceDecodeOptions(BaseModel):
    """Options every face family takes in its manifest's ``decode`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    strides: tuple[int, ...] = Field((8, 16, 32), description="Feature strides, in output order.")
    placement: Literal["top_left", "center"] = Field(
        "top_left", description="Where the resized frame sits in the padded input.")
    upscale: bool = Field(
        False, description="Scale frames smaller than the input up (else only pad them).")
    size_multiple: int = Field(
        32, ge=1, description="Dynamic inputs are padded to a multiple of this.")


@dataclass(frozen=True, slots=True)
class FaceInputGeometry(Letterbox):
    """A Letterbox that also records the padded input size the model saw."""

    input_width: int = 0
    input_height: int = 0


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class FaceDetectionAdapter(DetectionAdapter):
    """Base of the face families: sizing, batching of dynamic shapes, landmark output."""

    options_class = FaceDecodeOptions

    def __init__(self, manifest: Manifest, inputs: Sequence[TensorSpec],
                 outputs: Sequence[TensorSpec]) -> None:
        super().__init__(manifest, inputs, outputs)
        if self.labels != list(FACE_LABELS):
            raise ModelContractError(f"{self._where()}: a face detector's labels must be "
                                     f"['face'], got {self.labels}")
        axes = (2, 3) if self.manifest.input.layout == Layout.NCHW else (1, 2)
        self.dynamic = any(self.input.shape[a] is None for a in axes)

    # ------------------------------------------------------------------ input
    def _fit(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        spec, opts = self.manifest.input, self.options
        h, w = image.shape[:2]
        if spec.resize == ResizeMode.STRETCH and not self.dynamic:
            return cv2.resize(image, (spec.width, spec.height)), -1.0
        r = min(spec.width / w, spec.height / h)
        if not opts.upscale:
            r = min(r, 1.0)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))
        if (nw, nh) != (w, h):
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return image, r

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[dict[str, np.ndarray],
                                                                list[Letterbox]]:
        spec, opts = self.manifest.input, self.options
        fitted = [self._fit(img) for img in images]
        if self.dynamic:  # one padded size for the whole batch
            pw = _ceil_to(max(f.shape[1] for f, _ in fitted), opts.size_multiple)
            ph = _ceil_to(max(f.shape[0] for f, _ in fitted), opts.size_multiple)
        else:
            pw, ph = spec.width, spec.height
        batch = np.full((len(images), ph, pw, 3), spec.pad_value, np.uint8)
        geoms: list[Letterbox] = []
        for i, ((img, r), src) in enumerate(zip(fitted, images, strict=True)):
            h, w = img.shape[:2]
            x0 = (pw - w) // 2 if opts.placement == "center" else 0
            y0 = (ph - h) // 2 if opts.placement == "center" else 0
            batch[i, y0:y0 + h, x0:x0 + w] = img
            sh, sw = src.shape[:2]
            sx, sy = (w / sw, h / sh) if r > 0 else (pw / sw, ph / sh)
            geoms.append(FaceInputGeometry(sx, sy, x0, y0, sw, sh, pw, ph))
        # Reuse the shared normalisation: a stretch to the same size is a no-op.
        pre = InputPreprocessor(spec.model_copy(update={"width": pw, "height": ph,
                                                        "resize": ResizeMode.STRETCH}))
        tensor, _ = pre(list(batch))
        return {self.input.name: tensor}, geoms

    # ------------------------------------------------------------------ output
    def postprocess(self, outputs: dict[str, np.ndarray],
                    geoms: Sequence[Letterbox]) -> list[Detections]:
        # Some exports (SCRFD's) drop the batch axis: treat them as a batch of one.
        ordered = [outputs[name] for name in self.output_names]
        ordered = [o[None] if o.ndim == 2 and len(geoms) == 1 and not self._batched(o)
                   else o for o in ordered]
        return [self.decode([o[i] for o in ordered], self._face_geometry(geom))
                for i, geom in enumerate(geoms)]

    def _face_geometry(self, geom: Letterbox) -> FaceInputGeometry:
        """A plain Letterbox (e.g. from `oko port`'s generic preprocessing into the
        manifest's fixed size) gets that size as the input size the model saw."""
        if isinstance(geom, FaceInputGeometry):
            return geom
        spec = self.manifest.input
        return FaceInputGeometry(geom.scale_x, geom.scale_y, geom.pad_x, geom.pad_y,
                                 geom.src_width, geom.src_height, spec.width, spec.height)

    def _batched(self, output: np.ndarray) -> bool:
        """Whether a 2-D output already has a batch axis (family-specific; default no)."""
        return False

    def faces(self, xyxy: np.ndarray, scores: np.ndarray, landmarks: np.ndarray,
              geom: Letterbox) -> Detections:
        """Threshold, NMS, and map boxes and (n, 5, 2) landmarks to the source frame."""
        class_ids = np.zeros(len(xyxy), np.int32)
        return self.finish(xyxy.astype(np.float32), scores.astype(np.float32), class_ids,
                           geom, landmarks.reshape(-1, N_LANDMARKS, 2).astype(np.float32))


def grid_points(width: int, height: int, stride: int, offset: float,
                repeat: int = 1) -> np.ndarray:
    """Cell positions (n, 2) of one level, row-major, ``(col + offset, row + offset)``,
    each repeated ``repeat`` times (anchors per cell), in cell units."""
    rows, cols = -(-height // stride), -(-width // stride)
    ys, xs = np.mgrid[0:rows, 0:cols]
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32) + offset
    return np.repeat(pts, repeat, axis=0) if repeat > 1 else pts
