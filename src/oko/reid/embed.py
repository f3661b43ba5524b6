"""Person appearance embedders behind one interface: learned ONNX models or the stripe baseline.

``PersonEmbedder`` takes BGR body crops (any size) and optional silhouettes (HxW masks
like the crop) and returns L2-normalised float32 vectors. ``model_id`` names the vector
space (model name, dimension, file hash): galleries store it with every embedding and
refuse another.

- ``stripes`` (default, :mod:`oko.reid.stripes`): no learned weights; colour/texture of
  horizontal body stripes inside the silhouette. A baseline, not a learned ReID model.
- an ONNX ReID model (family ``reid``, task ``embed``) as users bring them: OSNet,
  BoT/Centroids-ReID ResNet-50, FastReID exports; input 256x128 (HxW), RGB, ImageNet
  mean/std, as the manifest states. Before embedding, the background outside the
  silhouette is filled with the model's mean colour (what a zero input means to it), so
  the network sees the person and not the scene behind them.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from oko.core.errors import ModelContractError
from oko.core.timing import StageTimer
from oko.models.embedder import Embedder
from oko.models.loading import create_model_engine, resolve_with_engine
from oko.models.manifest import ColorOrder, Manifest, Task
from oko.reid import stripes

FAMILY = "reid"
STRIPES = "stripes"
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)


class PersonEmbedder(Protocol):
    name: str
    model_id: str
    dim: int
    default_threshold: float | None  # join similarity when the config gives none

    def __call__(self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None
                 = None, timings: MutableMapping[str, float] | None = None) -> np.ndarray: ...


class StripeEmbedder:
    """The weight-free baseline (:mod:`oko.reid.stripes`) as a PersonEmbedder."""

    name = STRIPES
    model_id = f"{stripes.DESCRIPTOR_ID}/{stripes.DIM}d"
    dim = stripes.DIM
    # Cosine similarity from which two stripe descriptors are taken for one person, chosen
    # without identity labels on the bundled sample by benchmarks/calibrate_reid_threshold.py
    # (early vs late views of one track: 61 % accepted; of two tracks: 8.8 %). Re-measure
    # for your cameras with that script; ONNX models take decode.match_threshold.
    default_threshold: float | None = 0.80

    def __call__(self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None
                 = None, timings: MutableMapping[str, float] | None = None) -> np.ndarray:
        with StageTimer({} if timings is None else timings, "embed"):
            return stripes.stripe_descriptors(list(crops), masks)


def fill_background(crop: np.ndarray, mask: np.ndarray | None,
                    fill_bgr: np.ndarray) -> np.ndarray:
    """The crop with pixels outside ``mask`` set to ``fill_bgr`` (a copy; no mask: as is)."""
    if mask is None:
        return crop
    if mask.shape != crop.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match crop {crop.shape}")
    return np.where(mask[..., None].astype(bool), crop, fill_bgr.astype(np.uint8))


class OnnxPersonEmbedder:
    """An ONNX ReID network (family ``reid``) as a PersonEmbedder."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.name = embedder.name
        self.model_id = embedder.model_id
        self.dim = embedder.dim
        self.default_threshold = embedder.threshold  # decode.match_threshold, if stated
        spec = embedder.manifest.input
        mean = np.asarray(spec.mean, np.float64)
        # The colour whose normalised value is 0: the model's "no information" pixel.
        fill = mean if spec.color != ColorOrder.RGB else mean[::-1]
        self.fill_bgr = np.clip(np.round(fill), 0, 255).astype(np.uint8)

    def __call__(self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None
                 = None, timings: MutableMapping[str, float] | None = None) -> np.ndarray:
        if masks is not None:
            crops = [fill_background(c, m, self.fill_bgr)
                     for c, m in zip(crops, masks, strict=True)]
        if not len(crops):
            return np.zeros((0, self.dim), np.float32)
        return self.embedder(list(crops), timings)


def load_person_embedder(model: str | Path | Manifest = STRIPES,
                         engine: str | dict | None = None) -> PersonEmbedder:
    """``stripes`` or an ONNX ReID model (zoo name, folder, manifest or ONNX path)."""
    if isinstance(model, str) and model == STRIPES:
        return StripeEmbedder()
    manifest, engine = resolve_with_engine(model, engine)
    if manifest.task != Task.EMBED or manifest.family != FAMILY:
        raise ModelContractError(
            f"model {manifest.name!r} is a {manifest.task.value}/{manifest.family} model, not a "
            f"person ReID embedder", f"use a manifest with task: embed, family: {FAMILY}")
    return OnnxPersonEmbedder(Embedder(manifest, create_model_engine(manifest, engine),
                                       what="person"))
