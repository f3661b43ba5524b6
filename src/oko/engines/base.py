"""The engine contract: run named numpy tensors through a compiled model.

Engines know nothing of model families (no letterbox, no decoding): that is the job of
``oko.models`` adapters, shared by every engine. A backend is one file in this package
that subclasses :class:`Engine` with a ``kind`` and a config class; defining the class
registers it, so callers pick engines by name only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class TensorSpec(NamedTuple):
    """Name, shape (None for a dynamic axis) and numpy dtype of a model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


class EngineConfig(BaseModel):
    """Base of every engine's config; subclasses narrow ``kind`` to a Literal."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description="Engine name, e.g. 'onnxruntime'.")


class Engine(ABC):
    """A loaded model that maps ``{input name: array}`` to ``{output name: array}``."""

    kind: ClassVar[str]
    config_class: ClassVar[type[EngineConfig]]
    registry: ClassVar[dict[str, type[Engine]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "kind", None):
            Engine.registry[cls.kind] = cls

    def __init__(self, model_path: Path, config: EngineConfig) -> None:
        self.model_path = Path(model_path)
        self.config = config

    @abstractmethod
    def load(self, warmup_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        """Load the model and run one warm-up pass, so start-up pays compile costs.

        ``warmup_shapes`` gives sizes for dynamic axes (see :meth:`warmup_feeds`).
        """

    @abstractmethod
    def inputs(self) -> list[TensorSpec]:
        """Input tensors as the model declares them."""

    @abstractmethod
    def outputs(self) -> list[TensorSpec]:
        """Output tensors as the model declares them."""

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one forward pass (synchronously: outputs are ready on return)."""

    def warmup_feeds(self, shapes: dict[str, tuple[int, ...]] | None) -> dict[str, np.ndarray]:
        """Zero tensors for a warm-up pass, one per input.

        Static axes keep the model's size; dynamic ones take the size from ``shapes`` (by
        input name, or ``"*"`` for any input), else 1 for the batch axis and 64 otherwise.
        """
        shapes = shapes or {}
        feeds = {}
        for spec in self.inputs():
            hint = shapes.get(spec.name) or shapes.get("*")
            if hint is not None and len(hint) != len(spec.shape):
                hint = None
            shape = tuple(
                d if d is not None else (hint[axis] if hint else (1 if axis == 0 else 64))
                for axis, d in enumerate(spec.shape))
            feeds[spec.name] = np.zeros(shape, dtype=spec.dtype)
        return feeds

    @property
    def max_batch(self) -> int | None:
        """Largest batch one ``run`` accepts; None when the batch axis is dynamic."""
        shape = self.inputs()[0].shape
        return shape[0] if shape else 1

    def describe(self) -> str:
        """One line for logs: engine kind and where it runs."""
        return self.kind
