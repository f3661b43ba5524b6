"""Ground calibration, defect deduplication and marking visibility: known answers."""

from __future__ import annotations

import numpy as np
import pytest

from oko.core.errors import ConfigError
from oko.road.calibration import GroundPlane
from oko.road.defects import DefectConfig, DefectTracker
from oko.road.markings import MarkingLine, marking_visibility, sample_polyline

# A 3.5 m x 12 m lane segment seen in perspective (far edge narrower, higher up).
IMAGE = [[100, 500], [400, 500], [350, 300], [150, 300]]
GROUND = [[0, 0], [3.5, 0], [3.5, 12], [0, 12]]


def test_ground_plane_maps_the_calibration_quad_to_metres():
    g = GroundPlane.from_points(IMAGE, GROUND)
    assert np.allclose(g.to_ground(np.array(IMAGE)), GROUND, atol=1e-6)
    assert g.area_m2(np.array(IMAGE)) == pytest.approx(42.0, rel=1e-6)
    assert g.length_m(np.array([[100, 500], [150, 300]])) == pytest.approx(12.0, rel=1e-6)
    # the same 10-px square is more metres far away than near the camera
    near = g.area_m2(np.array([[245, 490], [255, 490], [255, 500], [245, 500]]))
    far = g.area_m2(np.array([[245, 300], [255, 300], [255, 310], [245, 310]]))
    assert far > 2 * near > 0


@pytest.mark.parametrize("image, ground", [
    ([[0, 0], [10, 10], [20, 20], [0, 50]], GROUND),          # three image points in a line
    (IMAGE, [[0, 0], [1, 0], [2, 0], [0, 12]]),               # three ground points in a line
])
def test_collinear_calibration_is_refused_naming_the_points(image, ground):
    with pytest.raises(ConfigError, match="lie on one line"):
        GroundPlane.from_points(image, ground)


def _square(x: float, y: float, side: float) -> dict:
    return {"label": "pothole", "area": side * side,
            "polygon": [[x, y], [x + side, y], [x + side, y + side], [x, y + side]]}


def test_one_pothole_seen_for_many_frames_is_one_event():
    tracker = DefectTracker(DefectConfig(confirm_frames=3))
    events = []
    for i in range(20):   # the segmentation jitters by a pixel or two
        events += tracker.update([_square(200 + i % 3, 400 - i % 2, 30)], i * 0.1, 640 * 480)
    assert len(events) == 1
    e = events[0]
    assert e["class"] == "pothole" and e["frames"] == 3 and e["area_px"] == 900
    assert e["first_seen"] == 0.0 and "area_m2" not in e


def test_noise_is_not_a_defect_and_two_places_are_two_defects():
    tracker = DefectTracker(DefectConfig(confirm_frames=3))
    assert tracker.update([_square(10, 10, 30)], 0.0, 1e5) == []     # one frame only
    events = []
    for i in range(5):
        events += tracker.update([_square(100, 100, 30), _square(400, 100, 30),
                                  {"label": "road", "area": 1e4, "polygon": [[0, 0], [1, 0],
                                                                            [1, 1]]},
                                  _square(300, 300, 3)], 1.0 + i, 1e5)   # too small
    assert sorted(e["defect_id"] for e in events) == [2, 3]


def test_forgotten_defect_is_announced_again_and_area_in_square_metres():
    g = GroundPlane.from_points(IMAGE, GROUND)
    tracker = DefectTracker(DefectConfig(confirm_frames=1, forget_s=5), ground=g)
    first = tracker.update([_square(200, 450, 40)], 0.0, 640 * 480)
    again = tracker.update([_square(200, 450, 40)], 10.0, 640 * 480)
    assert len(first) == len(again) == 1 and first[0]["defect_id"] != again[0]["defect_id"]
    expected = g.area_m2(np.array(_square(200, 450, 40)["polygon"]))
    assert first[0]["area_m2"] == pytest.approx(expected, abs=1e-3) and expected > 0.1
    assert first[0]["severity"] in ("low", "medium", "high")


def test_severity_grows_with_area_and_class_weight():
    t = DefectTracker(DefectConfig(medium_from=1, high_from=4))
    assert t.severity("pothole", 0, 0.1, 1) == "low"
    assert t.severity("pothole", 0, 0.5, 1) == "medium"     # 3 x 0.5 = 1.5
    assert t.severity("pothole", 0, 2.0, 1) == "high"
    assert t.severity("manhole", 0, 2.0, 1) == "medium"     # 0.5 x 2 = 1


def test_marking_visibility_of_a_half_worn_line():
    class_map = np.zeros((200, 300), np.uint8)
    class_map[:, 100:104] = 2              # marking (class 2) along x = 100..103 ...
    class_map[100:, 100:104] = 0           # ... worn away in the lower half
    lines = [MarkingLine(name="left", points=[(101, 0), (101, 199)]),
             MarkingLine(name="ghost", points=[(250, 0), (250, 199)])]
    vis = marking_visibility(class_map, [2], lines, tolerance_px=0)
    assert vis["left"] == pytest.approx(0.5, abs=0.02) and vis["ghost"] == 0.0
    # a line drawn 3 px beside the paint still counts within the tolerance
    vis = marking_visibility(class_map, [2], [MarkingLine(name="off", points=[(98, 0),
                                                                          (98, 99)])], 3)
    assert vis["off"] == 1.0


def test_polyline_sampling_is_even():
    pts = sample_polyline([(0, 0), (10, 0), (10, 10)], step_px=2.0)
    assert len(pts) == 11 and np.allclose(pts[-1], (10, 10))
    assert np.allclose(np.linalg.norm(np.diff(pts, axis=0), axis=1), 2.0)
