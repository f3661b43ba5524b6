"""Polygon zones: occupancy, enter/exit events and dwell time per tracked object.

Per track the zone keeps a *confirmed* state, inside or outside; every track starts
outside. When the track's anchor is observed on the other side of the polygon border
than its confirmed state, a change is pending from that first observation; it is
confirmed once the anchor has stayed on the new side for ``debounce_s`` seconds (the
first observation of the new side and the current one at least that far apart; with
``debounce_s: 0`` on the first frame). Going back before then cancels it, so flicker at
the border never produces events.

* ``zone_enter`` is emitted when entering is confirmed; the object's time inside starts
  at the first observation inside (``entered_at``), not at the confirmation.
* ``zone_exit`` (reason ``left``) is emitted when leaving is confirmed; ``dwell_s`` runs
  from ``entered_at`` to the first observation outside (``exited_at``).
* A track unseen for longer than ``lost_timeout_s`` is dropped; if it was inside, a
  ``zone_exit`` with reason ``lost`` is emitted at the frame that notices it, with
  ``exited_at`` the last time it was seen inside (or the first time it was seen outside,
  if leaving was pending).
* An object that appears already inside (a door within the zone) enters like any other.
* Occupancy counts tracks in the confirmed inside state, including ones missing for less
  than ``lost_timeout_s``; that keeps it steady through short detection gaps.
* Tentative tracks (``track_id == -1``) and unselected classes are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from oko.analytics.anchors import anchor_points
from oko.analytics.classes import ClassFilter, label_of, tracked_rows
from oko.analytics.config import ZoneConfig
from oko.analytics.geometry import points_in_polygon
from oko.analytics.tracks import TrackTable
from oko.core.detections import Detections
from oko.core.errors import ConfigError
from oko.core.events import Event

_EPS = 1e-9  # stream times are sums of float frame intervals


class PolygonZone:
    """One polygon zone on one channel; see the module docstring for the rules."""

    def __init__(self, config: ZoneConfig, frame_size: tuple[int, int] | None = None,
                 labels: Sequence[str] | None = None) -> None:
        """``frame_size`` is ``(width, height)``, needed when the config is normalised.

        With ``labels`` given, class names are checked now rather than on the first frame.
        """
        if config.normalized:
            if frame_size is None:
                raise ConfigError(f"zone {config.name!r} has normalized coordinates",
                                  "pass the frame size to convert them to pixels")
            config = config.to_pixels(*frame_size)
        self.config = config
        self.name = config.name
        self.polygon = np.asarray(config.polygon, dtype=np.float64)
        self._filter = ClassFilter(config.classes, f"zone {config.name!r}: classes")
        if labels is not None:
            self._filter.resolve(labels)
        self._labels: Sequence[str] | None = labels
        self.reset()

    def reset(self) -> None:
        """Forget every track and zero the counts (no events)."""
        self._tracks = TrackTable(
            inside=(bool, False),                # confirmed state
            pending_since=(np.float64, np.nan),  # first observation contradicting it
            entered_at=(np.float64, np.nan),     # first observation inside, while inside
            last_seen=(np.float64, -np.inf),
            class_id=(np.int64, -1),             # class at the last observation
        )
        self.t = 0.0
        self.enter_count = 0
        self.exit_count = 0
        self.by_class: dict[str, dict[str, int]] = {}
        self.occupancy = 0
        self.occupancy_by_class: dict[str, int] = {}

    def update(self, dets: Detections, t: float, frame_index: int = 0, channel_id: str = "",
               labels: Sequence[str] | None = None) -> list[Event]:
        """Feed one frame; returns ``zone_exit`` then ``zone_enter`` events, by track id."""
        self.t = float(t)
        if labels is not None:
            self._labels = labels
        emit = _Emitter(self, t, frame_index, channel_id)
        tab = self._tracks

        lost = (t - tab["last_seen"]) > self.config.lost_timeout_s
        if lost.any():
            gone = lost & tab["inside"]
            pending = tab["pending_since"][gone]
            until = np.where(np.isnan(pending), tab["last_seen"][gone], pending)
            emit.exits(tab.ids[gone], tab["class_id"][gone], tab["entered_at"][gone], until,
                       "lost")
            tab.keep(~lost)

        rows, tids, cids = tracked_rows(dets, self._filter, labels)
        if len(tids):
            inside_now = points_in_polygon(anchor_points(rows.xyxy, self.config.anchor),
                                           self.polygon)
            idx, found = tab.find(tids)
            if not found.all():
                tab.insert(tids[~found])
                idx = tab.find(tids)[0]
            since = tab["pending_since"][idx]
            differs = inside_now != tab["inside"][idx]
            since = np.where(differs, np.where(np.isnan(since), t, since), np.nan)
            confirm = differs & (t - since >= self.config.debounce_s - _EPS)
            leaving = confirm & ~inside_now
            entering = confirm & inside_now

            emit.exits(tids[leaving], cids[leaving], tab["entered_at"][idx[leaving]],
                       since[leaving], "left")
            tab["inside"][idx[confirm]] = inside_now[confirm]
            tab["entered_at"][idx[leaving]] = np.nan
            tab["entered_at"][idx[entering]] = since[entering]
            since[confirm] = np.nan
            tab["pending_since"][idx] = since
            tab["last_seen"][idx] = t
            tab["class_id"][idx] = cids
            emit.enters(tids[entering], cids[entering], tab["entered_at"][idx[entering]])

        self._recount()
        return emit.finish(self.occupancy)

    def _recount(self) -> None:
        tab = self._tracks
        classes, counts = np.unique(tab["class_id"][tab["inside"]], return_counts=True)
        self.occupancy = int(counts.sum())
        self.occupancy_by_class = {label_of(int(c), self._labels): int(n)
                                   for c, n in zip(classes.tolist(), counts.tolist())}

    def _tally(self, kind: str, class_id: int) -> str:
        label = label_of(class_id, self._labels)
        per = self.by_class.setdefault(label, {"enter": 0, "exit": 0})
        per[kind] += 1
        if kind == "enter":
            self.enter_count += 1
        else:
            self.exit_count += 1
        return label

    def dwell(self) -> dict[int, float]:
        """Seconds each track now inside has been inside, as of the last update."""
        tab = self._tracks
        inside = tab["inside"]
        secs = self.t - tab["entered_at"][inside]
        return {int(k): round(float(s), 3) for k, s in zip(tab.ids[inside], secs)}

    def counts(self) -> dict[str, Any]:
        """Occupancy and enter/exit totals, overall and per class label."""
        return {
            "name": self.name,
            "polygon": [[round(float(x), 1), round(float(y), 1)] for x, y in self.polygon],
            "occupancy": self.occupancy,
            "occupancy_by_class": dict(sorted(self.occupancy_by_class.items())),
            "enter": self.enter_count,
            "exit": self.exit_count,
            "by_class": {k: dict(v) for k, v in sorted(self.by_class.items())},
        }


class _Emitter:
    """Collects a frame's events; their ``occupancy`` is the zone's after the whole frame."""

    def __init__(self, zone: PolygonZone, t: float, frame_index: int, channel_id: str) -> None:
        self.zone, self.t, self.frame_index, self.channel_id = zone, t, frame_index, channel_id
        self._pending: list[tuple[str, dict[str, Any]]] = []

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        self._pending.append((kind, data))

    def finish(self, occupancy: int) -> list[Event]:
        return [Event(type=kind, channel_id=self.channel_id, timestamp=float(self.t),
                      frame_index=int(self.frame_index), data={**data, "occupancy": occupancy})
                for kind, data in self._pending]

    def exits(self, tids: np.ndarray, cids: np.ndarray, entered: np.ndarray,
              exited: np.ndarray, reason: str) -> None:
        for tid, cid, t0, t1 in zip(tids.tolist(), cids.tolist(), entered.tolist(),
                                    exited.tolist()):
            label = self.zone._tally("exit", cid)
            self._event("zone_exit", {
                "zone": self.zone.name, "track_id": tid, "class_id": cid, "label": label,
                "dwell_s": round(t1 - t0, 3), "entered_at": t0, "exited_at": t1,
                "reason": reason})

    def enters(self, tids: np.ndarray, cids: np.ndarray, entered: np.ndarray) -> None:
        for tid, cid, t0 in zip(tids.tolist(), cids.tolist(), entered.tolist()):
            label = self.zone._tally("enter", cid)
            self._event("zone_enter", {
                "zone": self.zone.name, "track_id": tid, "class_id": cid, "label": label,
                "entered_at": t0})
