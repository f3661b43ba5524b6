"""Embedding models: a crop in, one L2-normalised vector out, batched.

Shared by face recognition (:mod:`oko.faces.embed`, aligned square crops) and person
re-identification (:mod:`oko.reid.embed`, 256x128 body crops): the two differ only in what
the manifest states (input size, colour order, mean/std, output). Vectors are
L2-normalised, so cosine similarity is a dot product.

A model is identified by name, dimension and the sha256 of its file (``model_id``): a
gallery remembers it and refuses embeddings from any other model, because vectors of two
models (even two exports of one network) do not live in the same space.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.core.errors import ModelContractError
from oko.core.timing import StageTimer
from oko.engines.base import Engine
from oko.models.manifest import InputDType, Layout, Manifest, parse_decode
from oko.models.loading import model_input
from oko.models.preprocess import InputPreprocessor


@lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _file_sha256(str(path), st.st_size, st.st_mtime_ns)


class EmbedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    match_threshold: float | None = Field(
        None, ge=-1, le=1,
        description="Cosine similarity from which two crops show the same face/person.")
    normalize: bool = Field(True, description="L2-normalise the output (cosine = dot).")


class Embedder:
    """Crops (n, H, W, 3) uint8 BGR (any size; resized as the manifest says) ->
    embeddings (n, d) float32, in engine batches. ``what`` names the crops in errors."""

    def __init__(self, manifest: Manifest, engine: Engine, what: str = "image",
                 square: bool = False) -> None:
        self.manifest = manifest
        self.engine = engine
        where = str(manifest.path or manifest.name)
        self.options = parse_decode(manifest, EmbedOptions)
        spec = manifest.input
        if square and spec.width != spec.height:
            raise ModelContractError(f"{where}: {what} crops are square, manifest input "
                                     f"is {spec.width}x{spec.height}")
        self.crop_size = spec.width  # aligned-face crop side (square models)
        self.input_size = (spec.width, spec.height)
        self.input = model_input(manifest, engine)
        want = (3, spec.height, spec.width) if spec.layout == Layout.NCHW else (
            spec.height, spec.width, 3)
        shape = self.input.shape
        channels = shape[1] if spec.layout == Layout.NCHW else shape[-1]
        if len(shape) == 4 and channels not in (None, 3):
            raise ModelContractError(
                f"{where}: model input {self.input.name!r} has {channels} channel(s) "
                f"(shape {shape}); {what} embedders take 3-channel colour images",
                "export the model with a 3-channel RGB/BGR input")
        if len(shape) != 4 or any(g is not None and g != w for g, w in zip(shape[1:], want,
                                                                           strict=True)):
            raise ModelContractError(
                f"{where}: model input {self.input.name!r} has shape {shape}, manifest says "
                f"{spec.layout.value} {spec.width}x{spec.height}")
        want_dtype = np.dtype(np.uint8 if spec.dtype == InputDType.UINT8 else np.float32)
        if self.input.dtype != want_dtype:
            raise ModelContractError(f"{where}: model input dtype {self.input.dtype}, manifest "
                                     f"says {spec.dtype.value}")
        outputs = {o.name: o for o in engine.outputs()}
        name = manifest.outputs[0] if manifest.outputs else engine.outputs()[0].name
        if name not in outputs:
            raise ModelContractError(f"{where}: output {name!r} not in {sorted(outputs)}")
        self.output = name
        out_shape = outputs[name].shape
        if len(out_shape) != 2:
            raise ModelContractError(f"{where}: embedding output {name!r} has shape "
                                     f"{out_shape}, expected [batch, dim]")
        self.preprocessor = InputPreprocessor(spec)
        self.max_batch = engine.max_batch
        dim = out_shape[1]
        if dim is None:  # dynamic in the file: one zero crop tells
            dim = self(np.zeros((1, spec.height, spec.width, 3), np.uint8)).shape[1]
        self.dim = int(dim)
        self.sha256 = file_sha256(manifest.model_path) if manifest.model_path.is_file() else ""
        self.model_id = f"{manifest.name}/{self.dim}d/{self.sha256[:16]}"

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def threshold(self) -> float | None:
        return self.options.match_threshold

    def __call__(self, crops: np.ndarray | Sequence[np.ndarray],
                 timings: MutableMapping[str, float] | None = None) -> np.ndarray:
        timings = {} if timings is None else timings
        if not len(crops):
            return np.zeros((0, getattr(self, "dim", 0)), np.float32)
        step = self.max_batch or len(crops)
        parts = []
        for start in range(0, len(crops), step):
            chunk = crops[start:start + step]
            with StageTimer(timings, "embed_pre"):
                tensor, _ = self.preprocessor([np.asarray(c) for c in chunk])
            with StageTimer(timings, "embed"):
                parts.append(self.engine.run({self.input.name: tensor})[self.output])
        out = np.concatenate(parts).astype(np.float32, copy=False)
        if self.options.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
