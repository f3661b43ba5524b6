"""The ``road`` module: per-frame figures, window averages and state changes with hysteresis."""

from __future__ import annotations

import json
from pathlib import Path

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


SEG = Path(__file__).parent / "data" / "road" / "seg-logits"   # red road, green marking,
                                                                # blue crack (known answer)


def _painted(marking_rows: int) -> np.ndarray:
    img = np.zeros((256, 256, 3), np.uint8)
    img[:] = (0, 0, 200)                      # BGR red: road
    img[:marking_rows, 124:132] = (0, 200, 0)  # green: lane marking, from the top
    img[160:208, 40:88] = (200, 0, 0)         # blue: a 48x48 crack patch
    return img


def test_segmentation_coverage_defects_and_marking_events():
    module = create_module("road", {
        "segmentation": str(SEG), "analytics": [], "hold_s": 1.0,
        "defects": {"confirm_frames": 3},
        "markings": [{"name": "centre", "points": [[128, 0], [128, 255]]}],
        "calibration": {"image": [[0, 255], [255, 255], [255, 0], [0, 0]],
                        "ground": [[0, 0], [8, 0], [8, 8], [0, 8]]}})
    reporter = module.reporter("cam")
    events, t = [], 0.0
    for rows, seconds in ((256, 2.0), (128, 3.0)):   # then half the marking wears away
        frames = _frames(_painted(rows), int(seconds * 10), t)
        for frame, dets in zip(frames, module.process(frames), strict=True):
            events += reporter.update(frame, dets)
        t += seconds
    seg = frames[-1].scene["segmentation"]
    assert seg["coverage"]["crack"] == pytest.approx(48 * 48 / 256 ** 2, abs=0.002)
    assert seg["coverage"]["lane_marking"] == pytest.approx(8 * 128 / 256 ** 2, abs=0.002)
    assert seg["markings"]["centre"] == pytest.approx(0.5, abs=0.03)
    assert frames[-1].overlay is not None and frames[-1].overlay.shape == (256, 256, 3)
    defects = [e for e in events if e.type == "road_defect"]
    assert len(defects) == 1                          # one crack, one event
    d = defects[0].data
    assert d["class"] == "crack" and d["area_px"] == pytest.approx(48 * 48, rel=0.05)
    assert d["area_m2"] == pytest.approx(48 * 48 * (8 / 255) ** 2, rel=0.1)
    marks = [e.data for e in events if e.type == "marking_visibility"]
    assert [(m["previous"], m["state"]) for m in marks] == [("visible", "worn")]


def test_segmentation_model_with_the_wrong_class_count_is_a_user_error(tmp_path):
    import shutil

    import yaml

    bad = tmp_path / "bad-seg"
    shutil.copytree(SEG, bad)
    manifest = yaml.safe_load((bad / "manifest.yaml").read_text())
    manifest["labels"] = ["road", "lane_marking", "crack", "pothole"]
    manifest["decode"].pop("colors")
    (bad / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    proc = run_oko("analyze", str(SAMPLE_VIDEO), "--module", "road", "--max-frames", "1",
                   "--option", f"segmentation={bad}")
    assert_user_error(proc, "4 labels", "3 channels")


def test_whole_frame_classifier_answers_per_frame(tmp_path):
    """A constructed 'glare / fog / clear' classifier: logits = mean R, G, B of the frame."""
    import onnx
    import yaml
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
         helper.make_node("Flatten", ["p"], ["logits"], axis=1)],
        "mean_rgb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "model.onnx")
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump({
        "name": "scene-test", "task": "classify", "family": "multihead", "file": "model.onnx",
        "input": {"width": 8, "height": 8, "color": "RGB", "mean": [0, 0, 0],
                  "std": [25.5, 25.5, 25.5], "resize": "stretch"},
        "labels": [], "decode": {"heads": [{"name": "condition", "kind": "softmax",
                                            "classes": ["glare", "fog", "clear"]}]}}))
    module = create_module("road", {"classifier": str(tmp_path), "analytics": []})
    red, blue = _painted(0), np.full((64, 64, 3), (200, 0, 0), np.uint8)
    frames = [Frame(red, "c", 0, 0.0), Frame(blue, "c", 1, 0.1)]
    module.process(frames)
    assert frames[0].scene["classifier"]["condition"]["label"] == "glare"
    assert frames[1].scene["classifier"]["condition"]["label"] == "clear"
    assert frames[1].scene["classifier"]["condition"]["score"] > 0.99


def test_class_map_overlay_is_blended_into_annotated_frames():
    from oko.video.annotate import blend_overlay

    module = create_module("road", {"segmentation": str(SEG), "analytics": []})
    frame = Frame(_painted(256), "c", 0, 0.0)
    module.process([frame])
    out = blend_overlay(frame.image, frame.overlay)
    crack = frame.overlay[180, 60]            # the manifest's crack colour, BGR
    assert tuple(crack) == (0, 0, 255)
    expected = np.round(0.6 * frame.image[180, 60] + 0.4 * crack)
    assert np.abs(out[180, 60].astype(int) - expected).max() <= 1
    assert blend_overlay(frame.image, None) is frame.image
