"""Multi-head classifiers: one network, several answers per crop (face or vehicle attributes).

The manifest (``task: classify``, ``family: multihead``) lists the heads in ``decode``::

    decode:
      heads:
        - {name: hair_color, kind: softmax, classes: [black, blond, brown, gray, red]}
        - {name: eyeglasses, kind: sigmoid, classes: [eyeglasses]}
        - {name: facial_hair, kind: sigmoid, classes: [beard, moustache, goatee]}

A ``softmax`` head picks one of its classes; a ``sigmoid`` head scores each class on its own
(present from ``threshold``). Two numeric kinds answer a number instead of a class:
``value`` reads one column as is (times ``scale``; e.g. an age regressor's years) and
``expectation`` reads ``bins`` columns of a distribution over ``range`` and answers its
mean (e.g. 100 age bins). Each head reads ``len(classes)`` columns of one output
tensor: ``output`` names it (default: the model's first output) and ``offset`` the first
column (default: right after the previous head on that output), so both one concatenated
output and one output per head work. ``activation: probabilities`` when the model already
applies the sigmoid/softmax. At load every output's width must be exactly covered by its
heads: a manifest that does not describe the model is an error, not a silent misreading.

Crops are BGR uint8 of any size; the manifest's input section says how they are resized
and normalised. Results are per-head probability arrays; :meth:`MultiHeadResult.records`
turns them into JSON-ready dicts.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oko.core.errors import ModelContractError
from oko.core.timing import StageTimer
from oko.engines.base import Engine, TensorSpec
from oko.models.manifest import Manifest, Task, parse_decode
from oko.models.preprocess import InputPreprocessor
from oko.models.loading import create_model_engine, model_input, resolve_with_engine

FAMILY = "multihead"


class HeadSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, description="Head name, e.g. 'hair_color'.")
    kind: Literal["sigmoid", "softmax", "value", "expectation"] = Field(
        description="softmax: one class of several; sigmoid: each class present or not; "
                    "value: one number; expectation: the mean of a binned distribution.")
    classes: list[str] = Field(
        default_factory=list, description="Class names, in column order (class heads).")
    scale: float = Field(1.0, description="value heads: the answer is column * scale.")
    bins: int | None = Field(None, gt=1, description="expectation heads: number of columns.")
    range: tuple[float, float] = Field(
        (0.0, 1.0), description="expectation heads: values of the first and the last bin.")
    output: str | None = Field(None, description="Output tensor (default: the first one).")
    offset: int | None = Field(
        None, ge=0, description="First column in the output (default: after the previous head).")
    activation: Literal["logits", "probabilities"] = Field(
        "logits", description="Whether the model already applied the sigmoid/softmax.")
    threshold: float = Field(0.5, ge=0, le=1, description="Sigmoid heads: present from here.")

    @field_validator("classes")
    @classmethod
    def _unique(cls, classes: list[str]) -> list[str]:
        if len(set(classes)) != len(classes):
            raise ValueError("class names must be unique within a head")
        return classes

    @model_validator(mode="after")
    def _shape_fits_kind(self) -> HeadSpec:
        if self.kind in ("sigmoid", "softmax") and not self.classes:
            raise ValueError(f"head {self.name!r}: a {self.kind} head lists its classes")
        if self.kind == "expectation" and self.bins is None:
            raise ValueError(f"head {self.name!r}: an expectation head needs bins")
        return self

    @property
    def width(self) -> int:
        """Columns this head reads."""
        if self.kind == "value":
            return 1
        if self.kind == "expectation":
            return int(self.bins or 0)
        return len(self.classes)

    @property
    def numeric(self) -> bool:
        return self.kind in ("value", "expectation")


class MultiHeadOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    heads: list[HeadSpec] = Field(min_length=1, description="The heads, in manifest order.")

    @field_validator("heads")
    @classmethod
    def _unique_names(cls, heads: list[HeadSpec]) -> list[HeadSpec]:
        names = [h.name for h in heads]
        if len(set(names)) != len(names):
            raise ValueError(f"head names must be unique, got {names}")
        return heads


@dataclass(frozen=True)
class HeadResult:
    """One head's answers for n crops: probabilities (n, classes), or for numeric heads
    the number per crop (n, 1)."""

    spec: HeadSpec
    probs: np.ndarray

    @property
    def values(self) -> np.ndarray:
        """Numeric heads: the answer per crop (n,)."""
        return self.probs[:, 0]

    @property
    def index(self) -> np.ndarray:
        """Softmax heads: the chosen class per crop (n,)."""
        return self.probs.argmax(axis=1)

    @property
    def labels(self) -> list[str]:
        return [self.spec.classes[i] for i in self.index.tolist()]

    @property
    def present(self) -> np.ndarray:
        """Sigmoid heads: which classes are present (n, classes) bool."""
        return self.probs >= self.spec.threshold

    def record(self, row: int) -> dict[str, Any]:
        p = self.probs[row]
        if self.spec.numeric:
            return {"value": round(float(p[0]), 2)}
        if self.spec.kind == "softmax":
            i = int(p.argmax())
            return {"label": self.spec.classes[i], "score": round(float(p[i]), 4)}
        if len(self.spec.classes) == 1:
            return {"present": bool(p[0] >= self.spec.threshold), "score": round(float(p[0]), 4)}
        return {"labels": [c for c, q in zip(self.spec.classes, p, strict=True)
                           if q >= self.spec.threshold],
                "scores": {c: round(float(q), 4) for c, q in zip(self.spec.classes, p,
                                                                strict=True)}}


@dataclass(frozen=True)
class MultiHeadResult:
    heads: dict[str, HeadResult]
    n: int

    def __getitem__(self, name: str) -> HeadResult:
        return self.heads[name]

    def records(self) -> list[dict[str, dict[str, Any]]]:
        """One ``{head: answer}`` dict per crop (see :meth:`HeadResult.record`)."""
        return [{name: h.record(i) for name, h in self.heads.items()} for i in range(self.n)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _answer(head: HeadSpec, cols: np.ndarray) -> np.ndarray:
    """Raw columns -> probabilities (class heads) or one number per row (numeric heads)."""
    if head.kind == "value":
        return cols * head.scale
    if head.activation == "logits":
        cols = _sigmoid(cols) if head.kind == "sigmoid" else _softmax(cols)
    if head.kind == "expectation":
        centres = np.linspace(head.range[0], head.range[1], head.width, dtype=np.float32)
        total = np.maximum(cols.sum(axis=1, keepdims=True), 1e-12)
        return (cols @ centres)[:, None] / total
    return cols


class MultiHeadClassifier:
    """Crops in, per-head probabilities out, in engine-sized batches."""

    def __init__(self, manifest: Manifest, engine: Engine) -> None:
        self.manifest = manifest
        self.engine = engine
        where = str(manifest.path or manifest.name)
        self.options = parse_decode(manifest, MultiHeadOptions)
        self.heads = self.options.heads
        spec = manifest.input
        self.input = model_input(manifest, engine)
        self.slices = self._place_heads(where, {o.name: o for o in engine.outputs()},
                                        engine.outputs()[0].name)
        self.preprocessor = InputPreprocessor(spec)
        self.max_batch = engine.max_batch

    def _place_heads(self, where: str, outputs: dict[str, TensorSpec],
                     first: str) -> list[tuple[str, int, int]]:
        """(output, start, stop) columns of each head; every static output fully covered."""
        placed, cursor, covered = [], {}, {}
        for head in self.heads:
            out = head.output or first
            if out not in outputs:
                raise ModelContractError(f"{where}: head {head.name!r} reads output {out!r}, "
                                         f"model outputs are {sorted(outputs)}")
            shape = outputs[out].shape
            if len(shape) != 2:
                raise ModelContractError(f"{where}: output {out!r} has shape {shape}, a head "
                                         "reads a [batch, columns] output")
            start = head.offset if head.offset is not None else cursor.get(out, 0)
            stop = start + head.width
            if shape[1] is not None and stop > shape[1]:
                raise ModelContractError(
                    f"{where}: head {head.name!r} needs columns {start}..{stop - 1} of output "
                    f"{out!r}, which has {shape[1]}")
            taken = covered.setdefault(out, np.zeros(max(stop, shape[1] or 0), bool))
            if len(taken) < stop:
                taken = covered[out] = np.pad(taken, (0, stop - len(taken)))
            if taken[start:stop].any():
                raise ModelContractError(f"{where}: head {head.name!r} overlaps another head "
                                         f"on output {out!r} (columns {start}..{stop - 1})")
            taken[start:stop] = True
            cursor[out] = stop
            placed.append((out, start, stop))
        for out, taken in covered.items():
            width = outputs[out].shape[1]
            if width is not None and not taken[:width].all():
                free = np.flatnonzero(~taken[:width]).tolist()
                raise ModelContractError(
                    f"{where}: output {out!r} has {width} columns, the heads read "
                    f"{int(taken.sum())} (unread: {free[:10]})",
                    "list every head of the model in decode.heads")
        return placed

    @property
    def name(self) -> str:
        return self.manifest.name

    def __call__(self, crops: Sequence[np.ndarray],
                 timings: MutableMapping[str, float] | None = None) -> MultiHeadResult:
        timings = {} if timings is None else timings
        n = len(crops)
        raw: dict[str, list[np.ndarray]] = {}
        step = self.max_batch or n or 1
        for start in range(0, n, step):
            with StageTimer(timings, "attr_pre"):
                tensor, _ = self.preprocessor(list(crops[start:start + step]))
            with StageTimer(timings, "attributes"):
                result = self.engine.run({self.input.name: tensor})
            for out in {o for o, _, _ in self.slices}:
                raw.setdefault(out, []).append(np.asarray(result[out], np.float32))
        heads = {}
        for head, (out, a, b) in zip(self.heads, self.slices, strict=True):
            cols = (np.concatenate(raw[out])[:, a:b] if n else
                    np.zeros((0, b - a), np.float32))
            heads[head.name] = HeadResult(head, _answer(head, cols).astype(np.float32))
        return MultiHeadResult(heads, n)


def load_multihead(model: str | Path | Manifest, engine: str | dict | None = None
                   ) -> MultiHeadClassifier:
    """Resolve ``model`` (zoo name, folder, manifest or ONNX path) and load it."""
    manifest, engine = resolve_with_engine(model, engine)
    if manifest.task != Task.CLASSIFY or manifest.family != FAMILY:
        raise ModelContractError(
            f"model {manifest.name!r} is a {manifest.task.value}/{manifest.family} model, not a "
            f"multi-head classifier", f"use a manifest with task: classify, family: {FAMILY}")
    return MultiHeadClassifier(manifest, create_model_engine(manifest, engine))
