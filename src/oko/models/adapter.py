"""Adapters turn frames into a family's input tensors and its outputs into Detections.

Adapters are pure numpy (no engine or SDK imports), shared by every engine and by the
porting fidelity checks. One file per family subclasses :class:`DetectionAdapter` with a
``family`` name; defining the class registers it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from oko.core.detections import Detections
from oko.core.errors import ConfigError, ModelContractError, UnknownNameError
from oko.core.geometry import Letterbox, nms
from oko.engines.base import TensorSpec
from oko.models.manifest import InputDType, Layout, Manifest, format_validation_error
from oko.models.preprocess import InputPreprocessor


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectionAdapter(ABC):
    """Pre- and post-processing of one detector family.

    Subclasses set ``family`` and may set ``options_class`` (a pydantic model validating
    the manifest's ``decode`` section), then implement :meth:`decode`.
    """

    family: ClassVar[str]
    options_class: ClassVar[type[BaseModel]] = NoOptions
    registry: ClassVar[dict[str, type[DetectionAdapter]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "family", None):
            DetectionAdapter.registry[cls.family] = cls

    def __init__(self, manifest: Manifest, inputs: Sequence[TensorSpec],
                 outputs: Sequence[TensorSpec]) -> None:
        self.manifest = manifest
        self.labels = manifest.label_names
        self.post = manifest.postprocess
        try:
            self.options = self.options_class.model_validate(manifest.decode)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(f"{manifest.path}: decode", exc)) from exc
        self.input = self._match_input(inputs)
        self.output_names = self._match_outputs(outputs)
        self.preprocessor = InputPreprocessor(manifest.input)
        self.check_outputs({o.name: o for o in outputs})

    # ------------------------------------------------------------------ contract
    def _where(self) -> str:
        return str(self.manifest.path or self.manifest.name)

    def _match_input(self, inputs: Sequence[TensorSpec]) -> TensorSpec:
        spec = self.manifest.input
        by_name = {i.name: i for i in inputs}
        if spec.name is not None and spec.name not in by_name:
            raise ModelContractError(
                f"{self._where()}: input {spec.name!r} not in model inputs {sorted(by_name)}")
        tensor = by_name[spec.name] if spec.name else inputs[0]
        if len(tensor.shape) != 4:
            raise ModelContractError(
                f"{self._where()}: input {tensor.name!r} has shape {tensor.shape}, expected 4-D")
        if spec.layout == Layout.NCHW:
            expected = (3, spec.height, spec.width)
        else:
            expected = (spec.height, spec.width, 3)
        for want, got in zip(expected, tensor.shape[1:], strict=True):
            if got is not None and got != want:
                raise ModelContractError(
                    f"{self._where()}: manifest says input {spec.layout.value} "
                    f"{spec.width}x{spec.height}, model input {tensor.name!r} has shape "
                    f"{tuple(tensor.shape)}", "fix input.width/height/layout in the manifest")
        want_dtype = np.dtype(np.uint8 if spec.dtype == InputDType.UINT8 else np.float32)
        if tensor.dtype != want_dtype:
            raise ModelContractError(
                f"{self._where()}: manifest input dtype {spec.dtype.value}, model wants "
                f"{tensor.dtype}", "fix input.dtype in the manifest")
        return tensor

    def _match_outputs(self, outputs: Sequence[TensorSpec]) -> list[str]:
        names = [o.name for o in outputs]
        if self.manifest.outputs is None:
            return names
        missing = [n for n in self.manifest.outputs if n not in names]
        if missing:
            raise ModelContractError(
                f"{self._where()}: outputs {missing} not in model outputs {names}")
        return list(self.manifest.outputs)

    def check_outputs(self, outputs: dict[str, TensorSpec]) -> None:  # noqa: B027
        """Raise ModelContractError when the model's outputs cannot be decoded."""

    # ------------------------------------------------------------------ processing
    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[dict[str, np.ndarray], list[Letterbox]]:
        tensor, geoms = self.preprocessor(images)
        return {self.input.name: tensor}, geoms

    def postprocess(self, outputs: dict[str, np.ndarray],
                    geoms: Sequence[Letterbox]) -> list[Detections]:
        ordered = [outputs[name] for name in self.output_names]
        return [self.decode([o[i] for o in ordered], geom) for i, geom in enumerate(geoms)]

    @abstractmethod
    def decode(self, outputs: list[np.ndarray], geom: Letterbox) -> Detections:
        """Decode one image's outputs (batch axis removed) into source-pixel Detections."""

    # ------------------------------------------------------------------ shared helpers
    def finish(self, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
               geom: Letterbox, keypoints: np.ndarray | None = None) -> Detections:
        """Threshold, NMS, cap and map model-input boxes to the source frame."""
        kept = self.select(xyxy, scores, class_ids)
        kwargs = {}
        if keypoints is not None:
            kwargs["keypoints"] = geom.points_to_source(keypoints[kept])
        return Detections(xyxy=geom.boxes_to_source(xyxy[kept]), confidence=scores[kept],
                          class_id=class_ids[kept], **kwargs)

    def select(self, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """Indices of the rows kept by threshold, NMS and the cap, highest score first."""
        keep = np.flatnonzero(scores > self.post.conf_threshold)
        kept = nms(xyxy[keep], scores[keep], self.post.iou_threshold,
                   None if self.post.class_agnostic else class_ids[keep],
                   self.post.max_detections)
        return keep[kept]


def adapter_for(manifest: Manifest, inputs: Sequence[TensorSpec],
                outputs: Sequence[TensorSpec]) -> DetectionAdapter:
    cls = DetectionAdapter.registry.get(manifest.family)
    if cls is None:
        raise UnknownNameError("model family", manifest.family, list(DetectionAdapter.registry))
    return cls(manifest, inputs, outputs)
