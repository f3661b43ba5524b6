"""Object detection on every frame (people, vehicles, any class the model knows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from oko.core.detections import Detections
from oko.core.errors import ConfigError
from oko.core.frame import Frame
from oko.models import DEFAULT_DETECTOR, Detector, load_detector
from oko.modules.base import Module, ModuleOptions, spread_timings


class DetectOptions(ModuleOptions):
    model: str = Field(DEFAULT_DETECTOR, description="Zoo name or path of a detection model.")
    engine: str | dict[str, Any] | None = Field(
        None, description="Engine name or config; None: the model's own (ONNX Runtime).")
    conf_threshold: float | None = Field(None, ge=0, le=1, description="Override the manifest's.")
    iou_threshold: float | None = Field(None, ge=0, le=1, description="Override the manifest's.")
    classes: list[str] | None = Field(None, description="Keep only these labels (None: all).")


class DetectModule(Module):
    name = "detect"
    options_class = DetectOptions

    def __init__(self, options: DetectOptions, detector: Detector | None = None) -> None:
        """``detector`` reuses an already loaded model instead of loading ``options.model``."""
        super().__init__(options)
        self.detector = detector or load_detector(options.model, options.engine,
                                                  options.conf_threshold, options.iou_threshold)
        self._keep_ids: np.ndarray | None = None
        if options.classes is not None:
            unknown = sorted(set(options.classes) - set(self.detector.labels))
            if unknown:
                raise ConfigError(f"module detect: classes {unknown} are not labels of model "
                                  f"{self.detector.manifest.name!r}")
            self._keep_ids = np.flatnonzero(np.isin(self.detector.labels, options.classes))

    @property
    def labels(self) -> Sequence[str]:
        return self.detector.labels

    @property
    def model_name(self) -> str:
        return self.detector.manifest.name

    @property
    def max_batch(self) -> int | None:
        return self.detector.max_batch

    def process(self, frames: Sequence[Frame]) -> list[Detections]:
        timings: dict[str, float] = {}
        results = self.detector([f.image for f in frames], timings)
        spread_timings(frames, timings)
        if self._keep_ids is not None:
            results = [d[np.isin(d.class_id, self._keep_ids)] for d in results]
        return results
