"""Product modules: what runs on frames (detect, people, faces, plates, ...).

A module is one file here subclassing :class:`Module` with a ``name`` and an options
class; defining it registers it, and ``create_module`` builds one by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from oko.core.detections import Detections
from oko.core.errors import ConfigError, UnknownNameError
from oko.core.events import Event
from oko.core.frame import Frame
from oko.models.manifest import format_validation_error


class ModuleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackReporter(ABC):
    """One channel's memory of a module's results over time, turned into events.

    The runtime makes one per channel (``Module.reporter``) and calls ``update`` on every
    frame after tracking, in frame order, then ``finish`` once when the channel ends.
    Modules that decide once per track (faces, plates) emit their events here instead of
    on every frame.
    """

    @abstractmethod
    def update(self, frame: Frame, dets: Detections) -> list[Event]:
        """Events decided on this frame (``dets`` carry track ids when tracking is on)."""

    def finish(self) -> list[Event]:
        """Events still pending when the channel ends (tracks that never closed)."""
        return []

    def annotate(self, dets: Detections) -> Detections:
        """This frame's detections with what the reporter knows per track added (e.g.
        a global person id); called after ``update``. Default: unchanged."""
        return dets


def label_id(labels: Sequence[str], label: str, module: str, model: str) -> int:
    """Index of ``label`` in a model's labels; ConfigError naming module and model if absent."""
    if label not in labels:
        raise ConfigError(f"module {module}: model {model!r} has no label {label!r}",
                          "set person_label")
    return list(labels).index(label)


def spread_timings(frames: Sequence[Frame], timings: dict[str, float]) -> None:
    """Add a batch's per-stage ms to its frames, split evenly across them."""
    share = 1.0 / max(len(frames), 1)
    for frame in frames:
        for stage, ms in timings.items():
            frame.timings[stage] = frame.timings.get(stage, 0.0) + ms * share


class Module(ABC):
    """Processes a batch of frames (possibly from several channels) into Detections."""

    name: ClassVar[str]
    options_class: ClassVar[type[ModuleOptions]] = ModuleOptions
    registry: ClassVar[dict[str, type[Module]]] = {}
    # Whether `oko analyze` tracks objects and runs the reporter by default (modules whose
    # per-frame output depends on tracks, such as global person ids).
    wants_tracks: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None):
            Module.registry[cls.name] = cls

    def __init__(self, options: ModuleOptions) -> None:
        self.options = options

    @property
    @abstractmethod
    def labels(self) -> Sequence[str]:
        """Names for ``class_id`` values in this module's results."""

    @property
    def model_name(self) -> str:
        """What status pages and JSON output call the model(s) behind this module."""
        return self.name

    @property
    def max_batch(self) -> int | None:
        """Most frames one ``process`` call takes (None: any number)."""
        return None

    @abstractmethod
    def process(self, frames: Sequence[Frame]) -> list[Detections]:
        """One Detections per frame, in order; per-stage ms go into ``frame.timings``."""

    def reporter(self, channel_id: str) -> TrackReporter | None:
        """Per-channel event logic for the runtime (None: no module-specific events)."""
        return None


def create_module(name: str, options: dict[str, Any] | None = None) -> Module:
    cls = Module.registry.get(name)
    if cls is None:
        raise UnknownNameError("module", name, list(Module.registry))
    try:
        opts = cls.options_class.model_validate(options or {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(f"module {name}", exc)) from exc
    return cls(opts)
