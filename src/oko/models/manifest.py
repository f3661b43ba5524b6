"""The model manifest: a YAML file beside each model stating its input/output contract.

A manifest says what the model does (task, family), how to feed it (size, layout,
colour order, normalisation, resize mode), how to read it (labels, family-specific
decoding options, thresholds) and where it comes from (licence, origin). Unknown keys are
errors naming the field path.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oko.core.errors import ConfigError
from oko.models.labels import COCO80

MANIFEST_NAME = "manifest.yaml"


class Task(StrEnum):
    DETECT = "detect"
    CLASSIFY = "classify"
    SEGMENT = "segment"
    EMBED = "embed"
    RECOGNIZE = "recognize"  # text lines (plate reading): a sequence of characters


class Layout(StrEnum):
    NCHW = "NCHW"
    NHWC = "NHWC"


class ColorOrder(StrEnum):
    RGB = "RGB"
    BGR = "BGR"
    GRAY = "GRAY"  # one channel, ITU-R BT.601 luma (cv2.COLOR_BGR2GRAY); mean/std use entry 0


class ResizeMode(StrEnum):
    LETTERBOX = "letterbox"  # keep aspect ratio, pad (Ultralytics)
    STRETCH = "stretch"  # scale each axis to the input size


class InputDType(StrEnum):
    FLOAT32 = "float32"
    UINT8 = "uint8"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """How a BGR uint8 frame becomes the model's input tensor: ``(pixel - mean) / std``."""

    name: str | None = Field(None, description="Input tensor name; None means the first input.")
    width: int = Field(gt=0, description="Model input width in pixels.")
    height: int = Field(gt=0, description="Model input height in pixels.")
    layout: Layout = Field(Layout.NCHW, description="Tensor layout.")
    color: ColorOrder = Field(ColorOrder.RGB, description="Channel order the model expects.")
    dtype: InputDType = Field(InputDType.FLOAT32, description="Input tensor element type.")
    mean: tuple[float, float, float] = Field(
        (0.0, 0.0, 0.0), description="Per-channel mean on 0-255 pixels, in `color` order.")
    std: tuple[float, float, float] = Field(
        (255.0, 255.0, 255.0), description="Per-channel divisor on 0-255 pixels, in `color` order.")
    resize: ResizeMode = Field(ResizeMode.LETTERBOX, description="letterbox or stretch.")
    pad_value: int = Field(114, ge=0, le=255, description="Letterbox padding grey level.")

    @field_validator("std")
    @classmethod
    def _nonzero(cls, std: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s == 0 for s in std):
            raise ValueError("std entries must be non-zero")
        return std


class PostprocessSpec(_Strict):
    """Thresholds shared by detection-like families."""

    conf_threshold: float = Field(0.25, ge=0, le=1, description="Minimum score kept.")
    iou_threshold: float = Field(0.45, ge=0, le=1, description="NMS IoU threshold.")
    max_detections: int = Field(300, gt=0, description="Most objects kept per image.")
    class_agnostic: bool = Field(False, description="NMS across classes instead of per class.")


class Manifest(_Strict):
    """A model's contract. ``path`` is where the manifest was read from (not in YAML)."""

    name: str = Field(description="Zoo name, e.g. 'nanodet-coco'.")
    task: Task
    family: str = Field(description="Adapter family, e.g. 'yolo', 'nanodet', 'centernet'.")
    file: str = Field(description="Model file, relative to the manifest's folder.")
    description: str = ""
    input: InputSpec
    labels: list[str] | str = Field(
        "coco80", description="Class names, or the name of a built-in list ('coco80').")
    outputs: list[str] | None = Field(
        None, description="Output tensor names in the order the adapter reads them.")
    decode: dict[str, Any] = Field(
        default_factory=dict, description="Family-specific decoding options.")
    postprocess: PostprocessSpec = Field(default_factory=PostprocessSpec)
    engine: dict[str, Any] | None = Field(
        None, description="Engine config that runs this file (e.g. {kind: sophon}); "
                          "None: whatever engine the caller picks (ONNX Runtime by default).")
    provenance: dict[str, Any] = Field(
        default_factory=dict, description="How this file was made (e.g. by `oko port`).")
    licence: str = ""
    origin: str = ""
    path: Path | None = Field(None, exclude=True, description="Set by the loader.")

    @field_validator("labels")
    @classmethod
    def _known_label_set(cls, labels: list[str] | str) -> list[str] | str:
        if isinstance(labels, str) and labels not in LABEL_SETS:
            raise ValueError(f"unknown label set {labels!r}; use one of {sorted(LABEL_SETS)} "
                             "or a list of names")
        return labels

    @property
    def label_names(self) -> list[str]:
        return list(LABEL_SETS[self.labels]) if isinstance(self.labels, str) else self.labels

    @property
    def model_path(self) -> Path:
        base = self.path.parent if self.path is not None else Path.cwd()
        return (base / self.file).resolve()

    def with_postprocess(self, **changes: Any) -> Manifest:
        """A copy with some thresholds replaced (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        post = PostprocessSpec.model_validate(self.postprocess.model_dump() | changes)
        return self.model_copy(update={"postprocess": post})


LABEL_SETS: dict[str, tuple[str, ...]] = {"coco80": COCO80}


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem: ``source: field.path: message``."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{source}: {where}: {err['msg']}")
    return "; ".join(lines)


def parse_manifest(data: Any, source: str, path: Path | None = None) -> Manifest:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: manifest must be a mapping, got {type(data).__name__}")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from exc
    return manifest.model_copy(update={"path": path})


def load_manifest(path: Path) -> Manifest:
    """Read and validate a manifest YAML file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read manifest ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from exc
    return parse_manifest(data, str(path), path.resolve())


OptionsT = TypeVar("OptionsT", bound=BaseModel)


def parse_decode(manifest: Manifest, options: type[OptionsT]) -> OptionsT:
    """The manifest's ``decode`` section as the family's ``options`` model; ConfigError
    naming the manifest and each bad field otherwise."""
    try:
        return options.model_validate(manifest.decode)
    except ValidationError as exc:
        where = str(manifest.path or manifest.name)
        raise ConfigError(format_validation_error(f"{where}: decode", exc)) from exc
