"""Polygon zones: occupancy, enter/exit/dwell timings, validation, drawing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from oko.analytics import (
    Analytics,
    LineConfig,
    PolygonZone,
    ZoneConfig,
    draw_zones_and_lines,
    parse_configs,
    points_in_polygon,
)
from oko.core import ConfigError, Detections, Event

LABELS = ["person", "car"]
SQUARE = [(100, 100), (200, 100), (200, 200), (100, 200)]


def dets(*objs: tuple) -> Detections:
    """Objects as (track_id, x, y[, class_id]) with (x, y) the box's bottom centre."""
    if not objs:
        return Detections(xyxy=np.zeros((0, 4)), class_id=np.zeros(0), track_id=np.zeros(0))
    rows = [(o[0], o[1], o[2], o[3] if len(o) > 3 else 0) for o in objs]
    tid, x, y, cls = (np.array(c, dtype=np.float64) for c in zip(*rows))
    xyxy = np.stack([x - 10, y - 40, x + 10, y], axis=1)
    return Detections(xyxy=xyxy, class_id=cls, track_id=tid)


def run(zone: PolygonZone, frames: list[list[tuple]], dt: float = 0.1) -> list[Event]:
    events = []
    for k, objs in enumerate(frames):
        events += zone.update(dets(*objs), t=k * dt, frame_index=k, channel_id="cam1",
                              labels=LABELS)
    return events


def square(**kw) -> PolygonZone:
    return PolygonZone(ZoneConfig(name="z", polygon=SQUARE, **kw))


def brief(events: list[Event]) -> list[tuple]:
    return [(e.type, e.frame_index, e.data["track_id"]) for e in events]


# ---------------------------------------------------------------- point in polygon
def test_points_in_polygon_matches_opencv_on_a_concave_polygon():
    poly = np.array([[10, 10], [300, 20], [280, 250], [150, 120], [40, 260]], dtype=np.float64)
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 320, (5000, 2))
    ours = points_in_polygon(pts, poly)
    contour = poly.astype(np.float32).reshape(-1, 1, 2)
    dist = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in pts])
    clear = np.abs(dist) > 1e-6  # boundary points may go either way
    np.testing.assert_array_equal(ours[clear], dist[clear] > 0)
    assert 1000 < np.count_nonzero(ours) < 4000
    assert points_in_polygon(np.zeros((0, 2)), poly).shape == (0,)


# ---------------------------------------------------------------- enter, exit, dwell
def test_walk_through_enter_exit_and_dwell():
    zone = square(debounce_s=0)
    frames = [[(1, 55 + 10 * k, 150)] for k in range(20)]  # inside for x = 105..195
    events = run(zone, frames)
    assert brief(events) == [("zone_enter", 5, 1), ("zone_exit", 15, 1)]
    enter, leave = events
    assert enter.timestamp == pytest.approx(0.5)
    assert enter.data == {"zone": "z", "track_id": 1, "class_id": 0, "label": "person",
                          "entered_at": pytest.approx(0.5), "occupancy": 1}
    assert leave.data["dwell_s"] == pytest.approx(1.0)
    assert leave.data["reason"] == "left" and leave.data["occupancy"] == 0
    assert leave.data["exited_at"] == pytest.approx(1.5)
    assert Event.from_json(leave.to_json()).data == leave.data
    assert zone.counts() == {"name": "z", "polygon": [[100.0, 100.0], [200.0, 100.0],
                                                      [200.0, 200.0], [100.0, 200.0]],
                             "occupancy": 0, "occupancy_by_class": {}, "enter": 1, "exit": 1,
                             "by_class": {"person": {"enter": 1, "exit": 1}}}


def test_debounce_suppresses_flicker_and_dates_the_change_from_its_first_frame():
    zone = square(debounce_s=0.3)  # at 10 fps: 4 frames on the new side
    inside, outside = (1, 150, 150), (1, 150, 250)
    pattern = ([outside] * 2 + [inside, outside] * 3 + [inside] * 2 + [outside]  # flicker
               + [inside] * 10 + [outside, inside] * 2 + [outside] * 6)
    events = run(zone, [[p] for p in pattern])
    # Steady inside starts at frame 11 and is confirmed at frame 14 (t 1.1 -> 1.4);
    # steady outside starts at frame 25, confirmed at frame 28; dwell 2.5 - 1.1 = 1.4 s.
    assert brief(events) == [("zone_enter", 14, 1), ("zone_exit", 28, 1)]
    assert events[0].data["entered_at"] == pytest.approx(1.1)
    assert events[1].data["dwell_s"] == pytest.approx(1.4)
    assert events[1].data["exited_at"] == pytest.approx(2.5)


def test_live_dwell_and_occupancy_per_class():
    zone = square(debounce_s=0)
    frame = [(1, 120, 150, 0), (2, 140, 150, 0), (3, 160, 150, 0), (4, 180, 150, 1),
             (5, 190, 190, 1), (6, 50, 150, 0), (-1, 150, 150, 0), (-1, 150, 160, 1)]
    events = run(zone, [frame[:3] + frame[5:]] * 5 + [frame] * 6)
    assert [e.data["track_id"] for e in events] == [1, 2, 3, 4, 5]
    assert [e.frame_index for e in events] == [0, 0, 0, 5, 5]
    assert [e.data["occupancy"] for e in events] == [3, 3, 3, 5, 5]  # after each frame
    assert zone.occupancy == 5
    assert zone.occupancy_by_class == {"person": 3, "car": 2}
    assert zone.dwell() == {1: pytest.approx(1.0), 2: pytest.approx(1.0),
                            3: pytest.approx(1.0), 4: pytest.approx(0.5), 5: pytest.approx(0.5)}
    people = square(debounce_s=0, classes=["person"])
    run(people, [frame] * 3)
    assert people.occupancy == 3 and people.occupancy_by_class == {"person": 3}


def test_anchor_choice_decides_inside():
    frame = [[(1, 150, 215)]]  # box y 175..215: centre (150, 195) inside, bottom below
    bottom = square(debounce_s=0)
    run(bottom, frame)
    assert bottom.occupancy == 0
    centre = PolygonZone(ZoneConfig(name="c", polygon=SQUARE, anchor="center", debounce_s=0))
    run(centre, frame)
    assert centre.occupancy == 1


# ---------------------------------------------------------------- lost tracks
def test_track_lost_inside_exits_after_the_timeout():
    zone = square(debounce_s=0, lost_timeout_s=1.0)
    frames = [[(1, 150, 150)]] * 6 + [[]] * 12  # last seen at t=0.5
    events = run(zone, frames)
    assert brief(events) == [("zone_enter", 0, 1), ("zone_exit", 16, 1)]  # 1.6 - 0.5 > 1.0
    leave = events[1].data
    assert leave["reason"] == "lost"
    assert leave["dwell_s"] == pytest.approx(0.5) and leave["exited_at"] == pytest.approx(0.5)
    assert leave["occupancy"] == 0


def test_occupancy_holds_through_a_short_gap_and_recovery_continues_the_visit():
    zone = square(debounce_s=0, lost_timeout_s=1.0)
    frames = [[(1, 150, 150)]] * 3 + [[]] * 5 + [[(1, 150, 150)]] * 2 + [[(1, 150, 250)]]
    occupancy = []
    events = []
    for k, objs in enumerate(frames):
        events += zone.update(dets(*objs), t=k * 0.1, frame_index=k, labels=LABELS)
        occupancy.append(zone.occupancy)
    assert occupancy == [1] * 10 + [0]
    assert brief(events) == [("zone_enter", 0, 1), ("zone_exit", 10, 1)]
    assert events[1].data["dwell_s"] == pytest.approx(1.0)


def test_track_lost_outside_is_pruned_silently():
    zone = square(debounce_s=0, lost_timeout_s=0.5)
    assert run(zone, [[(1, 50, 50)]] * 2 + [[]] * 10) == []
    assert len(zone._tracks) == 0


def test_object_appearing_inside_enters_after_debounce_and_tentative_is_ignored():
    zone = square(debounce_s=0.2)
    events = run(zone, [[(3, 150, 150), (-1, 160, 160)]] * 4)
    assert brief(events) == [("zone_enter", 2, 3)]
    assert events[0].data["entered_at"] == 0.0


def test_analytics_runs_zones_and_lines_together():
    analytics = Analytics(
        zones=[{"name": "room", "normalized": True, "debounce_s": 0,
                "polygon": [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]}],
        lines=[LineConfig(name="door", start=(0, 150), end=(400, 150), hysteresis_px=0)],
        frame_size=(400, 300), labels=LABELS)
    assert analytics.zones[0].polygon.tolist() == [[200, 150], [400, 150], [400, 300],
                                                   [200, 300]]
    events = []
    for k, y in enumerate(range(102, 201, 10)):  # y = 152 at frame 5
        events += analytics.update(dets((1, 300, y)), t=k * 0.1, frame_index=k)
    assert [(e.type, e.frame_index) for e in events] == [("line_crossing", 5),
                                                         ("zone_enter", 5)]
    snap = analytics.snapshot()
    assert snap["zones"][0]["occupancy"] == 1 and snap["lines"][0]["in"] == 1


# ---------------------------------------------------------------- config and drawing
def test_zone_config_errors_name_the_field():
    with pytest.raises(ValidationError, match="polygon needs at least 3 points, got 2"):
        ZoneConfig(name="z", polygon=[(0, 0), (1, 1)])
    cases = [
        ({"name": "z", "polygon": [[0, 0], [5, 5], [10, 10]]}, "zones[0].polygon", "zero area"),
        ({"name": "z", "normalized": True, "polygon": [[0, 0], [0.5, 0], [640, 480]]},
         "zones[0].polygon", "polygon[2] = [640, 480] is outside 0..1"),
        ({"name": "", "polygon": SQUARE}, "zones[0].name", "at least 1 character"),
        ({"name": "z", "polygon": SQUARE, "debounce_s": -1}, "zones[0].debounce_s", ""),
        ({"name": "z", "polygon": SQUARE, "lost_timeout_s": 0}, "zones[0].lost_timeout_s", ""),
        ({"name": "z", "polygon": SQUARE, "dwell": 3}, "zones[0].dwell", "Extra inputs"),
        ({"name": "z", "polygon": SQUARE, "classes": ["car", " "]}, "zones[0].classes",
         "empty names"),
    ]
    for data, where, what in cases:
        with pytest.raises(ConfigError) as info:
            parse_configs(ZoneConfig, [data], "zones")
        assert where in str(info.value) and what in str(info.value), str(info.value)
    with pytest.raises(ConfigError, match=r"zones\[1\]\.polygon"):
        Analytics(zones=[{"name": "a", "polygon": SQUARE}, {"name": "b", "polygon": SQUARE[:2]}],
                  frame_size=(640, 480))
    with pytest.raises(ConfigError, match="zone 'a': classes: unknown class 'dog'"):
        Analytics(zones=[{"name": "a", "polygon": SQUARE, "classes": ["dog"]}], labels=LABELS)
    with pytest.raises(ConfigError, match="frame size must be positive"):
        ZoneConfig(name="n", normalized=True, polygon=[(0, 0), (1, 0), (1, 1)]).to_pixels(0, 10)


def test_draw_zones_and_lines():
    analytics = Analytics(
        zones=[{"name": "room", "polygon": SQUARE, "debounce_s": 0}],
        lines=[{"name": "door", "start": [0, 0.8], "end": [1, 0.8], "normalized": True}],
        frame_size=(320, 240), labels=LABELS)
    analytics.update(dets((1, 150, 150)), t=0.0)
    image = np.zeros((240, 320, 3), np.uint8)
    out = draw_zones_and_lines(image, analytics.zones, analytics.lines, analytics.snapshot())
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not image.any()  # input untouched
    assert out[150, 150].any()  # zone fill
    assert out[192, 300].any()  # the line at y = 0.8 * 240
    assert not out[5, 300].any()
    # Plain configs (normalised ones converted with the image size) and no counts.
    plain = draw_zones_and_lines(image, [ZoneConfig(name="r", polygon=SQUARE)],
                                 [LineConfig(name="d", normalized=True, start=(0, 0.8),
                                             end=(1, 0.8))])
    assert plain[192, 300].any() and plain[150, 150].any()
    # A channel's Analytics draws all of its zones and lines with their counts.
    np.testing.assert_array_equal(draw_zones_and_lines(image, analytics), out)


def test_analytics_frame_size_is_one_pair():
    with pytest.raises(TypeError, match=r"frame_size must be \(width, height\)"):
        Analytics([], [], 640)
    with pytest.raises(TypeError):
        Analytics([], [], 640, 480)  # labels is keyword-only
