"""The YOLOv8/YOLO11 decoder against Ultralytics' own pre- and post-processing.

tests/data/yolo holds Ultralytics exports with random weights, real images, and for each
pair: the input tensor Ultralytics built, the raw ONNX output, and the boxes its
``non_max_suppression`` + ``scale_boxes`` returned (tools/make_yolo_testdata.py made
them with CPU torch; this suite needs no torch).
"""

from pathlib import Path

import cv2
import numpy as np
import pytest

from oko.core.geometry import box_iou
from oko.models import load_detector

from conftest import YOLO_DATA

CASES = sorted(YOLO_DATA.glob("expected_*.npz"))
MODELS = {"yolov8n": "yolov8n-320.onnx", "yolo11n": "yolo11n-320.onnx"}


def case_id(path: Path) -> str:
    return path.stem.removeprefix("expected_")


def load_case(path: Path):
    model, image = path.stem.removeprefix("expected_").split("_", 1)
    detector = load_detector(YOLO_DATA / MODELS[model])
    img = cv2.imread(str(YOLO_DATA / "images" / f"{image}.jpg"))
    return detector, img, np.load(path)


def test_reference_data_present():
    assert {case_id(p).split("_")[0] for p in CASES} == set(MODELS), CASES


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_preprocessing_matches_ultralytics_letterbox(path):
    detector, img, ref = load_case(path)
    inputs, _ = detector.adapter.preprocess([img])
    ours = inputs[detector.adapter.input.name]
    assert ours.shape == ref["input"].shape
    np.testing.assert_allclose(ours, ref["input"].astype(np.float32), atol=1e-6)


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_engine_reproduces_raw_output(path):
    detector, _, ref = load_case(path)
    raw = detector.engine.run({detector.adapter.input.name: ref["input"].astype(np.float32)})
    np.testing.assert_allclose(raw[detector.adapter.output_names[0]], ref["raw"], atol=1e-4)


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_decoder_matches_ultralytics_nms(path):
    detector, img, ref = load_case(path)
    assert float(ref["conf"]) == detector.adapter.post.conf_threshold
    assert float(ref["iou"]) == detector.adapter.post.iou_threshold
    _, geoms = detector.adapter.preprocess([img])
    dets = detector.adapter.postprocess({detector.adapter.output_names[0]: ref["raw"]}, geoms)[0]
    boxes, scores, classes = ref["boxes"], ref["scores"], ref["classes"].astype(int)
    assert len(boxes) >= 10, "reference must exercise NMS"
    # Rows are matched by identical box, class and score. Ultralytics shifts each class by
    # class * 7680 px in float32 before NMS, which perturbs IoU in the 4th decimal: a pair
    # sitting on the IoU threshold can flip. So allow at most 1% of rows to differ.
    iou = box_iou(dets.xyxy, boxes)
    same = (iou > 0.9999) & (dets.class_id[:, None] == classes[None, :]) & (
        np.abs(dets.confidence[:, None] - scores[None, :]) < 1e-6)
    matched_ours, matched_ref = same.any(1).mean(), same.any(0).mean()
    assert matched_ours >= 0.99 and matched_ref >= 0.99, (matched_ours, matched_ref)
    assert abs(len(dets) - len(boxes)) <= max(1, len(boxes) // 100)
    i, j = np.nonzero(same)
    np.testing.assert_allclose(dets.xyxy[i], boxes[j], atol=1e-3)
    # Same order as Ultralytics: highest score first.
    assert np.all(np.diff(dets.confidence) <= 0)


def test_full_detector_on_image_equals_reference_path():
    path = YOLO_DATA / "expected_yolov8n_vtest-0400.npz"
    detector, img, ref = load_case(path)
    dets = detector([img])[0]
    iou = box_iou(dets.xyxy, ref["boxes"])
    assert len(dets) == len(ref["boxes"])
    assert (iou.max(1) > 0.999).mean() >= 0.99


def test_dynamic_batch_export_runs_batches():
    detector = load_detector(YOLO_DATA / "yolov8n-320-dynamic.onnx")
    assert detector.max_batch is None
    imgs = [cv2.imread(str(p)) for p in sorted((YOLO_DATA / "images").glob("*.jpg"))]
    one_by_one = [detector([im])[0] for im in imgs]
    batched = detector(imgs)
    assert len(batched) == len(imgs)
    for a, b in zip(one_by_one, batched, strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)
