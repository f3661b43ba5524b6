"""Tracker behaviour on small hand-made scenes: ids, time limits, state, configs."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter

from oko.core import Detections
from oko.core.errors import ConfigError, UnknownNameError
from oko.track import (
    ByteTrackConfig,
    OCSortConfig,
    OCSortTracker,
    Tracker,
    TrackerConfig,
    create_tracker,
    tracker_names,
)

KINDS = ["ocsort", "bytetrack"]


def _box(cx: float, cy: float, w: float = 40.0, h: float = 100.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _dets(boxes: list[list[float]], scores: list[float] | None = None) -> Detections:
    if not boxes:
        return Detections.empty()
    scores = [0.9] * len(boxes) if scores is None else scores
    return Detections(xyxy=np.array(boxes), confidence=np.array(scores),
                      class_id=np.zeros(len(boxes), np.int32))


def _walk(tracker: Tracker, frames: list[list[list[float]]], fps: float = 30.0,
          t0: float = 0.0) -> list[np.ndarray]:
    """Feed one list of boxes per frame; return each frame's track ids (input order)."""
    return [tracker.update(_dets(boxes), t0 + i / fps).track_id for i, boxes in enumerate(frames)]


def _lost_and_found(kind: str, gap_s: float, fps: float = 30.0) -> tuple[int, np.ndarray]:
    """One object moving right, unseen for ``gap_s`` seconds, then seen again on its path.

    Returns its id before the gap and the ids it gets after it."""
    speed = 150.0  # px / s
    seen = 1.0     # seconds before and after the gap
    n_before, n_gap = round(seen * fps), round(gap_s * fps)
    times = np.arange(n_before * 2 + n_gap) / fps
    frames = [[] if n_before <= i < n_before + n_gap else [_box(100 + speed * t, 300)]
              for i, t in enumerate(times)]
    ids = _walk(create_tracker(kind), frames, fps)
    return int(ids[n_before - 1][0]), np.concatenate(ids[n_before + n_gap:])


# ----------------------------------------------------------------- ids and time limits
@pytest.mark.parametrize("kind", KINDS)
def test_ids_stay_with_two_objects_that_cross(kind: str) -> None:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(80):  # they pass each other around frame 37 (boxes overlap ~frames 33-42)
        a = np.array(_box(100 + 8 * i, 300)) + rng.normal(0, 1, 4)
        b = np.array(_box(700 - 8 * i, 320)) + rng.normal(0, 1, 4)
        frames.append([a.tolist(), b.tolist()])
    ids = np.array(_walk(create_tracker(kind), frames))
    assert (ids[:, 0] == ids[0, 0]).all() and (ids[:, 1] == ids[0, 1]).all()
    assert ids[0, 0] != ids[0, 1] and (ids > 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_track_lost_for_less_than_the_limit_keeps_its_id(kind: str) -> None:
    before, after = _lost_and_found(kind, gap_s=0.6)
    assert (after == before).all()


@pytest.mark.parametrize("kind", KINDS)
def test_track_lost_for_longer_than_the_limit_gets_a_new_id(kind: str) -> None:
    before, after = _lost_and_found(kind, gap_s=1.5)
    confirmed = after[after >= 0]
    assert len(confirmed) and (confirmed != before).all()
    assert after[0] == -1  # a new, tentative track at first


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fps", [10.0, 60.0])
def test_limits_are_in_seconds_not_frames(kind: str, fps: float) -> None:
    before, after = _lost_and_found(kind, gap_s=0.8, fps=fps)
    assert (after == before).all()
    before, after = _lost_and_found(kind, gap_s=1.3, fps=fps)
    assert (after[after >= 0] != before).all()


@pytest.mark.parametrize("kind", KINDS)
def test_tentative_tracks_have_id_minus_one(kind: str) -> None:
    tracker = create_tracker(kind)
    min_hits = tracker.config.min_hits
    frames = [[_box(100 + 5 * i, 300)] + ([_box(600, 500)] if i >= 10 else [])
              for i in range(20)]
    ids = _walk(tracker, frames)
    first = ids[0][0]
    assert first == 1 and all(f[0] == first for f in ids)
    newcomer = [int(f[1]) for f in ids[10:]]
    assert newcomer[:min_hits] == [-1] * min_hits
    assert newcomer[min_hits:] == [2] * (10 - min_hits)


@pytest.mark.parametrize("kind", KINDS)
def test_tracker_instances_do_not_share_id_counters(kind: str) -> None:
    one, two = create_tracker(kind), create_tracker(kind)
    for i in range(5):
        a = one.update(_dets([_box(100 + 5 * i, 300), _box(400, 300)]), i / 30)
        b = two.update(_dets([_box(900, 600 - 5 * i)]), i / 30)
    assert a.track_id.tolist() == [1, 2] and b.track_id.tolist() == [1]
    one.reset()
    assert one.update(_dets([_box(50, 50)]), 0.0).track_id.tolist() == [1]
    assert two.update(_dets([_box(900, 570)]), 5 / 30).track_id.tolist() == [1]


@pytest.mark.parametrize("kind", KINDS)
def test_reset_forgets_everything(kind: str) -> None:
    rng = np.random.default_rng(3)
    frames = [[_box(100 + 6 * i + rng.normal(), 300), _box(800 - 4 * i, 200 + rng.normal())]
              for i in range(30)]
    tracker = create_tracker(kind)
    first = _walk(tracker, frames)
    assert len(tracker) == 2
    tracker.reset()
    assert len(tracker) == 0
    # The same stream again, with a clock that starts over, gives the same answers.
    second = _walk(tracker, frames)
    assert all((a == b).all() for a, b in zip(first, second, strict=True))


# ----------------------------------------------------------------- output contract
@pytest.mark.parametrize("kind", KINDS)
def test_output_keeps_input_order_columns_and_drops_unused_rows(kind: str) -> None:
    tracker = create_tracker(kind)
    boxes = [_box(100, 100), _box(300, 100), _box(500, 100), _box(700, 100)]
    scores = [0.9, 0.05, 0.8, 0.95]  # 0.05: below every threshold
    for i in range(3):
        dets = Detections(xyxy=np.array(boxes) + 2 * i, confidence=np.array(scores),
                          class_id=np.array([3, 1, 2, 0]),
                          data={"name": np.array(["a", "b", "c", "d"])})
        out = tracker.update(dets, i / 30)
    assert out.data["name"].tolist() == ["a", "c", "d"]
    assert out.class_id.tolist() == [3, 2, 0]
    np.testing.assert_allclose(out.xyxy, (np.array(boxes) + 4)[[0, 2, 3]])
    assert len(set(out.track_id.tolist())) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_empty_frames_and_missing_confidence(kind: str) -> None:
    tracker = create_tracker(kind)
    out = tracker.update(Detections(xyxy=np.array([_box(100, 100)])), 0.0)
    assert out.track_id.tolist() == [1]  # no confidence: every box counts as confident
    out = tracker.update(Detections.empty(), 1 / 30)
    assert len(out) == 0 and out.track_id is not None
    assert len(tracker) == 1  # lost, not deleted


@pytest.mark.parametrize("kind", KINDS)
def test_degenerate_boxes_and_clock_going_back(kind: str) -> None:
    tracker = create_tracker(kind)
    tracker.update(_dets([_box(100, 100)]), 1.0)
    out = tracker.update(_dets([[5.0, 5.0, 5.0, 50.0], _box(101, 100)]), 1.0 + 1 / 30)
    assert out.track_id.tolist() == [1]  # the zero-width box is ignored
    out = tracker.update(_dets([_box(102, 100)]), 0.5)  # time went back: no crash
    assert out.track_id.tolist() == [1]
    with pytest.raises(ValueError, match="finite"):
        tracker.update(_dets([_box(102, 100)]), float("nan"))


# ----------------------------------------------------------------- registry and configs
def test_registry_and_create_tracker() -> None:
    assert tracker_names() == ["bytetrack", "ocsort"]
    assert isinstance(create_tracker("ocsort"), OCSortTracker)
    assert isinstance(create_tracker(None), OCSortTracker)
    tracker = create_tracker({"kind": "bytetrack", "max_age_s": 2.5})
    assert tracker.kind == "bytetrack" and tracker.config.max_age_s == 2.5
    cfg = OCSortConfig(inertia=0.0)
    assert create_tracker(cfg).config is cfg


def test_config_errors_name_the_problem() -> None:
    with pytest.raises(UnknownNameError, match="sort9"):
        create_tracker("sort9")
    with pytest.raises(ConfigError, match="max_age"):
        create_tracker({"kind": "ocsort", "max_age": 30})  # the frame-count name: a typo
    with pytest.raises(ConfigError, match="max_age_s"):
        create_tracker({"kind": "bytetrack", "max_age_s": -1})


def test_tracker_config_union_picks_the_class_by_kind() -> None:
    adapter = TypeAdapter(TrackerConfig)
    assert isinstance(adapter.validate_python({"kind": "bytetrack"}), ByteTrackConfig)
    assert isinstance(adapter.validate_python({"kind": "ocsort", "delta_t": 2}), OCSortConfig)
    for cls in (OCSortConfig, ByteTrackConfig):
        undocumented = [n for n, f in cls.model_fields.items() if not f.description]
        assert not undocumented, f"{cls.__name__}: {undocumented}"
