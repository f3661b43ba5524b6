"""Line crossing: hand-made trajectories with exact expected counts."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from oko.analytics import (
    Analytics,
    Anchor,
    LineConfig,
    LineCounter,
    anchor_points,
    count_result,
    parse_configs,
    segment_position,
    signed_distance,
)
from oko.core import ConfigError, Detections, Event

LABELS = ["person", "car"]


def dets(*objs: tuple) -> Detections:
    """Objects as (track_id, x, y[, class_id]) with (x, y) the box's bottom centre."""
    if not objs:
        return Detections(xyxy=np.zeros((0, 4)), class_id=np.zeros(0),
                          track_id=np.zeros(0), confidence=np.zeros(0))
    rows = [(o[0], o[1], o[2], o[3] if len(o) > 3 else 0) for o in objs]
    tid, x, y, cls = (np.array(c, dtype=np.float64) for c in zip(*rows))
    xyxy = np.stack([x - 10, y - 40, x + 10, y], axis=1)
    return Detections(xyxy=xyxy, class_id=cls, track_id=tid, confidence=np.full(len(x), 0.9))


def run(counter: LineCounter, frames: list[list[tuple]], dt: float = 0.1,
        labels: list[str] | None = LABELS) -> list[Event]:
    events = []
    for k, objs in enumerate(frames):
        events += counter.update(dets(*objs), t=k * dt, frame_index=k, channel_id="cam1",
                                 labels=labels)
    return events


def path(tid: int, xs, ys, cls: int = 0) -> list[list[tuple]]:
    """One track, one frame per point."""
    return [[(tid, float(x), float(y), cls)] for x, y in zip(xs, ys, strict=True)]


def hline(**kw) -> LineCounter:
    """Horizontal line y=100 from x=0 to x=200, drawn left to right: 'in' is downwards."""
    return LineCounter(LineConfig(name="gate", start=(0, 100), end=(200, 100), **kw))


# ---------------------------------------------------------------- geometry and anchors
def test_signed_distance_sign_and_segment_position():
    pts = np.array([[50, 150], [50, 50], [250, 100], [-20, 90]])
    d = signed_distance(pts, np.array([0, 100]), np.array([200, 100]))
    np.testing.assert_allclose(d, [50, -50, 0, -10])  # below the line = right-hand side
    pos = segment_position(pts, np.array([0, 100]), np.array([200, 100]))
    np.testing.assert_allclose(pos, [0.25, 0.25, 1.25, -0.1])


def test_anchor_points():
    box = np.array([[10, 20, 30, 60]], dtype=np.float32)
    expected = {Anchor.CENTER: (20, 40), Anchor.BOTTOM_CENTER: (20, 60),
                Anchor.TOP_CENTER: (20, 20), Anchor.CENTER_LEFT: (10, 40),
                Anchor.CENTER_RIGHT: (30, 40), Anchor.TOP_LEFT: (10, 20),
                Anchor.BOTTOM_RIGHT: (30, 60)}
    for anchor, xy in expected.items():
        np.testing.assert_allclose(anchor_points(box, anchor), [xy])
    assert anchor_points(np.zeros((0, 4)), "center").shape == (0, 2)


# ---------------------------------------------------------------- straight crossings
def test_straight_crossing_in_then_out():
    line = hline(hysteresis_px=5)
    down = path(1, [100] * 11, range(50, 151, 10))
    up = path(1, [100] * 11, range(150, 49, -10))
    events = run(line, down + up)
    assert [e.data["direction"] for e in events] == ["in", "out"]
    assert (line.in_count, line.out_count) == (1, 1)
    first = events[0]
    assert first.type == "line_crossing" and first.channel_id == "cam1"
    assert first.frame_index == 6  # y=110 is the first point beyond the 5 px band
    assert first.timestamp == pytest.approx(0.6)
    assert first.data == {"line": "gate", "direction": "in", "track_id": 1, "class_id": 0,
                          "label": "person", "point": [100.0, 100.0], "in": 1, "out": 0}
    assert events[1].data["point"] == [100.0, 100.0] and events[1].data["out"] == 1
    assert Event.from_json(first.to_json()).data == first.data


def test_direction_convention_on_a_vertical_line():
    # Start at the top, end at the bottom: the observer looks down the image, so the
    # right-hand side is the image's left. Moving from image-right to image-left is "in".
    line = LineCounter(LineConfig(name="v", start=(100, 0), end=(100, 200), hysteresis_px=2))
    events = run(line, path(7, range(150, 49, -10), [100] * 11))
    assert [e.data["direction"] for e in events] == ["in"]
    # Swapping start and end swaps the directions.
    line = LineCounter(LineConfig(name="v", start=(100, 200), end=(100, 0), hysteresis_px=2))
    events = run(line, path(7, range(150, 49, -10), [100] * 11))
    assert [e.data["direction"] for e in events] == ["out"]


def test_two_classes_and_class_filter():
    frames = []
    for k in range(11):
        y_down, y_up = 50 + 10 * k, 150 - 10 * k
        frames.append([(1, 40, y_down, 0), (2, 80, y_down, 1), (3, 120, y_up, 1),
                       (4, 160, y_down, 1)])
    every = hline(hysteresis_px=5)
    run(every, frames)
    assert every.counts() == {"name": "gate", "line": [0.0, 100.0, 200.0, 100.0], "in": 3,
                              "out": 1, "by_class": {"car": {"in": 2, "out": 1},
                                                     "person": {"in": 1, "out": 0}}}
    cars = hline(hysteresis_px=5, classes=["car"])
    events = run(cars, frames)
    assert sorted(e.data["track_id"] for e in events) == [2, 3, 4]
    assert cars.counts()["by_class"] == {"car": {"in": 2, "out": 1}}
    people = hline(hysteresis_px=5, classes=["0"])  # a class id as a name
    run(people, frames)
    assert (people.in_count, people.out_count) == (1, 0)


# ---------------------------------------------------------------- hysteresis
WOBBLE = [50, 90, 97, 102, 98, 104, 96, 103]  # left, then jitter within +-5 of y=100


def test_wobble_inside_band_counts_nothing_then_once():
    line = hline(hysteresis_px=5)
    assert run(line, path(1, [100] * len(WOBBLE), WOBBLE)) == []
    line.reset()
    ys = WOBBLE + [106, 103, 99, 104, 107, 98, 108, 101]  # beyond once, then jitter again
    events = run(line, path(1, [100] * len(ys), ys))
    assert [(e.frame_index, e.data["direction"]) for e in events] == [(8, "in")]
    assert (line.in_count, line.out_count) == (1, 0)


def test_without_hysteresis_the_same_wobble_counts_every_flip():
    line = hline(hysteresis_px=0)
    events = run(line, path(1, [100] * len(WOBBLE), WOBBLE))
    assert [e.data["direction"] for e in events] == ["in", "out", "in", "out", "in"]


def test_excursions_beyond_the_band_on_both_sides_count_each_time():
    line = hline(hysteresis_px=5)
    ys = [90, 106, 94, 106]
    events = run(line, path(1, [100] * len(ys), ys))
    assert [e.data["direction"] for e in events] == ["in", "out", "in"]


def test_track_first_seen_inside_band_gets_no_count():
    line = hline(hysteresis_px=5)
    assert run(line, path(1, [100] * 4, [98, 102, 110, 120])) == []
    assert run(line, path(2, [100] * 3, [120, 110, 90]))[0].data["direction"] == "out"


# ---------------------------------------------------------------- lost and recovered
def test_lost_and_recovered_on_the_same_side_counts_nothing():
    line = hline(hysteresis_px=5)
    frames = path(1, [100] * 3, [70, 80, 90]) + [[]] * 10 + path(1, [100] * 3, [92, 85, 60])
    assert run(line, frames) == []


def test_lost_and_recovered_on_the_other_side_counts_once():
    line = hline(hysteresis_px=5)
    frames = path(1, [100] * 3, [70, 80, 90]) + [[]] * 10 + path(1, [100] * 3, [120, 130, 140])
    events = run(line, frames)
    assert [(e.frame_index, e.data["direction"]) for e in events] == [(13, "in")]
    assert events[0].data["point"] == [100.0, 100.0]


def test_recovered_inside_the_band_counts_when_it_leaves_on_the_other_side():
    line = hline(hysteresis_px=5)
    frames = path(1, [100] * 2, [80, 90]) + [[]] * 5 + path(1, [100] * 3, [103, 101, 120])
    events = run(line, frames)
    assert [(e.frame_index, e.data["direction"]) for e in events] == [(9, "in")]


def test_forgotten_track_is_pruned_and_starts_afresh():
    line = hline(hysteresis_px=5, forget_after_s=1.0)
    frames = path(1, [100], [80]) + [[(2, 50, 20)]] * 11 + path(1, [100], [120])
    assert run(line, frames) == []  # 1.2 s unseen > 1.0 s: no side remembered
    assert line.tracked == 2
    line.update(dets(), t=10.0)
    assert line.tracked == 0


# ---------------------------------------------------------------- segment extent
def test_crossing_beside_the_segment_does_not_count():
    line = hline(hysteresis_px=5)
    assert run(line, path(1, [300] * 11, range(50, 151, 10))) == []
    assert run(line, path(2, [-5] * 11, range(150, 49, -10))) == []
    assert line.counts()["in"] == 0 and line.counts()["out"] == 0


def test_extent_is_judged_where_the_path_crosses_not_where_the_side_is_confirmed():
    line = hline(hysteresis_px=5)
    # Crosses at x~177 (inside the extent), walks along the band past the end, leaves at
    # x=260 below the line: counted.
    inside_first = path(1, [150, 180, 250, 260], [90, 101, 102, 115])
    assert [e.data["direction"] for e in run(line, inside_first)] == ["in"]
    # Crosses at x=250 (beside the segment), walks along the band into the extent and
    # leaves below the line at x=150: not counted.
    line.reset()
    beside_first = path(2, [250, 250, 180, 150], [90, 102, 103, 115])
    assert run(line, beside_first) == []


def test_diagonal_line():
    # From (0,0) to (200,200): the right-hand side is below-left of the diagonal.
    line = LineCounter(LineConfig(name="diag", start=(0, 0), end=(200, 200), hysteresis_px=3))
    xs = np.arange(150, 49, -10)
    events = run(line, path(1, xs, 200 - xs))  # along x + y = 200, crossing at (100, 100)
    assert [(e.data["direction"], e.data["point"]) for e in events] == [("in", [100.0, 100.0])]
    back = run(line, path(2, 200 - xs, xs))
    assert [e.data["direction"] for e in back] == ["out"]
    # The same motion along x + y = 500 crosses the extension at (250, 250): no count.
    xs = np.arange(300, 199, -10)
    assert run(line, path(3, xs, 500 - xs)) == []
    assert (line.in_count, line.out_count) == (1, 1)


def test_many_tracks_at_once_match_a_per_track_ground_truth():
    rng = np.random.default_rng(0)
    n = 400
    xs = rng.uniform(-100, 300, n)
    downward = rng.random(n) < 0.5
    frames = []
    for k in range(21):
        y = np.where(downward, 0 + 10 * k, 200 - 10 * k)
        frames.append([(i, float(xs[i]), float(y[i]), i % 2) for i in range(n)])
    line = hline(hysteresis_px=5)
    events = run(line, frames)
    within = (xs >= 0) & (xs <= 200)
    assert line.in_count == int(np.count_nonzero(within & downward))
    assert line.out_count == int(np.count_nonzero(within & ~downward))
    assert len(events) == int(np.count_nonzero(within))
    assert sorted(e.data["track_id"] for e in events) == np.flatnonzero(within).tolist()


# ---------------------------------------------------------------- inputs that are ignored
def test_tentative_ids_are_ignored():
    line = hline(hysteresis_px=5)
    frames = [[(-1, 100, y), (-1, 50, y), (5, 150, y)] for y in range(50, 151, 10)]
    events = run(line, frames)
    assert [e.data["track_id"] for e in events] == [5]
    assert line.tracked == 1


def test_detections_without_track_ids_count_nothing():
    line = hline(hysteresis_px=5)
    for k, y in enumerate(range(50, 151, 10)):
        plain = Detections(xyxy=np.array([[90, y - 40, 110, y]]), class_id=np.array([0]))
        assert line.update(plain, t=k * 0.1) == []


def test_repeated_track_id_in_one_frame_uses_the_first_row():
    line = hline(hysteresis_px=5)
    frames = [[(1, 100, y), (1, 100, 50)] for y in range(50, 151, 10)]
    assert [e.data["direction"] for e in run(line, frames)] == ["in"]


# ---------------------------------------------------------------- coordinates and config
def test_normalized_coordinates_are_converted_once():
    cfg = LineConfig(name="n", normalized=True, start=(0, 0.5), end=(1, 0.5), hysteresis_px=5)
    with pytest.raises(ConfigError, match="normalized"):
        LineCounter(cfg)
    line = LineCounter(cfg, frame_size=(640, 480))
    assert line.counts()["line"] == [0.0, 240.0, 640.0, 240.0]
    events = run(line, path(1, [320] * 5, [220, 230, 240, 250, 260]))
    assert [e.data["point"] for e in events] == [[320.0, 240.0]]
    assert cfg.to_pixels(640, 480).start == (0.0, 240.0)
    px = LineConfig(name="p", start=(10, 20), end=(30, 40))
    assert px.to_pixels(640, 480) is px


def test_line_config_errors_name_the_field():
    with pytest.raises(ValidationError, match="end must differ from start"):
        LineConfig(name="a", start=(5, 5), end=(5, 5))
    cases = [
        ({"name": "a", "start": [5, 5], "end": [5, 5]}, "lines[0].end", "zero length"),
        ({"name": "a", "normalized": True, "start": [0, 0.5], "end": [640, 0.5]},
         "lines[0].end", "outside 0..1"),
        ({"name": "a", "start": [0, 0], "end": [1, 1], "hysteresis": 3},
         "lines[0].hysteresis", "Extra inputs"),
        ({"name": "a", "start": [0, 0], "end": [1, 1], "hysteresis_px": -1},
         "lines[0].hysteresis_px", "greater than or equal"),
        ({"name": "a", "start": [0, 0], "end": [1, 1], "classes": []},
         "lines[0].classes", "must not be empty"),
        ({"name": "a", "start": [0, 0, 3], "end": [1, 1]}, "lines[0].start", ""),
        ({"name": "a", "start": [0, 0], "end": [1, 1], "anchor": "feet"},
         "lines[0].anchor", "bottom_center"),
    ]
    for data, where, what in cases:
        with pytest.raises(ConfigError) as info:
            parse_configs(LineConfig, [data], "lines")
        assert where in str(info.value) and what in str(info.value), str(info.value)
    twice = [{"name": "a", "start": [0, 0], "end": [1, 1]}] * 2
    with pytest.raises(ConfigError, match="names must be unique, repeated: a"):
        parse_configs(LineConfig, twice, "lines")


def test_unknown_class_name_is_a_config_error_naming_the_line():
    cfg = LineConfig(name="gate", start=(0, 0), end=(1, 1), classes=["person", "bus"])
    with pytest.raises(ConfigError, match="line 'gate': classes: unknown class 'bus'"):
        LineCounter(cfg, labels=LABELS)
    counter = LineCounter(cfg)  # labels not known yet: checked on the first frame
    with pytest.raises(ConfigError, match="'bus'"):
        counter.update(dets((1, 5, 5)), t=0.0, labels=LABELS)


# ---------------------------------------------------------------- aggregate and result
def test_analytics_runs_lines_and_count_result():
    analytics = Analytics(
        lines=[{"name": "gate", "start": [0, 0.5], "end": [1, 0.5], "normalized": True,
                "hysteresis_px": 5},
               LineConfig(name="cars", start=(0, 100), end=(200, 100), classes=["car"])],
        frame_size=(200, 200), labels=LABELS)
    events = []
    for k, y in enumerate(range(60, 141, 10)):
        events += analytics.update(dets((1, 50, y, 0), (2, 150, y, 1)), t=k * 0.1,
                                   frame_index=k, channel_id="c")
    assert [(e.data["line"], e.data["track_id"]) for e in events] == [
        ("gate", 1), ("gate", 2), ("cars", 2)]
    result = count_result(analytics)
    assert result == {"lines": [
        {"name": "gate", "line": [0.0, 100.0, 200.0, 100.0], "in": 2, "out": 0,
         "by_class": {"car": {"in": 1, "out": 0}, "person": {"in": 1, "out": 0}}},
        {"name": "cars", "line": [0.0, 100.0, 200.0, 100.0], "in": 1, "out": 0,
         "by_class": {"car": {"in": 1, "out": 0}}}]}
    assert count_result(analytics.lines[1:]) == {"lines": result["lines"][1:]}
    assert analytics.snapshot()["lines"] == result["lines"]
    analytics.reset()
    assert count_result(analytics)["lines"][0]["in"] == 0
