"""The cross-camera identity service on hand-made unit embeddings: who may join whom
(channel, time window, transition table, overlap, busy global ids), forgetting, and the
transition config."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from oko.reid.identity import IdentityConfig, IdentityService, TrackRecord, Transition

D = 8


def unit(*values: float) -> np.ndarray:
    v = np.zeros(D, np.float32)
    v[:len(values)] = values
    return (v / np.linalg.norm(v)).astype(np.float32)


E0 = unit(1.0)                         # person "0"
NEAR = unit(0.95, np.sqrt(1 - 0.95**2))  # cos(E0, NEAR) = 0.95
FAR = unit(0.5, np.sqrt(1 - 0.25))     # cos(E0, FAR) = 0.5
OTHER = unit(0.0, 0.0, 1.0)            # orthogonal to all of them


def rec(channel: str, track_id: int, first: float, last: float, emb: np.ndarray
        ) -> TrackRecord:
    return TrackRecord(channel, track_id, first, last, emb)


def service(threshold: float = 0.8, **cfg) -> IdentityService:
    return IdentityService(IdentityConfig(**cfg), threshold)


def test_similar_track_on_other_channel_joins_its_global_id() -> None:
    ids = service()
    first = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    assert first.new and first.matched is None and first.similarity is None
    other = ids.assign(rec("A", 2, 0.0, 10.0, OTHER))  # another person, same time on A
    assert other.new and other.global_id != first.global_id
    d = ids.assign(rec("B", 7, 15.0, 20.0, NEAR))
    assert not d.new
    assert d.global_id == first.global_id
    assert d.matched is not None and (d.matched.channel, d.matched.track_id) == ("A", 1)
    assert d.similarity == pytest.approx(0.95, abs=1e-5)
    assert ids.global_id("B", 7) == first.global_id
    assert ids.global_id("B", 99) is None
    assert len(ids) == 3


def test_below_threshold_opens_new_id() -> None:
    ids = service(threshold=0.8)
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    d = ids.assign(rec("B", 1, 15.0, 20.0, FAR))  # similarity 0.5 < 0.8
    assert d.new and d.global_id != a.global_id and d.matched is None
    # the config's threshold overrides the embedder default passed to the constructor
    ids = IdentityService(IdentityConfig(threshold=0.4), 0.8)
    assert ids.threshold == pytest.approx(0.4)
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    d = ids.assign(rec("B", 1, 15.0, 20.0, FAR))
    assert not d.new and d.global_id == a.global_id
    assert d.similarity == pytest.approx(0.5, abs=1e-5)


def test_exactly_at_threshold_joins_just_above_does_not() -> None:
    v = unit(0.5, np.sqrt(0.75))
    sim = float(np.float32(v @ E0))
    ids = service(threshold=sim)
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("B", 1, 15.0, 20.0, v)).global_id == a.global_id
    ids = service(threshold=float(np.nextafter(np.float32(sim), np.float32(1))))
    ids.assign(rec("A", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("B", 1, 15.0, 20.0, v)).new


def test_best_candidate_wins() -> None:
    ids = service(threshold=0.3)
    far = ids.assign(rec("A", 1, 0.0, 10.0, FAR))
    near = ids.assign(rec("C", 1, 0.0, 10.0, NEAR))
    d = ids.assign(rec("B", 1, 15.0, 20.0, E0))
    assert not d.new and d.global_id == near.global_id != far.global_id
    assert d.similarity == pytest.approx(0.95, abs=1e-5)


def test_same_channel_never_joins() -> None:
    ids = service()
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    d = ids.assign(rec("A", 2, 15.0, 20.0, E0))  # identical vector, later, same camera
    assert d.new and d.global_id != a.global_id


def test_default_gap_window_without_transitions() -> None:
    ids = service(window_s=60.0, overlap_s=1.0)
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("B", 1, 69.0, 80.0, E0)).global_id == a.global_id  # gap 59 s
    ids = service(window_s=60.0, overlap_s=1.0)
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    late = ids.assign(rec("B", 1, 71.0, 80.0, E0))                            # gap 61 s
    assert late.new and late.global_id != a.global_id


def test_transitions_only_listed_pairs_within_window() -> None:
    cfg = dict(transitions=[Transition(**{"from": "A", "to": "B", "min_s": 5, "max_s": 20})],
               bidirectional=False, overlap_s=1.0)
    # inside [min_s, max_s]: joins
    ids = service(**cfg)
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("B", 1, 20.0, 30.0, NEAR)).global_id == a.global_id  # gap 10
    # gap too long (25 > max_s 20)
    ids = service(**cfg)
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("B", 1, 35.0, 40.0, NEAR)).new
    # gap too short (2 < min_s 5 - overlap 1)
    ids = service(**cfg)
    ids.assign(rec("A", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("B", 1, 12.0, 20.0, NEAR)).new
    # just inside the overlap tolerance below min_s (gap 4.5 >= 5 - 1)
    ids = service(**cfg)
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("B", 1, 14.5, 20.0, NEAR)).global_id == a.global_id
    # a pair not in the table: A -> C
    ids = service(**cfg)
    ids.assign(rec("A", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("C", 1, 20.0, 30.0, NEAR)).new
    # not bidirectional: B -> A is not allowed
    ids = service(**cfg)
    ids.assign(rec("B", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("A", 1, 20.0, 30.0, NEAR)).new


def test_bidirectional_transitions_also_hold_in_reverse() -> None:
    cfg = dict(transitions=[Transition(**{"from": "A", "to": "B", "min_s": 5, "max_s": 20})])
    ids = service(**cfg)
    b = ids.assign(rec("B", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("A", 1, 20.0, 30.0, NEAR)).global_id == b.global_id
    ids = service(**cfg)
    ids.assign(rec("B", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("A", 1, 50.0, 60.0, NEAR)).new  # reverse, but gap 40 > 20
    ids = service(**cfg)
    ids.assign(rec("B", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("C", 1, 20.0, 30.0, NEAR)).new  # B -> C still not listed


def test_tracks_overlapping_in_time_on_two_channels_do_not_join() -> None:
    ids = service(overlap_s=1.0)
    ids.assign(rec("A", 1, 0.0, 10.0, E0))
    # B's track starts 5 s before A's ended: both seen at once -> two people
    d = ids.assign(rec("B", 1, 5.0, 20.0, E0))
    assert d.new
    # an overlap within overlap_s is tolerated (clock jitter, touching views)
    ids = service(overlap_s=1.0)
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    assert ids.assign(rec("B", 1, 9.5, 20.0, E0)).global_id == a.global_id


def test_seen_extends_last_seen_for_overlap_checks() -> None:
    ids = service(overlap_s=1.0)
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    ids.seen("A", 1, 30.0)          # the track went on being seen after it was decided
    ids.seen("A", 1, 20.0)          # an older timestamp does not move it back
    assert ids.assign(rec("B", 1, 25.0, 40.0, E0)).new  # overlaps A's 0..30
    assert a.new


def test_global_id_busy_on_query_channel_is_not_joined() -> None:
    ids = service()
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    b = ids.assign(rec("B", 1, 15.0, 30.0, NEAR))   # A's person walked to B
    assert b.global_id == a.global_id
    # while that person is still on B (until 30 s), a second B track cannot be them too
    d = ids.assign(rec("B", 2, 20.0, 25.0, E0))
    assert d.new and d.global_id != a.global_id
    # after B's track ended (gap > overlap_s), another B track may be them again via A
    ids2 = service(window_s=300.0)
    a2 = ids2.assign(rec("A", 1, 0.0, 10.0, E0))
    ids2.assign(rec("B", 1, 15.0, 30.0, NEAR))
    assert ids2.assign(rec("B", 2, 40.0, 45.0, E0)).global_id == a2.global_id


def test_old_records_are_forgotten_beyond_window() -> None:
    ids = service(window_s=50.0)
    ids.assign(rec("A", 1, 0.0, 10.0, E0))
    assert len(ids) == 1
    d = ids.assign(rec("B", 1, 100.0, 110.0, E0))   # 90 s after A's last sighting
    assert d.new
    assert len(ids) == 1                             # A's record dropped
    assert ids.global_id("A", 1) is None
    assert ids.global_id("B", 1) == d.global_id


def test_forget_horizon_covers_longest_transition() -> None:
    t = Transition(**{"from": "A", "to": "B", "min_s": 0, "max_s": 500})
    ids = service(window_s=50.0, transitions=[t])
    a = ids.assign(rec("A", 1, 0.0, 10.0, E0))
    d = ids.assign(rec("B", 1, 400.0, 410.0, NEAR))  # beyond window_s, within max_s
    assert not d.new and d.global_id == a.global_id


def test_transition_validation_and_aliases() -> None:
    with pytest.raises(ValidationError, match="max_s 5.0 < min_s 10.0"):
        Transition(**{"from": "A", "to": "B", "min_s": 10, "max_s": 5})
    t = Transition.model_validate({"from": "gate", "to": "hall", "min_s": -2, "max_s": 30})
    assert (t.from_channel, t.to_channel, t.min_s, t.max_s) == ("gate", "hall", -2.0, 30.0)
    t = Transition(from_channel="x", to_channel="y")      # populate_by_name
    assert (t.min_s, t.max_s) == (0.0, 120.0)
    cfg = IdentityConfig.model_validate({"transitions": [{"from": "a", "to": "b"}]})
    assert cfg.transitions is not None and cfg.transitions[0].to_channel == "b"
    with pytest.raises(ValidationError):
        Transition.model_validate({"from": "a", "to": "b", "speed": 3})  # extra forbidden
    with pytest.raises(ValidationError):
        IdentityConfig(window_s=0)
