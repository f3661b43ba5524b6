"""Semantic segmentation (a class per pixel) for the model families road teams train.

Manifest families, all ``task: segment``:

- ``mmseg``: DeepLabV3+, PSPNet, ... exported by MMSegmentation / mmdeploy. One output,
  either logits [N, C, H, W] (any H, W: often the input size, or 1/8 of it) or class
  indices [N, 1, H, W] / [N, H, W] (``with_argmax``; integer, or float with one channel);
- ``segformer``: a Hugging Face SegFormer export, logits [N, C, H/4, W/4].

Which kind an output is comes from its shape and dtype (integer, 3-D, or one channel:
indices; otherwise logits); ``decode.output: logits|indices`` overrides. ``labels`` name the
classes; ``decode.colors`` ([[r, g, b], ...], one per label; default a fixed palette) and
``decode.ignore_index`` (255; None for none) complete them. A logits output whose channel
count differs from the labels is refused at load; an index output is checked at decode.

Decoding, per batch: ``np.argmax`` over the channels at model resolution (logits), then per
frame ONE nearest-neighbour resampling of the class map to the frame, the letterbox padding
undone in it: when the content's edges fall on whole output pixels (stretch, and most
letterboxes) a crop and one ``cv2.resize`` (``INTER_NEAREST_EXACT``: pixel centres, unlike
``INTER_NEAREST``'s half-pixel shift); otherwise one ``cv2.warpAffine`` (nearest) with the
exact frame-to-output map, so that a fractional pad is not rounded into a shift.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.core.errors import ConfigError, ModelContractError
from oko.core.geometry import Letterbox
from oko.engines import EngineConfig
from oko.engines.base import Engine, TensorSpec
from oko.models.detector import run_in_batches
from oko.models.loading import create_model_engine, resolve_with_engine
from oko.models.manifest import (ColorOrder, InputDType, Layout, Manifest, Task,
                                 parse_decode)
from oko.models.preprocess import InputPreprocessor
from oko.road.regions import SegmentationResult, default_colors

__all__ = ["SegmentationResult", "SemanticDecoder", "SemanticSegmenter", "load_segmenter"]

Channel = Annotated[int, Field(ge=0, le=255)]


class SemSegOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    colors: list[tuple[Channel, Channel, Channel]] | None = Field(
        None, description="RGB colour per label; default a fixed palette.")
    ignore_index: int | None = Field(
        255, ge=0, le=65535, description="Index meaning 'no class' in index outputs.")
    output: Literal["auto", "logits", "indices"] = Field(
        "auto", description="Output kind; auto: indices when integer, 3-D or one channel.")


class SemanticDecoder:
    """Pre- and post-processing of one semantic segmentation family (pure numpy/OpenCV)."""

    family: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]] = ("logits", "indices")
    registry: ClassVar[dict[str, type[SemanticDecoder]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "family", None):
            SemanticDecoder.registry[cls.family] = cls

    def __init__(self, manifest: Manifest, inputs: Sequence[TensorSpec],
                 outputs: Sequence[TensorSpec]) -> None:
        self.manifest = manifest
        self.where = str(manifest.path or manifest.name)
        self.options = parse_decode(manifest, SemSegOptions)
        self.labels = tuple(manifest.label_names)
        n = len(self.labels)
        if n == 0:
            raise ConfigError(f"{self.where}: labels: a segmentation model needs class names")
        self.ignore_index = self.options.ignore_index
        top = max(n - 1, self.ignore_index or 0)
        self.dtype = np.dtype(np.uint8 if top <= 255 else np.uint16)
        self.input = self._match_input(inputs)
        self.output, self.kind = self._match_output(outputs)
        if self.options.colors is not None and len(self.options.colors) != n:
            raise ConfigError(f"{self.where}: decode.colors has {len(self.options.colors)} "
                              f"colours for {n} labels")
        self.colors = (np.array(self.options.colors, np.uint8) if self.options.colors
                       else default_colors(n))
        self.preprocessor = InputPreprocessor(manifest.input)

    # ------------------------------------------------------------------ contract
    def _match_input(self, inputs: Sequence[TensorSpec]) -> TensorSpec:
        spec = self.manifest.input
        by_name = {i.name: i for i in inputs}
        if spec.name is not None and spec.name not in by_name:
            raise ModelContractError(
                f"{self.where}: input {spec.name!r} not in model inputs {sorted(by_name)}")
        tensor = by_name[spec.name] if spec.name else inputs[0]
        c = 1 if spec.color == ColorOrder.GRAY else 3
        want = (c, spec.height, spec.width) if spec.layout == Layout.NCHW else (
            spec.height, spec.width, c)
        if len(tensor.shape) != 4 or any(
                g is not None and g != w for w, g in zip(want, tensor.shape[1:], strict=True)):
            raise ModelContractError(
                f"{self.where}: manifest says input {spec.layout.value} {spec.width}x"
                f"{spec.height}, model input {tensor.name!r} has shape {tuple(tensor.shape)}",
                "fix input.width/height/layout in the manifest")
        want_dtype = np.dtype(np.uint8 if spec.dtype == InputDType.UINT8 else np.float32)
        if tensor.dtype != want_dtype:
            raise ModelContractError(f"{self.where}: manifest input dtype {spec.dtype.value}, "
                                     f"model wants {tensor.dtype}", "fix input.dtype")
        return tensor

    def _match_output(self, outputs: Sequence[TensorSpec]) -> tuple[str, str]:
        by_name = {o.name: o for o in outputs}
        name = self.manifest.outputs[0] if self.manifest.outputs else outputs[0].name
        if name not in by_name:
            raise ModelContractError(f"{self.where}: output {name!r} not in model outputs "
                                     f"{list(by_name)}")
        shape, dtype = by_name[name].shape, np.dtype(by_name[name].dtype)
        integer = np.issubdtype(dtype, np.integer)
        if len(shape) not in (3, 4):
            raise ModelContractError(f"{self.where}: output {name!r} has shape {shape}; "
                                     "expected logits [N, C, H, W] or indices [N, (1,) H, W]")
        kind = self.options.output
        if kind == "auto":
            kind = "indices" if integer or len(shape) == 3 or shape[1] == 1 else "logits"
        elif kind == "logits" and (integer or len(shape) == 3):
            raise ModelContractError(f"{self.where}: decode.output is logits but output "
                                     f"{name!r} is {dtype} {shape}")
        if kind not in self.kinds:
            raise ModelContractError(
                f"{self.where}: {self.family} output {name!r} ({dtype} {shape}) reads as class "
                f"{kind}; this family exports {' or '.join(self.kinds)}")
        if kind == "logits":
            self._check_channels(shape[1], name)
        return name, kind

    def _check_channels(self, channels: int | None, name: str) -> None:
        if channels is not None and channels != len(self.labels):
            raise ModelContractError(
                f"{self.where}: manifest has {len(self.labels)} labels but output {name!r} has "
                f"{channels} channels", "list one label per output channel")

    # ------------------------------------------------------------------ processing
    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[dict[str, np.ndarray],
                                                                list[Letterbox]]:
        tensor, geoms = self.preprocessor(images)
        return {self.input.name: tensor}, geoms

    def postprocess(self, outputs: dict[str, np.ndarray],
                    geoms: Sequence[Letterbox]) -> list[SegmentationResult]:
        maps = self.class_maps(np.asarray(outputs[self.output]))
        return [SegmentationResult(self.to_frame(m, g), self.labels, self.colors,
                                   self.ignore_index) for m, g in zip(maps, geoms, strict=True)]

    def class_maps(self, raw: np.ndarray) -> np.ndarray:
        """(N, h, w) class indices at model output resolution, in ``self.dtype``."""
        if self.kind == "logits":
            self._check_channels(raw.shape[1], self.output)
            return np.argmax(raw, axis=1).astype(self.dtype)
        if raw.ndim == 4:
            raw = raw[:, 0] if raw.shape[1] == 1 else raw[..., 0]
        if not np.issubdtype(raw.dtype, np.integer):
            raw = np.rint(raw)
        n = len(self.labels)
        lo, hi = raw.min(initial=0), raw.max(initial=0)
        if lo < 0 or hi >= n:
            bad = (raw < 0) | (raw >= n)
            if self.ignore_index is not None:
                bad &= raw != self.ignore_index
            if bad.any():
                values = np.unique(raw[bad])[:5].astype(np.int64).tolist()
                raise ModelContractError(
                    f"{self.where}: output {self.output!r} has class indices {values} but the "
                    f"manifest has {n} labels (0..{n - 1}) and ignore_index "
                    f"{self.ignore_index}", "list every class the model predicts in labels")
        return raw.astype(self.dtype)

    def to_frame(self, cmap: np.ndarray, geom: Letterbox) -> np.ndarray:
        """One nearest-neighbour resampling of an output-resolution class map to the frame."""
        h, w = cmap.shape
        width, height = geom.src_width, geom.src_height
        sx, sy = self.manifest.input.width / w, self.manifest.input.height / h
        x0, y0 = geom.pad_x / sx, geom.pad_y / sy
        x1, y1 = x0 + width * geom.scale_x / sx, y0 + height * geom.scale_y / sy
        edges = np.array([x0, y0, x1, y1])
        if np.all(np.abs(edges - np.rint(edges)) < 1e-6):
            x0, y0, x1, y1 = np.rint(edges).astype(int)
            crop = cmap[y0:y1, x0:x1]
            if crop.shape == (height, width):
                return np.ascontiguousarray(crop)
            return cv2.resize(crop, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
        # Frame pixel centre (x + 0.5) -> output pixel coordinate, rounded to the nearest.
        ax, ay = geom.scale_x / sx, geom.scale_y / sy
        matrix = np.array([[ax, 0.0, (0.5 * geom.scale_x + geom.pad_x) / sx - 0.5],
                           [0.0, ay, (0.5 * geom.scale_y + geom.pad_y) / sy - 0.5]])
        return cv2.warpAffine(cmap, matrix, (width, height),
                              flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)


class MmsegDecoder(SemanticDecoder):
    family = "mmseg"


class SegformerDecoder(SemanticDecoder):
    family = "segformer"
    kinds = ("logits",)


def decoder_for(manifest: Manifest, inputs: Sequence[TensorSpec],
                outputs: Sequence[TensorSpec]) -> SemanticDecoder:
    cls = SemanticDecoder.registry.get(manifest.family)
    if manifest.task != Task.SEGMENT or cls is None:
        raise ModelContractError(
            f"model {manifest.name!r} is a {manifest.task.value}/{manifest.family} model, not a "
            "semantic segmentation model",
            f"use task: segment with family one of {sorted(SemanticDecoder.registry)}")
    return cls(manifest, inputs, outputs)


class SemanticSegmenter:
    """BGR frames in (any sizes), one :class:`SegmentationResult` per frame out, run in
    engine-sized batches."""

    def __init__(self, manifest: Manifest, engine: Engine,
                 decoder: SemanticDecoder | None = None) -> None:
        self.manifest = manifest
        self.engine = engine
        self.decoder = decoder or decoder_for(manifest, engine.inputs(), engine.outputs())
        self.labels = self.decoder.labels
        self.max_batch = engine.max_batch  # None: any batch size

    @property
    def name(self) -> str:
        return self.manifest.name

    def __call__(self, images: Sequence[np.ndarray],
                 timings: MutableMapping[str, float] | None = None) -> list[SegmentationResult]:
        """Segment BGR uint8 frames; per-stage ms are added to ``timings``."""
        return run_in_batches(self.decoder, self.engine, images, self.max_batch, timings)


def load_segmenter(model: str | Path | Manifest,
                   engine: EngineConfig | str | dict | None = None) -> SemanticSegmenter:
    """Resolve ``model`` (zoo name, folder, manifest or ONNX path), load and check it."""
    manifest, engine = resolve_with_engine(model, engine)
    if manifest.task != Task.SEGMENT or manifest.family not in SemanticDecoder.registry:
        decoder_for(manifest, [], [])  # raises the error naming the families
    loaded = create_model_engine(manifest, engine)
    return SemanticSegmenter(manifest, loaded,
                             decoder_for(manifest, loaded.inputs(), loaded.outputs()))
