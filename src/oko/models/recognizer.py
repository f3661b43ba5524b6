"""A text recogniser: a manifest, an engine and the CTC adapter that connects them."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from pathlib import Path

import numpy as np

from oko.core.errors import ModelContractError, UnknownNameError
from oko.core.timing import StageTimer
from oko.engines import EngineConfig
from oko.engines.base import Engine
from oko.models.ctc import CtcAdapter
from oko.models.manifest import Manifest, Task
from oko.models.loading import create_model_engine, resolve_with_engine

RECOGNIZER_FAMILIES = {CtcAdapter.family: CtcAdapter}


class TextRecognizer:
    """Text-line images in, per-frame class probabilities [B, T, C] out, in engine batches."""

    def __init__(self, manifest: Manifest, engine: Engine, adapter: CtcAdapter,
                 batch: int | None = None) -> None:
        """``batch``: most lines per engine call (None: as many as the engine takes)."""
        self.manifest = manifest
        self.engine = engine
        self.adapter = adapter
        self.charset = adapter.charset
        self.blank = adapter.blank
        self.max_batch = min(b for b in (engine.max_batch, batch) if b) if (
            engine.max_batch or batch) else None

    def __call__(self, images: Sequence[np.ndarray],
                 timings: MutableMapping[str, float] | None = None) -> np.ndarray:
        timings = {} if timings is None else timings
        if not len(images):
            return np.zeros((0, 0, len(self.charset)), np.float32)
        step = self.max_batch or len(images)
        parts = []
        for start in range(0, len(images), step):
            with StageTimer(timings, "pre"):
                inputs = self.adapter.preprocess(images[start:start + step])
            with StageTimer(timings, "infer"):
                outputs = self.engine.run(inputs)
            parts.append(self.adapter.postprocess(outputs))
        return _pad_frames(parts, self.blank)


def _pad_frames(parts: list[np.ndarray], blank: int) -> np.ndarray:
    """Stack chunks whose sequence lengths differ (each chunk is only as wide as its lines):
    shorter ones get trailing frames that are certainly blank, which decode to nothing."""
    t = max(p.shape[1] for p in parts)
    if all(p.shape[1] == t for p in parts):
        return np.concatenate(parts)
    out = np.zeros((sum(len(p) for p in parts), t, parts[0].shape[2]), np.float32)
    out[:, :, blank] = 1.0
    start = 0
    for p in parts:
        out[start:start + len(p), : p.shape[1]] = p
        start += len(p)
    return out


def load_recognizer(model: str | Path | Manifest,
                    engine: EngineConfig | str | dict | None = None,
                    batch: int | None = None) -> TextRecognizer:
    """Resolve a text recogniser (zoo name, folder, manifest or ONNX path) and load it;
    ``batch`` caps the lines per engine call."""
    manifest, engine = resolve_with_engine(model, engine)
    if manifest.task != Task.RECOGNIZE:
        raise ModelContractError(
            f"model {manifest.name!r} is a {manifest.task.value} model, not a text recogniser")
    cls = RECOGNIZER_FAMILIES.get(manifest.family)
    if cls is None:
        raise UnknownNameError("recogniser family", manifest.family, list(RECOGNIZER_FAMILIES))
    loaded = create_model_engine(manifest, engine)
    adapter = cls(manifest, loaded.inputs(), loaded.outputs())
    return TextRecognizer(manifest, loaded, adapter, batch)
