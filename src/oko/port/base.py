"""The port-target contract: compile a prepared ONNX model for one backend.

A target is one file in ``oko.port`` subclassing :class:`PortTarget` with a ``name``;
defining the class registers it. `oko port` prepares the job (fixed-shape, simplified
ONNX; calibration tensors made with the model's own manifest), calls :meth:`compile`
inside a temporary folder, then validates the artefact by running it through the engine
the artefact names, against ONNX Runtime FP32.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from oko.core.errors import ConfigError, UnknownNameError

PRECISIONS = ("f32", "f16", "int8")


@dataclass
class PortJob:
    """Everything a target needs to compile one model.

    ``onnx_path`` is already checked, shape-fixed and simplified. ``calibration`` maps each
    model input name to an array with a batch axis (N, ...) in the exact layout, dtype and
    normalisation the model expects (made with the manifest's preprocessing); it is empty
    unless the precision is int8. ``work_dir`` is a private temporary folder: write the
    artefact there. ``log`` appends one line to the job's log file (compiler output goes
    to files in ``work_dir`` too). ``stage`` reports a sub-stage to the progress display.
    """

    onnx_path: Path
    model_name: str
    precision: str
    input_names: list[str]
    input_shapes: dict[str, tuple[int, ...]]
    output_names: list[str]
    calibration: dict[str, np.ndarray]
    work_dir: Path
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pixel_format: str = "rgb"  # channel order of the model input ("rgb" or "bgr")
    family: str = ""  # adapter family (e.g. "yolo"): targets may know its sensitive layers
    options: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = lambda line: None
    stage: Callable[[str], None] = lambda name: None
    # The task metric (detection agreement F1, top-1 agreement, ...) of candidate outputs
    # against FP32 reference outputs of the calibration samples at the given indices;
    # None when the model has no task metric. Targets that search (Sophon mixed precision)
    # use it with ``task_target``: output cosine alone misses e.g. YOLO scores crushed to
    # zero inside an output whose box coordinates still match.
    task_check: Callable[[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]], list[int]],
                         float | None] | None = None
    task_target: float = 0.95


@dataclass
class PortArtifact:
    """What a target produced.

    ``path`` is the compiled file inside ``work_dir``. ``engine`` is the engine config
    (a dict with ``kind``) that runs it, written into the new manifest. ``estimated_ms``
    is a predicted per-frame latency on the target hardware, when the toolchain gives
    one (e.g. TPU-MLIR's profile), labelled as an estimate in reports. ``notes`` lists
    facts worth reporting (e.g. layers kept in higher precision).
    """

    path: Path
    engine: dict[str, Any]
    estimated_ms: float | None = None
    estimate_source: str = ""
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class PortTarget(ABC):
    """One compile target (chip or runtime) and the precisions it supports."""

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    description: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[PortTarget]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None):
            PortTarget.registry[cls.name] = cls

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise ConfigError(
                f"target {self.name} has no {precision} precision",
                f"choose one of: {', '.join(self.precisions)}")

    def check_available(self) -> None:  # noqa: B027 - most targets need nothing
        """Raise an OkoError saying how to install what the target needs, if missing."""

    @abstractmethod
    def compile(self, job: PortJob) -> PortArtifact:
        """Compile ``job.onnx_path`` at ``job.precision`` into ``job.work_dir``."""


def get_target(name: str) -> PortTarget:
    cls = PortTarget.registry.get(name)
    if cls is None:
        raise UnknownNameError("port target", name, list(PortTarget.registry))
    return cls()
