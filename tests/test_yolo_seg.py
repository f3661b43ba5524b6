"""The YOLOv8-seg decoder against Ultralytics' own segment postprocessing.

tests/data/yolo_seg holds a random-weight yolov8n-seg export and, for each test image, its raw
ONNX outputs and what Ultralytics' segment predictor made of them with ``retina_masks=True``
(non_max_suppression, scale_boxes, process_mask_native, empty masks dropped); see
tools/make_yolo_seg_testdata.py. No torch needed here.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest

from oko.core.detections import Detections
from oko.core.geometry import box_iou
from oko.models import load_detector
from oko.models.ultralytics_meta import manifest_from_ultralytics
from oko.video.annotate import BoxAnnotator

from conftest import DATA, YOLO_DATA

SEG_DATA = DATA / "yolo_seg"
MODEL = SEG_DATA / "yolov8n-seg-320.onnx"
CASES = sorted(SEG_DATA.glob("expected_*.npz"))


def case_id(path: Path) -> str:
    return path.stem.rsplit("_", 1)[1]


@pytest.fixture(scope="module")
def detector():
    return load_detector(MODEL)


def load_case(path: Path):
    ref = np.load(path)
    n, h, w = ref["mask_shape"]
    masks = np.unpackbits(ref["masks_packed"], axis=1)[:, : h * w].reshape(n, h, w).astype(bool)
    img = cv2.imread(str(YOLO_DATA / "images" / f"{case_id(path)}.jpg"))
    return img, ref, masks


def decode(detector, img, ref) -> Detections:
    _, geoms = detector.adapter.preprocess([img])
    names = detector.adapter.output_names
    return detector.adapter.postprocess({names[0]: ref["raw0"], names[1]: ref["raw1"]}, geoms)[0]


def test_manifest_from_metadata_is_segment(detector):
    manifest = manifest_from_ultralytics(MODEL)
    assert manifest.task.value == "segment" and manifest.family == "yolo_seg"
    assert detector.adapter.output_names == ["output0", "output1"]
    assert len(CASES) == 3


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_masks_match_ultralytics(detector, path):
    img, ref, masks = load_case(path)
    assert float(ref["conf"]) == detector.adapter.post.conf_threshold
    assert float(ref["iou"]) == detector.adapter.post.iou_threshold
    dets = decode(detector, img, ref)
    assert len(ref["boxes"]) >= 10
    # Boxes as in the detection test: same rows (box, class, score), Ultralytics' order.
    iou = box_iou(dets.xyxy, ref["boxes"])
    same = (iou > 0.9999) & (dets.class_id[:, None] == ref["classes"][None, :]) & (
        np.abs(dets.confidence[:, None] - ref["scores"][None, :]) < 1e-6)
    assert same.any(1).mean() >= 0.99 and same.any(0).mean() >= 0.99
    i, j = np.nonzero(same)
    np.testing.assert_allclose(dets.xyxy[i], ref["boxes"][j], atol=1e-3)
    # Masks: full frame, bool, per matched instance IoU >= 0.98 and pixel agreement >= 99.9%.
    assert dets.mask.dtype == bool and dets.mask.shape[1:] == img.shape[:2]
    ours, theirs = dets.mask[i], masks[j]
    inter = (ours & theirs).sum((1, 2))
    union = (ours | theirs).sum((1, 2))
    assert (inter / np.maximum(union, 1)).min() >= 0.98
    assert (ours == theirs).mean(axis=(1, 2)).min() >= 0.999
    assert dets.mask.any(axis=(1, 2)).all()  # empty masks dropped, as Ultralytics does


def test_engine_on_oko_input_reproduces_raw(detector):
    img, ref, _ = load_case(CASES[0])
    inputs, _ = detector.adapter.preprocess([img])
    raw = detector.engine.run(inputs)
    np.testing.assert_allclose(raw["output0"], ref["raw0"], atol=1e-3)
    np.testing.assert_allclose(raw["output1"], ref["raw1"], atol=1e-3)


def test_full_detector_on_image(detector):
    img, ref, masks = load_case(SEG_DATA / "expected_yolov8n-seg_astronaut.npz")
    dets = detector([img])[0]
    assert len(dets) == len(ref["boxes"])
    assert (dets.mask == masks).mean() >= 0.999


def test_no_detections_gives_empty_masks(detector):
    img, ref, _ = load_case(CASES[0])
    raw0 = ref["raw0"].copy()
    raw0[:, 4:84] = 0.0
    _, geoms = detector.adapter.preprocess([img])
    dets = detector.adapter.postprocess({"output0": raw0, "output1": ref["raw1"]}, geoms)[0]
    assert len(dets) == 0 and dets.mask.shape == (0, *img.shape[:2])


def test_annotator_draws_masks():
    img = np.zeros((40, 60, 3), np.uint8)
    mask = np.zeros((1, 40, 60), bool)
    mask[0, 22:30, 30:50] = True
    dets = Detections(xyxy=[[5, 5, 55, 35]], confidence=[0.9], class_id=[0], mask=mask)
    out = BoxAnnotator(["a"], thickness=1, mask_alpha=0.5).annotate(img, dets)
    inside, outside = out[26, 40], out[26, 20]
    assert inside.any() and not outside.any()  # blended in the class colour, only in the mask
    no_mask = BoxAnnotator(["a"], thickness=1, mask_alpha=0.0).annotate(img, dets)
    assert not no_mask[26, 40].any()
