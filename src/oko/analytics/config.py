"""Zone and line settings (pydantic, ``extra="forbid"``).

Coordinates are pixels of the original frame unless ``normalized: true``, in which case
every coordinate is a fraction of the frame (x of the width, y of the height, 0..1) and
:meth:`to_pixels` converts them once, when the frame size is known. Image y points down.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from oko.analytics.anchors import Anchor
from oko.analytics.geometry import polygon_area
from oko.core.errors import ConfigError

Point = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_normalized(points: Sequence[Point], field: str, info: ValidationInfo) -> None:
    """With ``normalized: true`` every coordinate must lie in 0..1 (catches pixel values)."""
    if not info.data.get("normalized"):
        return
    for i, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            where = field if len(points) == 1 else f"{field}[{i}]"
            raise ValueError(f"{where} = [{x:g}, {y:g}] is outside 0..1 but normalized is true "
                             "(give fractions of the frame, or set normalized: false for pixels)")


def _check_classes(classes: list[str] | None) -> list[str] | None:
    if classes is None:
        return None
    if not classes:
        raise ValueError("classes must not be empty; leave it out to count every class")
    if any(not c.strip() for c in classes):
        raise ValueError("classes must not contain empty names")
    return classes


def _check_frame_size(width: float, height: float) -> None:
    if not (width > 0 and height > 0):
        raise ConfigError(f"frame size must be positive, got {width}x{height}")


class ZoneConfig(_Strict):
    """A polygon zone: occupancy, enter/exit events and dwell time per tracked object."""

    name: str = Field(min_length=1, description="Zone name, unique per channel; used in events.")
    normalized: bool = Field(
        False, description="true: coordinates are fractions of the frame (0..1); "
                           "false: original-frame pixels.")
    polygon: list[Point] = Field(
        description="Vertices [[x, y], ...] in order (at least 3, closed implicitly).")
    classes: list[str] | None = Field(
        None, description="Class names to include (e.g. ['person']); None means every class.")
    anchor: Anchor = Field(
        Anchor.BOTTOM_CENTER, description="Point of each box tested against the polygon.")
    debounce_s: float = Field(
        0.3, ge=0, description="An object's inside/outside state changes only after its "
                               "anchor has stayed on the new side for this many seconds "
                               "(0: on the first frame); suppresses flicker at the border.")
    lost_timeout_s: float = Field(
        2.0, gt=0, description="A track not seen for longer than this (seconds) is dropped; "
                               "if it was inside, a zone_exit with reason 'lost' is emitted.")

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, polygon: list[Point], info: ValidationInfo) -> list[Point]:
        if len(polygon) < 3:
            raise ValueError(f"polygon needs at least 3 points, got {len(polygon)}")
        _check_normalized(polygon, "polygon", info)
        if polygon_area(polygon) <= 0.0:
            raise ValueError("polygon has zero area (its points are collinear or repeated)")
        return polygon

    @field_validator("classes")
    @classmethod
    def _classes(cls, classes: list[str] | None) -> list[str] | None:
        return _check_classes(classes)

    def to_pixels(self, width: float, height: float) -> ZoneConfig:
        """This zone in pixels of a ``width`` x ``height`` frame (unchanged if already pixels)."""
        _check_frame_size(width, height)
        if not self.normalized:
            return self
        polygon = [(x * width, y * height) for x, y in self.polygon]
        return self.model_copy(update={"polygon": polygon, "normalized": False})


class LineConfig(_Strict):
    """A directed counting line (a segment from ``start`` to ``end``).

    Direction: stand at ``start`` and look towards ``end`` on the displayed image. An
    object whose anchor crosses from your left-hand side to your right-hand side counts
    as ``in``; from right to left as ``out``. For a horizontal line drawn left to right,
    ``in`` is moving down the image; swap ``start`` and ``end`` to swap the directions.
    """

    name: str = Field(min_length=1, description="Line name, unique per channel; used in events.")
    normalized: bool = Field(
        False, description="true: coordinates are fractions of the frame (0..1); "
                           "false: original-frame pixels.")
    start: Point = Field(description="First end point [x, y].")
    end: Point = Field(description="Second end point [x, y]; 'in' is left-to-right seen "
                                   "from start towards end.")
    classes: list[str] | None = Field(
        None, description="Class names to count (e.g. ['car', 'truck']); None means every class.")
    anchor: Anchor = Field(
        Anchor.BOTTOM_CENTER, description="Point of each box whose crossing is counted.")
    hysteresis_px: float = Field(
        8.0, ge=0, description="Half-width of the dead band around the line, in pixels: an "
                               "anchor within this distance of the line does not change "
                               "its side, so jitter on the line is not counted.")
    forget_after_s: float = Field(
        5.0, gt=0, description="A track not seen for longer than this (seconds) loses its "
                               "side; if it reappears it starts afresh and is not counted "
                               "for the gap.")

    @field_validator("start")
    @classmethod
    def _start(cls, start: Point, info: ValidationInfo) -> Point:
        _check_normalized([start], "start", info)
        return start

    @field_validator("end")
    @classmethod
    def _end(cls, end: Point, info: ValidationInfo) -> Point:
        _check_normalized([end], "end", info)
        start = info.data.get("start")
        if start is not None and tuple(start) == tuple(end):
            raise ValueError(f"end must differ from start (both are [{end[0]:g}, {end[1]:g}]: "
                             "the line has zero length)")
        return end

    @field_validator("classes")
    @classmethod
    def _classes(cls, classes: list[str] | None) -> list[str] | None:
        return _check_classes(classes)

    def to_pixels(self, width: float, height: float) -> LineConfig:
        """This line in pixels of a ``width`` x ``height`` frame (unchanged if already pixels)."""
        _check_frame_size(width, height)
        if not self.normalized:
            return self
        start = (self.start[0] * width, self.start[1] * height)
        end = (self.end[0] * width, self.end[1] * height)
        return self.model_copy(update={"start": start, "end": end, "normalized": False})


M = TypeVar("M", ZoneConfig, LineConfig)


def parse_configs(model: type[M], items: Sequence[Any], source: str) -> list[M]:
    """Validate a list of dicts (or models) as ``model``; ConfigError names each bad field.

    ``source`` prefixes the path in messages, e.g. ``lines[1].end: ...``.
    """
    out = []
    problems = []
    for i, item in enumerate(items):
        if isinstance(item, model):
            out.append(item)
            continue
        try:
            out.append(model.model_validate(item))
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                problems.append(f"{source}[{i}]{'.' + where if where else ''}: {err['msg']}")
    if problems:
        raise ConfigError("; ".join(problems))
    names = [c.name for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: names must be unique, repeated: {', '.join(dupes)}")
    return out
