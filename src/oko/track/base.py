"""The tracker contract: ``update(dets, t) -> dets with track ids`` and ``reset()``.

A tracker is one file in this package that subclasses :class:`Tracker` with a ``kind``
and a config class; defining the class registers it, and ``oko.track.create_tracker``
builds one by name or config. One tracker instance serves one channel: every piece of
state, the id counter included, lives on the instance.

Output of ``update``: the detections that a track took this frame (matched to an
existing track or starting a new one), **in the input's row order**, with ``track_id``
set: a positive id for confirmed tracks, ``-1`` for tentative ones. Detections no track
took (scores too low, unmatched low-score boxes) are left out. Each id appears at most
once per frame. Ids start at 1 per instance and are given in order of confirmation.

Time: ``t`` is the stream time in seconds (non-decreasing; a step back is logged and
not predicted). Lost-track limits are in seconds, so a tracker keeps a lost object's id
for the same time at 10 or 60 frames per second; the Kalman filter steps by
``(t - t_previous) * kalman_fps`` frames of the rate its noise is tuned at. Counts of
detections (``min_hits``, OC-SORT's ``delta_t``) stay counts of frames.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import fields
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from oko.core.detections import Detections

log = logging.getLogger(__name__)

# Slack on limits in seconds: frame times like k / fps carry rounding errors.
LIMIT_TOLERANCE_S = 1e-6

# Detections' optional columns (everything but xyxy, track_id and data), found once.
_COLUMNS = tuple(f.name for f in fields(Detections) if f.name not in ("xyxy", "track_id", "data"))


class BaseTrackerConfig(BaseModel):
    """Fields every tracker config has; subclasses narrow ``kind`` to a Literal."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str = Field(description="Tracker name, e.g. 'ocsort' or 'bytetrack'.")
    max_age_s: float = Field(
        1.0, gt=0, description="Seconds a track may go without a detection before it is "
        "deleted; it keeps its id if found again within this time.")
    min_hits: int = Field(
        1, ge=0, description="Consecutive frames a new track must be matched after the frame "
        "that started it before it is confirmed and gets an id (-1 until then). Tracks "
        "seen in the first `min_hits` frames after a reset are confirmed at once.")
    kalman_fps: float = Field(
        30.0, gt=0, description="Frame rate the Kalman noise values are tuned for: the "
        "filter advances (t - t_previous) * kalman_fps steps per update.")


class Tracker(ABC):
    """Assigns track ids to the detections of successive frames of one stream."""

    kind: ClassVar[str]
    config_class: ClassVar[type[BaseTrackerConfig]]
    registry: ClassVar[dict[str, type[Tracker]]] = {}  # classes by kind, not tracker state

    # Per-instance state, (re)set by reset().
    _t: float | None      # time of the previous update
    _frame: int           # updates since reset
    _next_id: int
    _nominal: bool        # every step so far was exactly one frame (enables shortcuts)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "kind", None):
            Tracker.registry[cls.kind] = cls

    def __init__(self, config: BaseTrackerConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class(kind=self.kind)
        self.reset()

    @abstractmethod
    def update(self, dets: Detections, t: float) -> Detections:
        """Associate this frame's detections; see the module docstring for the output."""

    def reset(self) -> None:
        """Forget all tracks and restart ids at 1 (e.g. when the stream restarts)."""
        self._t = None
        self._frame = 0
        self._next_id = 1
        self._nominal = True

    # ----------------------------------------------------------------- helpers
    def _advance(self, t: float) -> float:
        """Count the frame and return the Kalman step since the previous one (0 at first)."""
        if not math.isfinite(t):
            raise ValueError(f"tracker time must be finite, got {t!r}")
        self._frame += 1
        prev, self._t = self._t, t
        if prev is None:
            return 0.0
        if t < prev:
            # Clock went back (a source restart or bad timestamp): keep the old clock.
            log.warning("%s: time went back from %.3f s to %.3f s; not predicting",
                        self.kind, prev, t)
            self._t = prev
            self._nominal = False
            return 0.0
        step = (t - prev) * self.config.kalman_fps
        # Frame times like k / fps leave rounding noise; a nominal step is exactly 1.
        if abs(step - 1.0) < 1e-6:
            return 1.0
        self._nominal = False
        return step

    def _allocate_ids(self, n: int) -> np.ndarray:
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        return ids


def select_with_ids(dets: Detections, rows: np.ndarray, track_id: np.ndarray) -> Detections:
    """Rows of ``dets`` with ``track_id`` set, built in one construction."""
    kwargs: dict[str, Any] = {"xyxy": dets.xyxy[rows], "track_id": track_id,
                              "data": {k: v[rows] for k, v in dets.data.items()}}
    for name in _COLUMNS:
        value = getattr(dets, name)
        kwargs[name] = None if value is None else value[rows]
    return Detections(**kwargs)


def empty_output() -> Detections:
    return Detections(xyxy=np.zeros((0, 4), np.float32), track_id=np.zeros(0, np.int64))


class Columns:
    """Per-track arrays with a common first axis (a struct of arrays).

    Declared as ``name=(trailing shape, dtype, fill)``; each column is a plain attribute
    (``cols.mean``), so hot paths index numpy arrays directly. ``append`` takes values
    for some columns and fills the others; ``keep`` selects rows of all columns.
    """

    def __init__(self, **spec: tuple[tuple[int, ...], Any, float]) -> None:
        self._spec = spec
        self._first = next(iter(spec))
        self.clear()

    def clear(self) -> None:
        for name, (tail, dtype, _fill) in self._spec.items():
            setattr(self, name, np.zeros((0, *tail), dtype))

    def __len__(self) -> int:
        return len(self.__dict__[self._first])

    def append(self, n: int, **values: np.ndarray) -> None:
        unknown = set(values) - set(self._spec)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)}")
        for name, (tail, dtype, fill) in self._spec.items():
            new = values.get(name)
            if new is None:
                new = np.full((n, *tail), fill, dtype)
            setattr(self, name, np.concatenate([getattr(self, name), new]))

    def keep(self, mask: np.ndarray) -> None:
        for name in self._spec:
            setattr(self, name, getattr(self, name)[mask])
