"""OC-SORT (Cao et al., "Observation-Centric SORT", CVPR 2023), vectorised over tracks.

Per frame: predict every track with the Kalman filter, then

1. associate confident detections with the predicted boxes by IoU plus the
   observation-centric momentum term (OCM): how well the direction from a track's
   observation ``delta_t`` frames ago to the detection agrees with the track's own
   observed direction, weighted by ``inertia`` and the detection's score;
2. observation-centric recovery (OCR): tracks still unmatched get a second chance by
   IoU between their *last observation* and the detections left over;
3. observation-centric re-update (ORU): a track found again after missing frames
   restores the filter state saved when it was lost and re-runs the filter along a
   virtual straight path from its last observation to the new one, so the velocity
   error accumulated while it coasted is undone;
4. unmatched confident detections start tentative tracks; tracks lost for longer than
   ``max_age_s`` are deleted.

Deviations from the reference code, on purpose: ids are given at confirmation (no gaps
from tentative tracks that die), and a confirmed track stays confirmed through misses
instead of needing ``min_hits`` new consecutive matches to be reported again.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from oko.core.detections import Detections
from oko.track.association import (
    assign_pairs,
    direction_consistency,
    iou_matrix,
    linear_assignment,
    one_to_one,
    row_directions,
)
from oko.track.base import (
    LIMIT_TOLERANCE_S,
    BaseTrackerConfig,
    Columns,
    Tracker,
    empty_output,
    select_with_ids,
)
from oko.track.kalman import XYSRKalman

KIND = "ocsort"
_NONE = np.zeros(0, np.intp)


class OCSortConfig(BaseTrackerConfig):
    kind: Literal["ocsort"] = Field(KIND, description="Tracker name: 'ocsort'.")
    det_thresh: float = Field(
        0.6, ge=0, le=1, description="Detections with at least this confidence are "
        "associated and may start tracks; lower ones are ignored.")
    iou_threshold: float = Field(
        0.3, gt=0, le=1, description="Least IoU for a detection to match a track, in both "
        "the first association and the recovery (OCR) step.")
    inertia: float = Field(
        0.2, ge=0, description="Weight of the direction-consistency (OCM) term added to the "
        "IoU in the first association; 0 turns it off.")
    delta_t: int = Field(
        3, ge=1, description="How many frames back the observation is that motion directions "
        "are measured from (OCM).")
    min_hits: int = Field(
        3, ge=0, description="Consecutive frames a new track must be matched after the frame "
        "that started it before it is confirmed and gets an id (-1 until then). Tracks "
        "seen in the first `min_hits` frames after a reset are confirmed at once.")


class OCSortTracker(Tracker):
    """OC-SORT; see the module docstring. State is one row per track in ``Columns``."""

    kind = KIND
    config_class = OCSortConfig
    config: OCSortConfig

    def __init__(self, config: OCSortConfig | None = None) -> None:
        self._kf = XYSRKalman()
        super().__init__(config)
        self._lookback = np.arange(self.config.delta_t, 0, -1)  # frames back, oldest first

    def reset(self) -> None:
        super().reset()
        d = self.config.delta_t
        self._tracks = Columns(
            x=((5, 4), np.float64, 0.0),           # Kalman state, see kalman.py
            frozen=((5, 4), np.float64, 0.0),      # state when the track was lost (ORU)
            last_box=((4,), np.float64, 0.0),      # last observation, xyxy
            hist_box=((d, 4), np.float64, 0.0),    # last delta_t observations, ring by frame
            hist_frame=((d,), np.int64, -1),
            velocity=((2,), np.float64, 0.0),      # unit direction (dy, dx); 0 when unknown
            track_id=((), np.int64, -1),
            streak=((), np.int64, 0),              # consecutive matched frames since start
            last_frame=((), np.int64, 0),
            last_t=((), np.float64, 0.0),
        )
        self._previous = np.zeros((0, 4))

    def __len__(self) -> int:
        """Number of live tracks, tentative ones included."""
        return len(self._tracks)

    # ----------------------------------------------------------------- update
    def update(self, dets: Detections, t: float) -> Detections:
        step = self._advance(t)
        tr = self._tracks
        if len(tr) and step > 0:
            tr.x = self._kf.predict(tr.x, step)
        high = self._usable(dets)
        if len(high) == 0:
            if len(tr):
                self._end_frame(t)
            return empty_output()

        boxes = dets.xyxy[high].astype(np.float64)
        scores = None if dets.confidence is None else dets.confidence[high].astype(np.float64)
        trk, det = self._associate(boxes, scores)
        self._apply_matches(trk, boxes[det], t)
        new = np.ones(len(high), bool)
        new[det] = False
        first_new = len(tr)
        self._start_tracks(boxes[new], t)
        started = np.arange(first_new, len(tr))
        self._confirm(np.concatenate([trk, started]))

        # One id per detection row, -2 where no track took the detection.
        per_det = np.full(len(dets), -2, np.int64)
        per_det[high[det]] = tr.track_id[trk]
        per_det[high[new]] = tr.track_id[started]
        rows = np.flatnonzero(per_det > -2)
        out = select_with_ids(dets, rows, per_det[rows])
        self._end_frame(t)
        return out

    def _usable(self, dets: Detections) -> np.ndarray:
        """Indices of detections confident enough, with a positive finite size."""
        if len(dets) == 0:
            return np.zeros(0, np.intp)
        xyxy = dets.xyxy
        ok = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        if dets.confidence is not None:
            ok &= dets.confidence >= self.config.det_thresh
        return np.flatnonzero(ok)

    # ----------------------------------------------------------------- association
    def _associate(self, boxes: np.ndarray, scores: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """(track rows, detection indices) matched by OCM, then by OCR."""
        tr = self._tracks
        if len(tr) == 0:
            return _NONE, _NONE
        cfg = self.config
        iou = iou_matrix(self._kf.decode(tr.x), boxes)
        self._previous = prev = self._previous_boxes()
        trk, det = np.nonzero(iou >= cfg.iou_threshold)
        if not one_to_one(trk, det):
            # The momentum term can only change the outcome where tracks and detections
            # compete, so it is computed only then, for the candidate pairs.
            gain = iou[trk, det]
            if cfg.inertia > 0:
                weight = cfg.inertia if scores is None else cfg.inertia * scores[det]
                gain += weight * direction_consistency(tr.velocity[trk], prev[trk], boxes[det])
            trk, det = assign_pairs(trk, det, gain, iou.shape)
        if len(trk) == len(tr) or len(det) == len(boxes):
            return trk, det

        # OCR: the left-over tracks' last observations against the left-over detections.
        left_t = np.ones(len(tr), bool)
        left_t[trk] = False
        left_d = np.ones(len(boxes), bool)
        left_d[det] = False
        lt, ld = np.flatnonzero(left_t), np.flatnonzero(left_d)
        iou2 = iou_matrix(tr.last_box[lt], boxes[ld])
        t2, d2 = linear_assignment(iou2, iou2 >= cfg.iou_threshold)
        if len(t2) == 0:
            return trk, det
        return np.concatenate([trk, lt[t2]]), np.concatenate([det, ld[d2]])

    def _previous_boxes(self) -> np.ndarray:
        """Each track's observation from ``delta_t`` frames ago (the oldest one within the
        last ``delta_t`` frames), else its last observation: the OCM reference point."""
        tr = self._tracks
        wanted = self._frame - self._lookback
        slots = wanted % self.config.delta_t
        found = tr.hist_frame[:, slots] == wanted
        first = found.argmax(1)
        rows = np.arange(len(tr))
        return np.where(found[rows, first, None], tr.hist_box[rows, slots[first]], tr.last_box)

    # ----------------------------------------------------------------- state changes
    def _apply_matches(self, trk: np.ndarray, z: np.ndarray, t: float) -> None:
        """Kalman update (with ORU after a gap), direction, history of matched tracks."""
        if len(trk) == 0:
            return
        tr = self._tracks
        f = self._frame
        x = tr.x[trk]
        gap = f - tr.last_frame[trk]
        refound = gap > 1
        if refound.any():
            x[refound] = self._reupdate(trk[refound], z[refound], gap[refound], t)
        self._kf.update(x, z)
        tr.x[trk] = x
        tr.velocity[trk] = row_directions(self._previous[trk], z)
        slot = f % self.config.delta_t
        tr.hist_box[trk, slot] = z
        tr.hist_frame[trk, slot] = f
        tr.last_box[trk] = z
        tr.streak[trk] += 1  # a lost track's streak was zeroed when it was lost
        tr.last_frame[trk] = f
        tr.last_t[trk] = t

    def _reupdate(self, rows: np.ndarray, z: np.ndarray, gap: np.ndarray,
                  t: float) -> np.ndarray:
        """ORU: states of re-found tracks, filtered from the state saved when each was lost
        along a straight path of virtual observations, one per missed frame, up to (not
        including) the new observation ``z``, which the caller applies."""
        tr = self._tracks
        longest = int(gap.max())
        order = None
        if gap.min() != longest:
            # Longest gaps first, so the tracks still replaying at step j are a prefix.
            order = np.argsort(-gap, kind="stable")
            rows, z, gap = rows[order], z[order], gap[order]
        x = tr.frozen[rows]
        start = tr.last_box[rows]
        # All virtual observations at once: (tracks, missed frames, 4), encoded.
        frac = np.arange(1, longest) / gap[:, None]
        virtual = start[:, None] + (z - start)[:, None] * frac[:, :, None]
        zv = self._kf.encode(virtual.reshape(-1, 4)).reshape(virtual.shape)
        # Missed frames are taken as evenly spaced between the two observations (exactly
        # one frame apart while the stream has run at the nominal rate).
        step: float | np.ndarray = 1.0
        if not self._nominal:
            step = (t - tr.last_t[rows]) * self.config.kalman_fps / gap
        for j in range(longest - 1):
            k = len(gap) if order is None else int(np.count_nonzero(gap > j + 1))
            xk = x[:k]  # a view: the in-place update below lands in x
            self._kf.update_encoded(xk, zv[:k, j])
            x[:k] = self._kf.predict(xk, step if isinstance(step, float) else step[:k])
        if order is None:
            return x
        out = np.empty_like(x)
        out[order] = x
        return out

    def _start_tracks(self, boxes: np.ndarray, t: float) -> None:
        n = len(boxes)
        if n == 0:
            return
        d = self.config.delta_t
        hist_box = np.zeros((n, d, 4))
        hist_frame = np.full((n, d), -1, np.int64)
        slot = self._frame % d
        hist_box[:, slot] = boxes
        hist_frame[:, slot] = self._frame
        self._tracks.append(
            n, x=self._kf.initiate(boxes), last_box=boxes, hist_box=hist_box,
            hist_frame=hist_frame, last_frame=np.full(n, self._frame, np.int64),
            last_t=np.full(n, t))

    def _confirm(self, rows: np.ndarray) -> None:
        """Give ids to tentative tracks among ``rows`` that have earned one."""
        tr = self._tracks
        min_hits = self.config.min_hits
        ok = tr.track_id[rows] < 0
        if self._frame > min_hits:
            ok &= tr.streak[rows] >= min_hits
        if ok.any():
            tr.track_id[rows[ok]] = self._allocate_ids(int(ok.sum()))

    def _end_frame(self, t: float) -> None:
        """Save the state of tracks lost this frame (for ORU); delete expired tracks."""
        tr = self._tracks
        # Matched tracks now have last_frame == frame, so this is exactly the first miss.
        just_lost = tr.last_frame == self._frame - 1
        if just_lost.any():
            tr.frozen[just_lost] = tr.x[just_lost]
            tr.streak[just_lost] = 0
        limit = self.config.max_age_s + LIMIT_TOLERANCE_S
        if t - tr.last_t.min() > limit:
            tr.keep(t - tr.last_t <= limit)
