"""The ``road`` module: road condition on every frame, state changes as events.

Sub-analytics chosen in ``analytics`` (all weight-free, CPU): ``lighting`` (luma figures,
day/twilight/night, lit road share), ``glare`` (saturated regions, veiling glare) and
``snow`` (snow cover of the road region, smoothed over time); see :mod:`oko.road`. Every
figure is given per frame and averaged over ``window_s`` in ``frame.scene`` (``oko analyze
--json`` prints it as ``scene``). The reporter sends ``lighting`` (phase changed),
``glare`` (on/off) and ``snow_cover`` (on at ``snow_on``, off below ``snow_off``) events,
each only after the new state held for ``hold_s`` seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from oko.core.detections import Detections
from oko.core.events import Event
from oko.core.frame import Frame
from oko.core.timing import StageTimer
from oko.modules.base import Module, ModuleOptions, TrackReporter, spread_timings
from oko.road.lighting import GlareConfig, LightingConfig, glare, lighting
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


class _ChannelState:
    def __init__(self, options: RoadOptions) -> None:
        self.roi = None
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

    @property
    def labels(self) -> Sequence[str]:
        return []

    def _state(self, frame: Frame) -> _ChannelState:
        state = self._channels.get(frame.channel_id)
        if state is None:
            state = self._channels[frame.channel_id] = _ChannelState(self.options)
        h, w = frame.image.shape[:2]
        if state.roi_shape != (h, w):  # first frame, or the stream changed size
            sw = min(self.options.analysis_width, w)
            state.roi = region_mask(self.options.region, w, h, sw, max(1, round(h * sw / w)))
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
        spread_timings(frames, timings)
        return [Detections.empty() for _ in frames]

    def reporter(self, channel_id: str) -> TrackReporter:
        return RoadReporter(channel_id, self.options)  # type: ignore[arg-type]


class RoadReporter(TrackReporter):
    """State-change events with hysteresis: lighting phase, glare, snow cover."""

    def __init__(self, channel_id: str, options: RoadOptions) -> None:
        self.channel_id = channel_id
        self.options = options
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
        return events
