"""A detector: a manifest, an engine and the family adapter that connects them."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oko.core.detections import Detections
from oko.core.errors import ModelContractError
from oko.core.timing import StageTimer
from oko.engines import EngineConfig
from oko.engines.base import Engine
from oko.models.adapter import DetectionAdapter, adapter_for
from oko.models.manifest import Manifest, Task
from oko.models.loading import create_model_engine, resolve_with_engine


class Detector:
    """Runs frames through pre-processing, the engine and decoding, in engine-sized batches."""

    def __init__(self, manifest: Manifest, engine: Engine, adapter: DetectionAdapter) -> None:
        self.manifest = manifest
        self.engine = engine
        self.adapter = adapter
        self.labels = adapter.labels
        self.max_batch = engine.max_batch  # None: any batch size

    def __call__(self, images: Sequence[np.ndarray],
                 timings: MutableMapping[str, float] | None = None) -> list[Detections]:
        """Detect objects in BGR uint8 images; per-stage ms are added to ``timings``."""
        return run_in_batches(self.adapter, self.engine, images, self.max_batch, timings)


def load_detector(model: str | Path | Manifest, engine: EngineConfig | str | dict | None = None,
                  conf_threshold: float | None = None,
                  iou_threshold: float | None = None) -> Detector:
    """Resolve ``model`` (zoo name, folder, manifest or ONNX path), load and check it.

    ``engine`` None means the engine the manifest names (a ported artefact), else ONNX
    Runtime.
    """
    manifest, engine = resolve_with_engine(model, engine)
    if manifest.task not in (Task.DETECT, Task.SEGMENT):
        raise ModelContractError(
            f"model {manifest.name!r} is a {manifest.task.value} model, not a detector")
    manifest = manifest.with_postprocess(conf_threshold=conf_threshold,
                                         iou_threshold=iou_threshold)
    loaded = create_model_engine(manifest, engine)
    adapter = adapter_for(manifest, loaded.inputs(), loaded.outputs())
    return Detector(manifest, loaded, adapter)


def run_in_batches(adapter: Any, engine: Engine, images: Sequence[np.ndarray],
                   max_batch: int | None, timings: MutableMapping[str, float] | None = None
                   ) -> list[Any]:
    """``adapter.preprocess`` -> ``engine.run`` -> ``adapter.postprocess`` over engine-sized
    batches, timed as ``pre``/``infer``/``post``: one result per image, in order."""
    timings = {} if timings is None else timings
    step = max_batch or len(images) or 1
    results: list[Any] = []
    for start in range(0, len(images), step):
        chunk = images[start:start + step]
        with StageTimer(timings, "pre"):
            inputs, geoms = adapter.preprocess(chunk)
        with StageTimer(timings, "infer"):
            outputs = engine.run(inputs)
        with StageTimer(timings, "post"):
            results.extend(adapter.postprocess(outputs, geoms))
    return results
