"""The ``road`` module: per-frame figures, window averages and state changes with hysteresis."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from oko.core.frame import Frame
from oko.modules import create_module
from oko.road.states import HeldState, WindowAverage, two_level

from conftest import SAMPLE_VIDEO, assert_user_error, run_oko


def test_held_state_needs_the_new_value_to_last():
    s = HeldState(hold_s=2.0)
    assert s.update(0.0, "day") is None and s.state == "day"
    assert s.update(1.0, "night") is None           # not held yet
    assert s.update(2.0, "day") is None             # back: the candidate is dropped
    assert s.update(3.0, "night") is None
    assert s.update(4.9, "night") is None
    assert s.update(5.0, "night") == ("day", "night") and s.state == "night"


def test_window_average_and_two_level_hysteresis():
    w = WindowAverage(window_s=2.0)
    assert w.add(0.0, {"x": 1.0}) == {"x": 1.0}
    assert w.add(1.0, {"x": 3.0}) == {"x": 2.0}
    assert w.add(3.0, {"x": 5.0}) == {"x": 4.0}     # t=0 left the window
    assert two_level(None, 0.2, on=0.3, off=0.1) is False
    assert two_level(False, 0.31, on=0.3, off=0.1) is True
    assert two_level(True, 0.2, on=0.3, off=0.1) is True
    assert two_level(True, 0.05, on=0.3, off=0.1) is False


def _frames(image: np.ndarray, n: int, t0: float, fps: float = 10.0) -> list[Frame]:
    return [Frame(image, "cam", int((t0 + i / fps) * fps), t0 + i / fps) for i in range(n)]


def test_dusk_and_snowfall_give_one_event_each():
    cap = cv2.VideoCapture(str(SAMPLE_VIDEO))
    ok, day = cap.read()
    assert ok
    night = np.round(255.0 * (day / 255.0) ** 4).astype(np.uint8)
    snowy = day.copy()
    snowy[288:] = 236
    module = create_module("road", {"hold_s": 2.0, "window_s": 1.0,
                                    "region": [[0, 288], [768, 288], [768, 576], [0, 576]]})
    reporter = module.reporter("cam")
    events = []
    t = 0.0
    for image, seconds in ((day, 3), (snowy, 4), (night, 4)):
        frames = _frames(image, int(seconds * 10), t)
        for frame, dets in zip(frames, module.process(frames), strict=True):
            events += reporter.update(frame, dets)
        t += seconds
    kinds = [(e.type, e.data.get("phase", e.data.get("snowy"))) for e in events]
    assert ("snow_cover", True) in kinds
    assert ("lighting", "night") in kinds
    assert len(kinds) == len(set(kinds)) <= 4       # no flicker: one event per change
    snow_event = next(e for e in events if e.type == "snow_cover")
    assert 3.0 + 2.0 <= snow_event.timestamp <= 3.0 + 3.0   # after the hold, not before
    assert snow_event.data["snow_cover"] > 0.9


def test_analyze_prints_scene_figures_per_frame():
    proc = run_oko("analyze", str(SAMPLE_VIDEO), "--module", "road", "--max-frames", "20",
                   "--json", "--option", "analytics=[lighting, snow]")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    scene = out["frames"][-1]["scene"]
    assert set(scene) == {"lighting", "snow", "window"}
    assert scene["lighting"]["phase"] == "day" and 60 < scene["lighting"]["mean_luma"] < 200
    assert set(scene["window"]) == {"mean_luma", "lit_fraction", "snow_cover"}


def test_region_outside_the_frame_is_a_user_error():
    proc = run_oko("analyze", str(SAMPLE_VIDEO), "--module", "road", "--max-frames", "2",
                   "--option", "region=[[2000, 2000], [2100, 2000], [2100, 2100]]")
    assert_user_error(proc, "outside")


@pytest.mark.parametrize("bad", ["analytics=[fog]", "snow_on=2"])
def test_bad_options_are_user_errors(bad):
    assert_user_error(run_oko("analyze", str(SAMPLE_VIDEO), "--module", "road",
                              "--option", bad), bad.split("=")[0])
