"""CTC text recognisers (PP-OCR rec and the like): text-line images in, per-frame
character probabilities out, and greedy CTC decoding.

Input: BGR crops resized to the model's height keeping their aspect ratio (squeezed only
when wider than the input), normalised with the manifest's mean/std and padded on the
right with the mean (0 after normalisation, as PaddleOCR pads). A graph with a free width
gets batches only as wide as their widest line. Output: [B, T, C] scores
over ``blank + dictionary (+ space)``; ``activation: softmax`` in ``decode`` when the
graph ends in logits. Decoding is pure numpy, shared by every engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.core.errors import ConfigError, ModelContractError
from oko.engines.base import TensorSpec
from oko.models.manifest import ColorOrder, Layout, Manifest, parse_decode


class CtcOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dictionary: str = Field(description="File beside the manifest: one character per line.")
    blank: Literal["first", "last"] = Field("first", description="Where the CTC blank class is.")
    append_space: bool = Field(True, description="A space class follows the dictionary (PP-OCR).")
    activation: Literal["none", "softmax"] = Field(
        "none", description="'none': outputs are probabilities already; 'softmax': logits.")


class CtcAdapter:
    """Pre- and post-processing of a CTC recogniser described by a manifest."""

    family = "ctc"

    def __init__(self, manifest: Manifest, inputs: Sequence[TensorSpec],
                 outputs: Sequence[TensorSpec]) -> None:
        where = str(manifest.path or manifest.name)
        self.options = parse_decode(manifest, CtcOptions)
        spec = manifest.input
        if spec.layout != Layout.NCHW:
            raise ModelContractError(f"{where}: CTC recognisers take NCHW input")
        self.spec = spec
        self.input_name = spec.name or inputs[0].name
        shape = next((i.shape for i in inputs if i.name == self.input_name), inputs[0].shape)
        # A graph with a free width runs each batch only as wide as its widest line needs
        # (rounded up to ``width_step``); the manifest's width is then the most it takes.
        self.dynamic_width = len(shape) == 4 and shape[3] is None
        self.width_step = 32
        by_name = {o.name: o for o in outputs}
        self.output_name = (manifest.outputs or [outputs[0].name])[0]
        if self.output_name not in by_name:
            raise ModelContractError(
                f"{where}: output {self.output_name!r} not in model outputs {sorted(by_name)}")
        path = (manifest.model_path.parent / self.options.dictionary)
        try:
            chars = path.read_text(encoding="utf-8").split("\n")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read dictionary {path} ({exc.strerror})") from exc
        if chars and chars[-1] == "":
            chars = chars[:-1]
        chars = chars + ([" "] if self.options.append_space else [])
        # Index -> character; the blank is the empty string.
        self.charset = [""] + chars if self.options.blank == "first" else chars + [""]
        self.blank = 0 if self.options.blank == "first" else len(self.charset) - 1
        classes = by_name[self.output_name].shape[-1]
        if classes is not None and classes != len(self.charset):
            raise ModelContractError(
                f"{where}: model has {classes} classes, dictionary + blank"
                f"{' + space' if self.options.append_space else ''} give {len(self.charset)}",
                "fix decode.dictionary / append_space in the manifest")
        order = [2, 1, 0] if spec.color == ColorOrder.RGB else [0, 1, 2]
        self._order = order
        self._mean = np.array(spec.mean, np.float32)[:, None, None]
        self._std = np.array(spec.std, np.float32)[:, None, None]

    def preprocess(self, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """BGR uint8 crops -> one NCHW float32 batch (height and at most the width of the
        manifest)."""
        h, w = self.spec.height, self.spec.width
        widths = [int(min(w, max(1, np.ceil(h * img.shape[1] / max(img.shape[0], 1)))))
                  for img in images]
        if self.dynamic_width and widths:
            w = min(w, -(-max(widths) // self.width_step) * self.width_step)
        batch = np.empty((len(images), h, w, 3), np.uint8)
        # Pad with the mean so padding is 0 after normalisation (what PP-OCR was fed).
        batch[:] = np.clip(np.round(np.array(self.spec.mean)[self._order]), 0, 255).astype(np.uint8)
        for i, (img, new_w) in enumerate(zip(images, widths, strict=True)):
            batch[i, :, :new_w] = cv2.resize(img, (new_w, h), interpolation=cv2.INTER_LINEAR)
        tensor = batch.transpose(0, 3, 1, 2)[:, self._order].astype(np.float32)
        tensor -= self._mean
        tensor /= self._std
        return {self.input_name: tensor}

    def postprocess(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """[B, T, C] probabilities."""
        out = np.asarray(outputs[self.output_name], np.float32)
        if self.options.activation == "softmax":
            out = np.exp(out - out.max(axis=-1, keepdims=True))
            out /= out.sum(axis=-1, keepdims=True)
        return out


def ctc_greedy(probs: np.ndarray, blank: int, silent: Sequence[int] = ()
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Greedy CTC decoding of a batch, vectorised over all frames at once.

    ``probs`` [B, T, K]. Per frame the best class wins; runs of the same class collapse to
    one character; ``blank`` and the ``silent`` classes emit nothing but still separate
    runs. Returns per image ``(labels (n,), run_max (n, K))``: the label of each emitted
    character and, per class, its highest probability over the character's run (the
    evidence for alternatives, e.g. for correcting look-alikes).
    """
    b, t, k = probs.shape
    best = probs.argmax(axis=2)                                   # (B, T)
    flat = probs.reshape(b * t, k)
    starts = np.ones((b, t), bool)
    starts[:, 1:] = best[:, 1:] != best[:, :-1]                   # a new run begins
    run_start = np.flatnonzero(starts.ravel())
    run_max = np.maximum.reduceat(flat, run_start, axis=0)        # (R, K)
    run_label = best.ravel()[run_start]
    run_image = run_start // t
    emit = (run_label != blank) & ~np.isin(run_label, np.asarray(silent, np.int64))
    counts = np.bincount(run_image[emit], minlength=b)
    labels = np.split(run_label[emit], np.cumsum(counts)[:-1])
    maxima = np.split(run_max[emit], np.cumsum(counts)[:-1])
    return list(zip(labels, maxima, strict=True))
