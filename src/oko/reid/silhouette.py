"""Silhouettes: which pixels of a person (or vehicle) box belong to the object.

Cutting the object out before embedding or classifying it keeps the background out of
its descriptor: the same coat in front of a shop window and a brick wall should look the
same. Two sources of masks:

- a YOLO-seg detector (``Detections.mask``, full-frame masks): cropped to the box;
- otherwise a person-segmentation network run on the crop itself (family
  ``person_mask``; default ``person-mask-selfie``, MediaPipe's selfie segmenter,
  Apache-2.0). It was trained on people filling the frame, so it is given one person crop
  at a time, not the whole scene (where small people are missed).

Masks come back as bool arrays of the crop's size. A mask that is empty, or covers too
little of the box to be the person (``min_fill``), is replaced by ``None`` (use the whole
box) and counted in ``empty``: a descriptor of a handful of pixels is worse than one with
some background.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.core.errors import ModelContractError
from oko.core.timing import StageTimer
from oko.engines.base import Engine
from oko.models.loading import create_model_engine, model_input, resolve_with_engine
from oko.models.manifest import Manifest, Task, parse_decode
from oko.models.preprocess import InputPreprocessor

FAMILY = "person_mask"
DEFAULT_MASK_MODEL = "person-mask-selfie"


class MaskOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: float = Field(0.5, gt=0, lt=1, description="Foreground from this probability.")
    activation: str = Field("probabilities", pattern="^(probabilities|logits)$",
                            description="Whether the output is already a probability.")


class PersonMasker:
    """BGR crops in, one bool mask per crop (its size) out, in engine batches."""

    def __init__(self, manifest: Manifest, engine: Engine, min_fill: float = 0.1) -> None:
        where = str(manifest.path or manifest.name)
        self.options = parse_decode(manifest, MaskOptions)
        self.manifest = manifest
        self.engine = engine
        spec = manifest.input
        self.input = model_input(manifest, engine)
        outputs = {o.name: o for o in engine.outputs()}
        self.output = manifest.outputs[0] if manifest.outputs else engine.outputs()[0].name
        if self.output not in outputs:
            raise ModelContractError(f"{where}: output {self.output!r} not in {sorted(outputs)}")
        shape = outputs[self.output].shape
        if len(shape) not in (3, 4):
            raise ModelContractError(f"{where}: mask output {self.output!r} has shape {shape}; "
                                     "expected [batch, H, W] or one channel of 4-D")
        self.preprocessor = InputPreprocessor(spec)
        self.max_batch = engine.max_batch
        self.min_fill = min_fill
        self.empty = 0  # masks replaced by the whole box so far

    @property
    def name(self) -> str:
        return self.manifest.name

    def probabilities(self, crops: Sequence[np.ndarray],
                      timings: MutableMapping[str, float] | None = None) -> list[np.ndarray]:
        """Foreground probability per crop, float32 at the model's output size."""
        timings = {} if timings is None else timings
        out: list[np.ndarray] = []
        step = self.max_batch or len(crops) or 1
        for start in range(0, len(crops), step):
            chunk = [np.asarray(c) for c in crops[start:start + step]]
            with StageTimer(timings, "mask_pre"):
                tensor, _ = self.preprocessor(chunk)
            with StageTimer(timings, "mask"):
                raw = np.asarray(self.engine.run({self.input.name: tensor})[self.output],
                                 np.float32)
            if raw.ndim == 4:  # one channel, NHWC or NCHW
                raw = raw[..., 0] if raw.shape[-1] == 1 else raw[:, 0]
            if self.options.activation == "logits":
                raw = 0.5 * (1.0 + np.tanh(0.5 * raw))
            out.extend(raw)
        return out

    def __call__(self, crops: Sequence[np.ndarray],
                 timings: MutableMapping[str, float] | None = None) -> list[np.ndarray | None]:
        """A bool mask per crop (crop-sized), or None where no usable mask was found."""
        masks: list[np.ndarray | None] = []
        valid = [i for i, c in enumerate(crops) if c.shape[0] >= 2 and c.shape[1] >= 2]
        probs = self.probabilities([crops[i] for i in valid], timings)
        by_index = dict(zip(valid, probs, strict=True))
        with StageTimer({} if timings is None else timings, "mask_post"):
            for i, crop in enumerate(crops):
                p = by_index.get(i)
                if p is None:
                    masks.append(None)
                    continue
                h, w = crop.shape[:2]
                mask = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) >= \
                    self.options.threshold
                masks.append(self._usable(mask))
        return masks

    def _usable(self, mask: np.ndarray) -> np.ndarray | None:
        if mask.mean() < self.min_fill:
            self.empty += 1
            return None
        return mask


def masks_from_detections(frame_masks: np.ndarray | None, boxes: np.ndarray,
                          min_fill: float = 0.1) -> list[np.ndarray | None]:
    """Per box, the detector's full-frame mask cropped to the box (None: none or empty)."""
    if frame_masks is None:
        return [None] * len(boxes)
    out: list[np.ndarray | None] = []
    h, w = frame_masks.shape[1:3]
    for mask, (x1, y1, x2, y2) in zip(frame_masks, np.round(boxes).astype(int), strict=True):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        part = mask[y1:y2, x1:x2].astype(bool) if x2 > x1 and y2 > y1 else None
        out.append(part if part is not None and part.mean() >= min_fill else None)
    return out


def load_masker(model: str | Path | Manifest = DEFAULT_MASK_MODEL,
                engine: str | dict | None = None, min_fill: float = 0.1) -> PersonMasker:
    manifest, engine = resolve_with_engine(model, engine)
    if manifest.task != Task.SEGMENT or manifest.family != FAMILY:
        raise ModelContractError(
            f"model {manifest.name!r} is a {manifest.task.value}/{manifest.family} model, not a "
            f"person-mask model", f"use a manifest with task: segment, family: {FAMILY}")
    return PersonMasker(manifest, create_model_engine(manifest, engine), min_fill)
