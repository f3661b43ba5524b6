"""Face embeddings: any ArcFace-style model (aligned square crop in, one vector out).

Family ``arcface`` covers SFace (128-d, the default) and the InsightFace family (ResNet-50
``w600k_r50``, 512-d, ...) alike: they differ only in what the manifest states (colour
order, mean/std, crop size, output). Each model's ``decode.match_threshold`` is the cosine
similarity at which two faces count as the same person; ``oko faces eval`` measures one on
labelled pairs. The embedding machinery is shared with ReID (:mod:`oko.models.embedder`).
"""

from __future__ import annotations

from pathlib import Path

from oko.core.errors import ModelContractError
from oko.models.embedder import Embedder, file_sha256
from oko.models.loading import create_model_engine, resolve_with_engine
from oko.models.manifest import Manifest, Task

DEFAULT_EMBEDDER = "sface"
FAMILY = "arcface"

__all__ = ["DEFAULT_EMBEDDER", "FAMILY", "Embedder", "file_sha256", "load_embedder"]


def load_embedder(model: str | Path | Manifest = DEFAULT_EMBEDDER,
                  engine: str | dict | None = None) -> Embedder:
    """Resolve ``model`` (zoo name, folder, manifest or ONNX path) and load it."""
    manifest, engine = resolve_with_engine(model, engine)
    if manifest.task != Task.EMBED or manifest.family != FAMILY:
        raise ModelContractError(
            f"model {manifest.name!r} is a {manifest.task.value}/{manifest.family} model, not a "
            f"face embedder", f"use a manifest with task: embed, family: {FAMILY}")
    embedder = Embedder(manifest, create_model_engine(manifest, engine),
                        what="face", square=True)
    if embedder.threshold is None:
        raise ModelContractError(f"{manifest.path or manifest.name}: decode.match_threshold "
                                 "is required for a face embedder")
    return embedder
