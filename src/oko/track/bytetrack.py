"""ByteTrack (Zhang et al., ECCV 2022), vectorised over tracks.

Per frame: predict every track with the DeepSORT-style Kalman filter, then

1. confirmed tracks (seen or lost) against high-score detections, by IoU times the
   detection score (``fuse_score``);
2. confirmed tracks still unmatched against low-score detections, by IoU: occluded
   objects keep their tracks through weak detections (``low_matches_lost``);
3. tentative tracks against the high-score detections left, by IoU times score;
   tentative tracks that miss are deleted at once;
4. high-score detections still left, above ``new_track_thresh``, start tentative tracks;
   tracks lost for longer than ``max_age_s`` are deleted.

As in the reference, a lost track's height velocity is zeroed before each prediction.
Deviations from the reference code, on purpose: ids are given at confirmation (no gaps),
not when a tentative track starts; the second association also offers low detections to
lost tracks, as the paper's Algorithm 1 does (the code restricts it to tracks seen in the
previous frame: ``low_matches_lost=False``); and the reference's removal of a lost track
and a followed one that overlap (IoU > 0.85) is left out: in crossings it deleted the
visible object's track whenever the occluded one was older.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from oko.core.detections import Detections
from oko.track.association import iou_matrix, linear_assignment
from oko.track.base import (
    LIMIT_TOLERANCE_S,
    BaseTrackerConfig,
    Columns,
    Tracker,
    empty_output,
    select_with_ids,
)
from oko.track.kalman import VELOCITY, XYAHKalman

KIND = "bytetrack"
_NONE = np.zeros(0, np.intp)


class ByteTrackConfig(BaseTrackerConfig):
    kind: Literal["bytetrack"] = Field(KIND, description="Tracker name: 'bytetrack'.")
    high_thresh: float = Field(
        0.5, ge=0, le=1, description="Detections with at least this confidence are 'high' "
        "and go to the first association.")
    low_thresh: float = Field(
        0.1, ge=0, le=1, description="Detections above this and below `high_thresh` are "
        "'low': they only continue tracks (second association); lower ones are ignored.")
    new_track_thresh: float = Field(
        0.6, ge=0, le=1, description="Least confidence for an unmatched high detection to "
        "start a new track.")
    match_iou: float = Field(
        0.2, gt=0, le=1, description="First association: least IoU (times the detection "
        "score when `fuse_score`) between a track and a high detection.")
    low_match_iou: float = Field(
        0.5, gt=0, le=1, description="Second association: least IoU between a track and a "
        "low detection.")
    tentative_match_iou: float = Field(
        0.3, gt=0, le=1, description="Least IoU (times score when `fuse_score`) for a "
        "tentative track to match a high detection.")
    min_hits: int = Field(
        1, ge=0, description="Consecutive frames a new track must be matched after the frame "
        "that started it before it is confirmed and gets an id (-1 until then); a tentative "
        "track that misses a frame is deleted. Tracks seen in the first `min_hits` frames "
        "after a reset are confirmed at once.")
    low_matches_lost: bool = Field(
        True, description="Offer low detections to lost tracks too in the second "
        "association; False offers them only to tracks seen in the previous frame.")
    fuse_score: bool = Field(
        True, description="Multiply IoU by the detection score in the high-score "
        "associations (the reference's setting except on MOT20).")


class ByteTrackTracker(Tracker):
    """ByteTrack; see the module docstring. State is one row per track in ``Columns``."""

    kind = KIND
    config_class = ByteTrackConfig
    config: ByteTrackConfig

    def __init__(self, config: ByteTrackConfig | None = None) -> None:
        self._kf = XYAHKalman()
        super().__init__(config)

    def reset(self) -> None:
        super().reset()
        self._tracks = Columns(
            x=((5, 4), np.float64, 0.0),    # Kalman state, see kalman.py
            track_id=((), np.int64, -1),
            streak=((), np.int64, 0),       # consecutive matched frames since start
            last_frame=((), np.int64, 0),
            last_t=((), np.float64, 0.0),
        )

    def __len__(self) -> int:
        """Number of live tracks, tentative ones included."""
        return len(self._tracks)

    # ----------------------------------------------------------------- update
    def update(self, dets: Detections, t: float) -> Detections:
        step = self._advance(t)
        tr = self._tracks
        if len(tr) and step > 0:
            lost = tr.last_frame < self._frame - 1
            if lost.any():
                tr.x[lost, VELOCITY, 3] = 0.0
            tr.x = self._kf.predict(tr.x, step)
        high, low = self._split(dets)
        if len(high) == 0 and len(low) == 0:
            if len(tr):
                self._end_frame(t, np.ones(len(tr), bool))
            return empty_output()

        xyxy = dets.xyxy.astype(np.float64)
        conf = np.ones(len(dets)) if dets.confidence is None else dets.confidence
        trk, det, new_high = self._associate(xyxy, conf, high, low)
        self._apply_matches(trk, xyxy[det], t)
        first_new = len(tr)
        new = high[new_high][conf[high[new_high]] >= self.config.new_track_thresh]
        self._start_tracks(xyxy[new], t)
        started = np.arange(first_new, len(tr))
        self._confirm(np.concatenate([trk, started]))

        per_det = np.full(len(dets), -2, np.int64)
        per_det[det] = tr.track_id[trk]
        per_det[new] = tr.track_id[started]
        rows = np.flatnonzero(per_det > -2)
        out = select_with_ids(dets, rows, per_det[rows])
        seen = np.zeros(len(tr), bool)
        seen[trk] = True
        seen[started] = True
        self._end_frame(t, ~seen)
        return out

    def _split(self, dets: Detections) -> tuple[np.ndarray, np.ndarray]:
        """Indices of high and low detections (boxes of positive finite size only)."""
        if len(dets) == 0:
            return _NONE, _NONE
        xyxy = dets.xyxy
        ok = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        if dets.confidence is None:
            return np.flatnonzero(ok), _NONE
        conf = dets.confidence
        is_high = conf >= self.config.high_thresh
        return (np.flatnonzero(ok & is_high),
                np.flatnonzero(ok & ~is_high & (conf > self.config.low_thresh)))

    # ----------------------------------------------------------------- association
    def _associate(self, xyxy: np.ndarray, conf: np.ndarray, high: np.ndarray,
                   low: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(track rows, detection indices) matched, and the high positions left over."""
        tr = self._tracks
        cfg = self.config
        left_high = np.ones(len(high), bool)
        if len(tr) == 0:
            return _NONE, _NONE, left_high
        pred = self._kf.decode(tr.x)
        confirmed = tr.track_id >= 0
        pool = np.flatnonzero(confirmed)
        trk1, det1 = self._match(pred[pool], xyxy[high], conf[high], cfg.match_iou,
                                 cfg.fuse_score)
        trk1, det1 = pool[trk1], high[det1]

        # Second: confirmed tracks still unmatched against low detections.
        left = confirmed.copy() if cfg.low_matches_lost else (
            confirmed & (tr.last_frame == self._frame - 1))
        left[trk1] = False
        rest = np.flatnonzero(left)
        trk2, det2 = self._match(pred[rest], xyxy[low], conf[low], cfg.low_match_iou, False)
        trk2, det2 = rest[trk2], low[det2]

        # Third: tentative tracks against the high detections nobody took.
        left_high[np.searchsorted(high, det1)] = False
        remaining = high[left_high]
        tentative = np.flatnonzero(~confirmed)
        trk3, det3 = self._match(pred[tentative], xyxy[remaining], conf[remaining],
                                 cfg.tentative_match_iou, cfg.fuse_score)
        trk3, det3 = tentative[trk3], remaining[det3]
        left_high[np.searchsorted(high, det3)] = False
        return (np.concatenate([trk1, trk2, trk3]), np.concatenate([det1, det2, det3]),
                left_high)

    @staticmethod
    def _match(pred: np.ndarray, boxes: np.ndarray, conf: np.ndarray, threshold: float,
               fuse: bool) -> tuple[np.ndarray, np.ndarray]:
        if len(pred) == 0 or len(boxes) == 0:
            return _NONE, _NONE
        sim = iou_matrix(pred, boxes)
        if fuse:
            sim *= conf
        return linear_assignment(sim, sim >= threshold)

    # ----------------------------------------------------------------- state changes
    def _apply_matches(self, trk: np.ndarray, z: np.ndarray, t: float) -> None:
        if len(trk) == 0:
            return
        tr = self._tracks
        x = tr.x[trk]
        self._kf.update(x, z)
        tr.x[trk] = x
        tr.streak[trk] += 1  # zeroed when a track misses a frame
        tr.last_frame[trk] = self._frame
        tr.last_t[trk] = t

    def _start_tracks(self, boxes: np.ndarray, t: float) -> None:
        n = len(boxes)
        if n == 0:
            return
        self._tracks.append(n, x=self._kf.initiate(boxes),
                            last_frame=np.full(n, self._frame, np.int64), last_t=np.full(n, t))

    def _confirm(self, rows: np.ndarray) -> None:
        tr = self._tracks
        min_hits = self.config.min_hits
        ok = tr.track_id[rows] < 0
        if self._frame > min_hits:
            ok &= tr.streak[rows] >= min_hits
        if ok.any():
            tr.track_id[rows[ok]] = self._allocate_ids(int(ok.sum()))

    def _end_frame(self, t: float, missed: np.ndarray) -> None:
        """Zero streaks of tracks that missed; delete missed tentative and expired tracks."""
        tr = self._tracks
        tr.streak[missed] = 0
        dead = missed & (tr.track_id < 0)
        dead |= t - tr.last_t > self.config.max_age_s + LIMIT_TOLERANCE_S
        if dead.any():
            tr.keep(~dead)
