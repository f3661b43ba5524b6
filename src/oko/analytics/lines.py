"""Directional line-crossing counts per track.

Convention (also in :class:`~oko.analytics.config.LineConfig`): stand at ``start`` and
look towards ``end`` on the displayed image (y down). Crossing from the left-hand side to
the right-hand side is ``in``; from right to left is ``out``.

Per track the counter keeps the *confirmed side* of the line (left, right or not yet
known). An anchor farther than ``hysteresis_px`` from the line confirms the side it is
on; an anchor within the dead band (distance <= ``hysteresis_px``) changes nothing. A
crossing is counted when the confirmed side flips, and only if the track's path met the
line within the segment: the point where the path last changed sign (interpolated
between the two observations around the change) must project onto the segment between
``start`` and ``end``. Hence:

* jitter inside the band, or excursions beyond the band on the side already confirmed,
  never count; each confirmed flip counts exactly once;
* a track seen first inside the band has no side until it leaves the band (no count);
* a track lost and found again (same id, within ``forget_after_s``) on the same side
  counts nothing; found on the other side it counts once, if the straight path between
  where it was lost and where it reappeared meets the segment;
* a track unseen for longer than ``forget_after_s`` is forgotten and starts afresh;
* tentative tracks (``track_id == -1``) and unselected classes are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from oko.analytics.anchors import anchor_points
from oko.analytics.classes import ClassFilter, label_of, tracked_rows
from oko.analytics.config import LineConfig
from oko.analytics.geometry import segment_position, signed_distance
from oko.analytics.tracks import TrackTable
from oko.core.detections import Detections
from oko.core.errors import ConfigError
from oko.core.events import Event

log = logging.getLogger(__name__)

LEFT, UNKNOWN, RIGHT = -1, 0, 1


class LineCounter:
    """Counts tracked objects crossing one directed line; see the module docstring."""

    def __init__(self, config: LineConfig, frame_size: tuple[int, int] | None = None,
                 labels: Sequence[str] | None = None) -> None:
        """``frame_size`` is ``(width, height)``, needed when the config is normalised.

        With ``labels`` given, class names are checked now rather than on the first frame.
        """
        if config.normalized:
            if frame_size is None:
                raise ConfigError(f"line {config.name!r} has normalized coordinates",
                                  "pass the frame size to convert them to pixels")
            config = config.to_pixels(*frame_size)
        self.config = config
        self.name = config.name
        self.start = np.asarray(config.start, dtype=np.float64)
        self.end = np.asarray(config.end, dtype=np.float64)
        self._filter = ClassFilter(config.classes, f"line {config.name!r}: classes")
        if labels is not None:
            self._filter.resolve(labels)
        self._tracks = self._new_table()
        self.in_count = 0
        self.out_count = 0
        self.by_class: dict[str, dict[str, int]] = {}

    @staticmethod
    def _new_table() -> TrackTable:
        return TrackTable(
            side=(np.int8, UNKNOWN),            # confirmed side: LEFT, UNKNOWN or RIGHT
            last_d=(np.float64, 0.0),           # last non-zero signed distance
            last_pt=(np.float64, 0.0, 2),       # anchor where last_d was measured
            cross_at=(np.float64, np.nan),      # segment position of the last sign change
            last_seen=(np.float64, -np.inf),    # stream time of the last observation
        )

    def reset(self) -> None:
        """Forget every track and zero the counts."""
        self._tracks = self._new_table()
        self.in_count = self.out_count = 0
        self.by_class = {}

    @property
    def tracked(self) -> int:
        """How many tracks the counter currently holds state for."""
        return len(self._tracks)

    def update(self, dets: Detections, t: float, frame_index: int = 0, channel_id: str = "",
               labels: Sequence[str] | None = None) -> list[Event]:
        """Feed one frame; returns one ``line_crossing`` event per counted crossing."""
        tab = self._tracks
        if len(tab):
            tab.keep(t - tab["last_seen"] <= self.config.forget_after_s)
        rows, tids, cids = tracked_rows(dets, self._filter, labels)
        if len(tids) == 0:
            return []
        pts = anchor_points(rows.xyxy, self.config.anchor)
        dist = signed_distance(pts, self.start, self.end)
        band = self.config.hysteresis_px
        confirmed = np.where(np.abs(dist) > band, np.sign(dist), UNKNOWN).astype(np.int8)

        idx, found = tab.find(tids)
        new = ~found
        if new.any():
            tab.insert(tids[new], side=confirmed[new], last_d=dist[new], last_pt=pts[new],
                       last_seen=t)
            idx = tab.find(tids)[0]  # rows moved when new ids were inserted
        if not found.any():
            return []
        r, p, d, conf = idx[found], pts[found], dist[found], confirmed[found]

        # Where the path changed sign since the last non-zero observation.
        prev_d, prev_p = tab["last_d"][r], tab["last_pt"][r]
        changed = prev_d * d < 0
        if changed.any():
            alpha = prev_d[changed] / (prev_d[changed] - d[changed])
            at = prev_p[changed] + alpha[:, None] * (p[changed] - prev_p[changed])
            tab["cross_at"][r[changed]] = segment_position(at, self.start, self.end)
        moved = d != 0
        tab["last_d"][r[moved]] = d[moved]
        tab["last_pt"][r[moved]] = p[moved]
        tab["last_seen"][r] = t

        old = tab["side"][r]
        pos = tab["cross_at"][r]
        flipped = (conf != UNKNOWN) & (old != UNKNOWN) & (conf != old)
        counted = flipped & (pos >= 0.0) & (pos <= 1.0)  # NaN compares False
        decided = conf != UNKNOWN
        tab["side"][r[decided]] = conf[decided]
        tab["cross_at"][r[decided]] = np.nan
        if (flipped & ~counted).any():
            log.debug("line %s: %d side change(s) beside the segment not counted",
                      self.name, int(np.count_nonzero(flipped & ~counted)))

        events = []
        f_tids, f_cids = tids[found], cids[found]
        for k in np.flatnonzero(counted).tolist():  # a handful of crossings per frame at most
            direction = "in" if conf[k] == RIGHT else "out"
            events.append(self._count(direction, int(f_tids[k]), int(f_cids[k]), float(pos[k]),
                                      t, frame_index, channel_id, labels))
        return events

    def _count(self, direction: str, track_id: int, class_id: int, pos: float, t: float,
               frame_index: int, channel_id: str, labels: Sequence[str] | None) -> Event:
        label = label_of(class_id, labels)
        if direction == "in":
            self.in_count += 1
        else:
            self.out_count += 1
        per = self.by_class.setdefault(label, {"in": 0, "out": 0})
        per[direction] += 1
        point = self.start + pos * (self.end - self.start)
        data: dict[str, Any] = {
            "line": self.name, "direction": direction, "track_id": track_id,
            "class_id": class_id, "label": label,
            "point": [round(float(point[0]), 1), round(float(point[1]), 1)],
            "in": self.in_count, "out": self.out_count,
        }
        return Event(type="line_crossing", channel_id=channel_id, timestamp=float(t),
                     frame_index=int(frame_index), data=data)

    def counts(self) -> dict[str, Any]:
        """``{"name", "line": [x1, y1, x2, y2], "in", "out", "by_class": {label: {in, out}}}``."""
        return {
            "name": self.name,
            "line": [round(float(v), 1) for v in (*self.start, *self.end)],
            "in": self.in_count,
            "out": self.out_count,
            "by_class": {k: dict(v) for k, v in sorted(self.by_class.items())},
        }
