"""The ``road`` module: road condition on every frame, state changes as events.

Sub-analytics chosen in ``analytics`` (all weight-free, CPU): ``lighting`` (luma figures,
day/twilight/night, lit road share), ``glare`` (saturated regions, veiling glare) and
``snow`` (snow cover of the road region, smoothed over time); see :mod:`oko.road`. Every
figure is given per frame and averaged over ``window_s`` in ``frame.scene`` (``oko analyze
--json`` prints it as ``scene``). The reporter sends ``lighting`` (phase changed),
``glare`` (on/off) and ``snow_cover`` (on at ``snow_on``, off below ``snow_off``) events,
each only after the new state held for ``hold_s`` seconds.

With a ``segmentation`` model (families ``mmseg``/``segformer``, trained by the road team)
each frame also gets the coverage of every class in the road region, the polygons of
defect classes and the visibility of configured ``markings``; the class map is blended
into annotated video. The reporter turns polygons into ``road_defect`` events (one per
defect, :mod:`oko.road.defects`; square metres with a ``calibration``) and sends
``marking_visibility`` when a line's state (visible >= ``marking_ok``, worn, missing <
``marking_missing``) changes. A ``detector`` (e.g. a YOLOv8 sign detector whose manifest
lists GOST 52290 codes, or a YOLOv8-seg snowdrift model) gives per-frame objects, and a
``classifier`` (multi-head, e.g. a ResNeXt "glare / other" model) answers per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from oko.core.detections import Detections
from oko.core.events import Event
from oko.core.frame import Frame
from oko.core.timing import StageTimer
from oko.modules.base import Module, ModuleOptions, TrackReporter, spread_timings
from oko.road.calibration import GroundCalibration, GroundPlane
from oko.road.defects import DefectConfig, DefectTracker
from oko.road.lighting import GlareConfig, LightingConfig, glare, lighting
from oko.road.markings import MarkingLine, marking_visibility
from oko.road.scene import DEFAULT_WIDTH, Scene, region_mask
from oko.road.snow import SnowConfig, SnowEstimator
from oko.road.states import HeldState, WindowAverage, two_level

Analytic = Literal["lighting", "glare", "snow"]


class RoadOptions(ModuleOptions):
    region: list[tuple[float, float]] | None = Field(
        None, description="Road region polygon in frame pixels; None: the whole frame.")
    analytics: list[Analytic] = Field(["lighting", "glare", "snow"],
                                      description="Which weight-free analytics run.")
    lighting: LightingConfig = Field(default_factory=LightingConfig)
    glare: GlareConfig = Field(default_factory=GlareConfig)
    snow: SnowConfig = Field(default_factory=SnowConfig)
    analysis_width: int = Field(DEFAULT_WIDTH, ge=64, le=1920,
                                description="Frames are shrunk to this width for analytics.")
    window_s: float = Field(10.0, gt=0, description="Averaging window for the figures.")
    hold_s: float = Field(5.0, ge=0, description="A new state must hold this long.")
    snow_on: float = Field(0.3, ge=0, le=1, description="Snow cover from which it is snowy.")
    snow_off: float = Field(0.15, ge=0, le=1, description="Snow cover below which it is not.")
    segmentation: str | None = Field(None, description="Semantic segmentation model.")
    detector: str | None = Field(None, description="Object detector (signs, snowdrifts).")
    classifier: str | None = Field(None, description="Whole-frame multi-head classifier "
                                   "(e.g. glare / fog / other).")
    engine: str | dict[str, Any] | None = Field(None, description="Engine for the models.")
    defects: DefectConfig = Field(default_factory=DefectConfig)
    calibration: GroundCalibration | None = Field(
        None, description="Four image points and their road positions in metres.")
    markings: list[MarkingLine] = Field(default_factory=list,
                                        description="Expected marking polylines (frame px).")
    marking_classes: list[str] = Field(["lane_marking", "marking"],
                                       description="Segmentation labels that are markings.")
    marking_ok: float = Field(0.8, ge=0, le=1, description="Visible share: marking fine.")
    marking_missing: float = Field(0.4, ge=0, le=1, description="Below: marking missing.")
    polygon_min_area: float = Field(50.0, ge=0, description="Smallest polygon (px) reported.")

    @model_validator(mode="after")
    def _segmentation_needed(self) -> RoadOptions:
        if self.markings and self.segmentation is None:
            raise ValueError("markings need a segmentation model (segmentation: ...)")
        return self


class _ChannelState:
    def __init__(self, options: RoadOptions) -> None:
        self.roi = None
        self.roi_full: np.ndarray | None = None   # at frame size, for segmentation
        self.roi_shape: tuple[int, int] | None = None
        self.snow = SnowEstimator(options.snow)
        self.window = WindowAverage(options.window_s)


class RoadModule(Module):
    name = "road"
    options_class = RoadOptions
    wants_tracks = True  # `oko analyze` runs the reporter: state-change events

    def __init__(self, options: RoadOptions) -> None:
        super().__init__(options)
        self._channels: dict[str, _ChannelState] = {}
        self.segmenter = self.detector = None
        if options.segmentation:
            from oko.road.segmentation import load_segmenter

            self.segmenter = load_segmenter(options.segmentation, options.engine)
            labels = list(self.segmenter.labels)
            self._defect_ids = [i for i, n in enumerate(labels) if n in options.defects.classes]
            self._marking_ids = [i for i, n in enumerate(labels)
                                 if n in options.marking_classes]
            if options.markings and not self._marking_ids:
                from oko.core.errors import ConfigError

                raise ConfigError(f"module road: segmentation model {self.segmenter.name!r} "
                                  f"has none of the marking classes {options.marking_classes}",
                                  f"its labels are {labels}; set marking_classes")
        if options.detector:
            from oko.models import load_detector

            self.detector = load_detector(options.detector, options.engine)
        self.classifier = None
        if options.classifier:
            from oko.models.multihead import load_multihead

            self.classifier = load_multihead(options.classifier, options.engine)
        self.ground = (GroundPlane(options.calibration) if options.calibration is not None
                       else None)

    @property
    def labels(self) -> Sequence[str]:
        return self.detector.labels if self.detector is not None else []

    @property
    def model_name(self) -> str:
        parts = [m.name for m in (self.segmenter, self.detector, self.classifier)
                 if m is not None]
        return "+".join(["road", *parts])

    def _state(self, frame: Frame) -> _ChannelState:
        state = self._channels.get(frame.channel_id)
        if state is None:
            state = self._channels[frame.channel_id] = _ChannelState(self.options)
        h, w = frame.image.shape[:2]
        if state.roi_shape != (h, w):  # first frame, or the stream changed size
            sw = min(self.options.analysis_width, w)
            state.roi = region_mask(self.options.region, w, h, sw, max(1, round(h * sw / w)))
            state.roi_full = _full_size(state.roi, w, h) if self.segmenter is not None else None
            state.roi_shape = (h, w)
        return state

    def process(self, frames: Sequence[Frame]) -> list[Detections]:
        o: RoadOptions = self.options  # type: ignore[assignment]
        timings: dict[str, float] = {}
        for frame in frames:
            state = self._state(frame)
            with StageTimer(timings, "scene"):
                scene = Scene.from_frame(frame.image, width=o.analysis_width, roi=state.roi)
            figures: dict[str, Any] = {}
            numeric: dict[str, float] = {}
            if "lighting" in o.analytics:
                with StageTimer(timings, "lighting"):
                    figures["lighting"] = lighting(scene, o.lighting)
                numeric["mean_luma"] = figures["lighting"]["mean_luma"]
                numeric["lit_fraction"] = figures["lighting"]["lit_fraction"]
            if "glare" in o.analytics:
                with StageTimer(timings, "glare"):
                    figures["glare"] = glare(scene, o.glare)
                numeric["glare_share"] = float(figures["glare"]["glare"])
            if "snow" in o.analytics:
                with StageTimer(timings, "snow"):
                    figures["snow"] = state.snow(scene)
                numeric["snow_cover"] = figures["snow"]["snow_cover"]
            figures["window"] = state.window.add(frame.timestamp, numeric)
            frame.scene.update(figures)
        if self.segmenter is not None:
            self._segment(frames, timings)
        if self.classifier is not None:
            records = self.classifier([f.image for f in frames], timings).records()
            for frame, record in zip(frames, records, strict=True):
                frame.scene["classifier"] = record
        found = ([Detections.empty() for _ in frames] if self.detector is None
                 else self.detector([f.image for f in frames], timings))
        spread_timings(frames, timings)
        return found

    def _segment(self, frames: Sequence[Frame], timings: dict[str, float]) -> None:
        o: RoadOptions = self.options  # type: ignore[assignment]
        results = self.segmenter([f.image for f in frames], timings)  # type: ignore[misc]
        for frame, result in zip(frames, results, strict=True):
            state = self._channels[frame.channel_id]
            with StageTimer(timings, "regions"):
                seg: dict[str, Any] = {"coverage": {
                    k: round(v, 4) for k, v in result.coverage(state.roi_full).items()}}
                seg["defects"] = [
                    {**p, "polygon": np.round(p["polygon"], 1).tolist()}
                    for p in result.polygons(self._defect_ids, o.polygon_min_area)
                ] if self._defect_ids else []
                if o.markings:
                    seg["markings"] = marking_visibility(result.class_map, self._marking_ids,
                                                         o.markings)
                frame.scene["segmentation"] = seg
                frame.overlay = result.colorize()

    def reporter(self, channel_id: str) -> TrackReporter:
        return RoadReporter(channel_id, self.options, self.ground)  # type: ignore[arg-type]


def _full_size(roi: np.ndarray | None, w: int, h: int) -> np.ndarray | None:
    """The analysis-size road region at frame size (None: the whole frame)."""
    if roi is None or roi.all():
        return None
    return cv2.resize(roi.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0


class RoadReporter(TrackReporter):
    """State-change events with hysteresis (lighting phase, glare, snow cover, marking
    visibility) and one ``road_defect`` event per defect."""

    def __init__(self, channel_id: str, options: RoadOptions,
                 ground: GroundPlane | None = None) -> None:
        self.channel_id = channel_id
        self.options = options
        self.defects = DefectTracker(options.defects, ground)
        self._markings: dict[str, HeldState] = {m.name: HeldState(options.hold_s)
                                                for m in options.markings}
        self._phase = HeldState(options.hold_s)
        self._glare = HeldState(options.hold_s)
        self._snow = HeldState(options.hold_s)
        self._snowy: bool | None = None

    def update(self, frame: Frame, dets: Detections) -> list[Event]:
        scene, events = frame.scene, []
        window = scene.get("window", {})

        def event(kind: str, data: dict[str, Any]) -> None:
            events.append(Event(kind, self.channel_id, frame.timestamp, frame.index,
                                {**data, "window": window}))

        if "lighting" in scene:
            change = self._phase.update(frame.timestamp, scene["lighting"]["phase"])
            if change:
                event("lighting", {"phase": change[1], "previous": change[0]})
        if "glare" in scene:
            change = self._glare.update(frame.timestamp, scene["glare"]["glare"])
            if change:
                event("glare", {"glare": change[1], "veiled": scene["glare"]["veiled"]})
        if "snow" in scene:
            self._snowy = two_level(self._snowy, scene["snow"]["snow_cover"],
                                    self.options.snow_on, self.options.snow_off)
            change = self._snow.update(frame.timestamp, self._snowy)
            if change:
                event("snow_cover", {"snowy": change[1],
                                     "snow_cover": scene["snow"]["snow_cover"]})
        seg = scene.get("segmentation")
        if seg is not None:
            area = float(frame.image.shape[0] * frame.image.shape[1])
            for found in self.defects.update(seg["defects"], frame.timestamp, area):
                events.append(Event("road_defect", self.channel_id, frame.timestamp,
                                    frame.index, found))
            o = self.options
            for name, visible in seg.get("markings", {}).items():
                level = ("visible" if visible >= o.marking_ok else
                         "missing" if visible < o.marking_missing else "worn")
                change = self._markings[name].update(frame.timestamp, level)
                if change:
                    event("marking_visibility", {"line": name, "state": change[1],
                                                 "previous": change[0], "visible": visible})
        return events
