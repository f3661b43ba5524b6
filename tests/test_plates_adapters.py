"""Plate detector and reader adapters on small constructed ONNX graphs whose answers are
known: a YOLOv8-pose plate detector with four corner keypoints (raw and end-to-end), a
plain box detector (corners estimated inside the box), and a per-character YOLO detector
with the reading order of one- and two-line plates."""

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from oko.core.errors import ModelContractError
from oko.models import load_detector
from oko.plates.chars import CharDetectorReader, order_characters
from oko.plates.classify import TemplateClassifier
from oko.plates.detector import PlateDetector
from oko.plates.formats import formats_for


def constant_model(path: Path, out: np.ndarray, width: int, height: int) -> None:
    """An ONNX model whose single output is ``out`` whatever the image (input used, times 0)."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, height, width])
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(out.shape))
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Reshape", ["z", "shape"], ["z3"]),
        helper.make_node("Add", ["z3", "const"], ["output0"]),
    ]
    init = [numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
            numpy_helper.from_array(np.array([1] * out.ndim, np.int64), "shape"),
            numpy_helper.from_array(out.astype(np.float32), "const")]
    graph = helper.make_graph(nodes, "g", [images], [output], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def write_model(folder: Path, family: str, labels: list[str], out: np.ndarray, width: int,
                height: int, decode: dict | None = None, **post) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    constant_model(folder / "model.onnx", out, width, height)
    manifest = {"name": folder.name, "task": "detect", "family": family, "file": "model.onnx",
                "input": {"width": width, "height": height, "std": [255, 255, 255]},
                "labels": labels, "decode": decode or {},
                "postprocess": {"conf_threshold": 0.25, "iou_threshold": 0.5, **post}}
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return folder


TL, TR, BR, BL = (12, 25), (52, 23), (52, 35), (12, 37)


def pose_raw() -> np.ndarray:
    """[1, 4 + 1 + 4*3, 3]: a plate, a weaker duplicate of it, and a low-score box."""
    kp = lambda pts: [v for p in pts for v in (*p, 0.9)]
    cols = [
        [32, 30, 40, 14, 0.9, *kp([BR, BL, TL, TR])],        # corners in any order
        [33, 30, 40, 14, 0.8, *kp([TL, TR, BR, BL])],        # suppressed by NMS
        [10, 10, 8, 4, 0.1, *kp([TL, TR, BR, BL])],          # below the threshold
    ]
    return np.array(cols, np.float32).T[None]


def test_yolo_pose_plate_detector_raw(tmp_path):
    folder = write_model(tmp_path / "pose", "yolo_pose", ["plate"], pose_raw(), 64, 64,
                         {"keypoints": 4, "keypoint_dims": 3})
    det = PlateDetector(load_detector(str(folder)))
    dets, = det([np.zeros((64, 64, 3), np.uint8)])
    assert len(dets) == 1 and dets.confidence[0] == pytest.approx(0.9)
    assert np.allclose(dets.xyxy[0], [12, 23, 52, 37])
    assert np.allclose(dets.keypoints[0], [TL, TR, BR, BL])


def test_yolo_pose_end_to_end_export_and_letterbox(tmp_path):
    row = [12, 23, 52, 37, 0.9, 0, *[v for p in (TL, TR, BR, BL) for v in (*p, 1.0)]]
    out = np.array([row, [0] * 18], np.float32)[None]        # [1, N, 6 + 12]
    folder = write_model(tmp_path / "e2e", "yolo_pose", ["plate"], out, 64, 64)
    det = PlateDetector(load_detector(str(folder)))
    # A 128x64 frame is letterboxed into 64x64: scale 0.5, 16 px padding on top.
    dets, = det([np.zeros((64, 128, 3), np.uint8)])
    assert len(dets) == 1
    want = (np.array([TL, TR, BR, BL], np.float32) - [0, 16]) * 2
    assert np.allclose(dets.keypoints[0], want)


def test_yolo_pose_contract_is_checked(tmp_path):
    folder = write_model(tmp_path / "bad", "yolo_pose", ["plate"], pose_raw(), 64, 64,
                         {"keypoints": 5})
    with pytest.raises(ModelContractError, match="keypoints"):
        load_detector(str(folder))


def test_box_detector_gets_corners_from_the_pixels(tmp_path):
    out = np.array([[32, 32, 48, 24, 0.9]], np.float32).T[None]   # one 'plate' box
    folder = write_model(tmp_path / "box", "yolo", ["plate"], out, 64, 64)
    image = np.zeros((64, 64, 3), np.uint8)
    cv2.rectangle(image, (11, 23), (52, 40), (230, 230, 230), -1)
    dets, = PlateDetector(load_detector(str(folder)))([image])
    assert np.abs(dets.keypoints[0] - [[11, 23], [53, 23], [53, 41], [11, 41]]).max() <= 1.5
    dets, = PlateDetector(load_detector(str(folder)), refine_box_corners=False)([image])
    assert np.allclose(dets.keypoints[0], [[8, 20], [56, 20], [56, 44], [8, 44]])


def char_boxes(text: str, x0: float, y: float, step: float = 14, h: float = 20):
    return [(x0 + i * step, y, 10, h, ch) for i, ch in enumerate(text)]


def test_reading_order_one_and_two_lines():
    one = char_boxes("A123BC77", 5, 20)
    rng = np.random.default_rng(1)
    xyxy = np.array([[x - 5, y - 10 + rng.normal(0, 1.5), x + 5, y + 10] for x, y, *_ in one])
    perm = rng.permutation(len(one))
    order, lines = order_characters(xyxy[perm])
    assert lines == 1 and "".join(one[i][4] for i in perm[order]) == "A123BC77"
    # Tilted by ~8 degrees: still one line.
    tilt = xyxy.copy()
    tilt[:, [1, 3]] += (np.arange(len(one)) * 2.0)[:, None]
    assert order_characters(tilt)[1] == 1
    # Two lines: top "1234", bottom "AB77" (the bottom line starts further left).
    two = char_boxes("1234", 20, 15) + char_boxes("AB77", 8, 45)
    xyxy = np.array([[x - 5, y - 10, x + 5, y + 10] for x, y, *_ in two])
    perm = rng.permutation(len(two))
    order, lines = order_characters(xyxy[perm])
    assert lines == 2 and "".join(two[i][4] for i in perm[order]) == "1234AB77"
    assert order_characters(np.zeros((0, 4)))[1] == 1


def test_character_detector_reads_a_two_line_plate(tmp_path):
    labels = list("0123456789") + list("АВЕКМНОРСТУХ")  # a Cyrillic-speaking detector
    chars = char_boxes("1234", 30, 16) + char_boxes("АВ77", 20, 46)
    rng = np.random.default_rng(2)
    cols = []
    for i in rng.permutation(len(chars)):
        x, y, w, h, ch = chars[i]
        scores = np.zeros(len(labels))
        scores[labels.index(ch)] = 0.8 + 0.02 * i
        cols.append([x, y, w, h, *scores])
    out = np.array(cols, np.float32).T[None]
    folder = write_model(tmp_path / "chars", "yolo", labels, out, 128, 64, class_agnostic=True)
    reader = CharDetectorReader(load_detector(str(folder)))
    read, = reader.read([np.zeros((64, 128, 3), np.uint8)], [1])
    assert read.lines == 2 and read.text == "1234AB77"
    assert np.all(read.confidences >= 0.8)
    match = TemplateClassifier(formats_for(["RU"])).classify(read.probs, read.lines)
    assert match.format.name == "ru_motorcycle" and match.text == "1234АВ77"
