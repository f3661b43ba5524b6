"""Vehicle attributes: the weight-free colour estimator, classifier heads through the
multi-head adapter (a constructed ONNX graph whose answers are known), the module on a
real photo and its per-track reporter."""

import cv2
import numpy as np
import onnx
import pytest
import yaml
from conftest import DATA
from onnx import TensorProto, helper, numpy_helper

from oko.core.detections import Detections
from oko.core.frame import Frame
from oko.modules import create_module
from oko.modules.vehicles import VehicleReporter, VehiclesOptions
from oko.vehicles.colour import COLOURS, ColourEstimator, name_pixels

CZ = DATA / "plates" / "cz_5AU5341.png"


def hsv_of(bgr):
    return cv2.cvtColor(np.array([[bgr]], np.uint8), cv2.COLOR_BGR2HSV)


@pytest.mark.parametrize("bgr,name", [
    ((20, 20, 20), "black"), ((90, 90, 90), "grey"), ((160, 160, 165), "silver"),
    ((240, 240, 240), "white"), ((30, 30, 200), "red"), ((200, 60, 20), "blue"),
    ((30, 200, 230), "yellow"), ((40, 160, 40), "green"), ((20, 120, 240), "orange"),
    ((30, 60, 100), "brown"), ((150, 190, 215), "beige"), ((160, 40, 140), "purple"),
    ((95, 80, 70), "grey"),      # a bluish shadow on grey paint is not blue
])
def test_pixel_names(bgr, name):
    assert COLOURS[int(name_pixels(hsv_of(bgr))[0, 0])] == name


def car_scene(body_bgr):
    """A crude car: body, dark windows on top, tyres and a shadow below, on a grey road."""
    img = np.full((200, 320, 3), 110, np.uint8)
    cv2.rectangle(img, (60, 60), (260, 170), body_bgr, -1)
    cv2.rectangle(img, (90, 66), (230, 100), (25, 25, 25), -1)       # windows
    for x in (80, 210):
        cv2.rectangle(img, (x, 150), (x + 30, 175), (15, 15, 15), -1)  # tyres
    cv2.rectangle(img, (140, 130), (180, 142), (240, 240, 240), -1)  # plate
    return img, np.array([[60, 60, 260, 175]], np.float32)


@pytest.mark.parametrize("body,name", [((30, 30, 190), "red"), ((180, 70, 30), "blue"),
                                       ((245, 245, 245), "white"), ((22, 22, 22), "black"),
                                       ((165, 165, 160), "silver"), ((30, 200, 230), "yellow")])
def test_colour_of_synthetic_cars(body, name):
    img, box = car_scene(body)
    est = ColourEstimator()(img, box)
    assert est.names == [name] and est.confidence[0] > 0.3
    assert est.shares.shape == (1, len(COLOURS)) and est.shares.sum() == pytest.approx(1, abs=1e-5)


def test_colour_uses_the_mask_and_skips_tiny_boxes():
    img, box = car_scene((30, 30, 190))
    img[:, 160:] = (180, 70, 30)                   # right half of the picture blue
    mask = np.zeros((1, 200, 320), bool)
    mask[0, :, 160:] = True
    est = ColourEstimator()(img, box, mask)
    assert est.names == ["blue"]
    tiny = ColourEstimator()(img, np.array([[10, 10, 14, 13]], np.float32))
    assert tiny.names == [None] and tiny.confidence[0] == 0
    assert ColourEstimator()(img, np.zeros((0, 4), np.float32)).names == []


def heads_model(folder):
    """Input [N,3,32,32] RGB/255 -> channel means -> linear -> three heads, known answers:
    type (softmax, always 'van'), colour (softmax, the dominant channel), make (sigmoid,
    'lada' present, 'skoda' absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    w = np.zeros((3, 8), np.float32)
    w[:, 3:6] = 20 * np.eye(3)                       # colour logits = 20 x (R, G, B) means
    b = np.array([0, 5, 0, 0, 0, 0, 5, -5], np.float32)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 8])
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["m", "w"], ["mw"]),
             helper.make_node("Add", ["mw", "b"], ["logits"])]
    graph = helper.make_graph(nodes, "heads", [x], [y], [numpy_helper.from_array(w, "w"),
                                                         numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              folder / "model.onnx")
    manifest = {"name": "vehicle-heads-test", "task": "classify", "family": "multihead",
                "file": "model.onnx",
                "input": {"width": 32, "height": 32, "color": "RGB", "std": [255, 255, 255],
                          "resize": "stretch"},
                "labels": ["vehicle"],
                "decode": {"heads": [
                    {"name": "type", "kind": "softmax", "classes": ["car", "van", "truck"]},
                    {"name": "colour", "kind": "softmax", "classes": ["red", "green", "blue"]},
                    {"name": "make", "kind": "sigmoid", "classes": ["lada", "skoda"]}]}}
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return folder


def test_classifier_heads_on_vehicle_crops(tmp_path):
    from oko.models.multihead import load_multihead

    clf = load_multihead(str(heads_model(tmp_path / "heads")))
    crops = [np.full((40, 60, 3), c, np.uint8) for c in ((0, 0, 255), (0, 255, 0), (255, 0, 0))]
    result = clf(crops)
    assert result["colour"].labels == ["red", "green", "blue"]    # BGR crops, RGB model
    assert result["type"].labels == ["van"] * 3
    assert result["make"].present.tolist() == [[True, False]] * 3


def test_vehicles_module_with_heads_on_a_real_photo(tmp_path):
    module = create_module("vehicles", {"attributes": str(heads_model(tmp_path / "h"))})
    image = cv2.imread(str(CZ))
    dets = module.process([Frame(image, "t", 0, 0.0)])[0]
    assert len(dets) >= 1 and {module.labels[c] for c in dets.class_id} <= {
        "car", "bus", "truck", "motorcycle"}
    assert list(dets.data["type"]) == ["van"] * len(dets)
    assert all(m == ["lada"] for m in dets.data["make"])
    # The colour head replaces the estimate: the dominant RGB channel of each crop.
    for (x1, y1, x2, y2), colour in zip(dets.xyxy, dets.data["colour"], strict=True):
        w, h = x2 - x1, y2 - y1
        box = np.clip(np.round([x1 - .05 * w, y1 - .05 * h, x2 + .05 * w, y2 + .05 * h]), 0,
                      [image.shape[1], image.shape[0]] * 2).astype(int)
        crop = cv2.resize(image[box[1]:box[3], box[0]:box[2]], (32, 32))
        assert colour == ["blue", "green", "red"][int(crop.reshape(-1, 3).mean(0).argmax())]
    assert module.model_name == "nanodet-coco+vehicle-heads-test"


def test_vehicles_module_colour_only():
    module = create_module("vehicles", {})
    dets = module.process([Frame(cv2.imread(str(CZ)), "t", 0, 0.0)])[0]
    main = int(np.argmax(dets.area))
    assert dets.data["colour"][main] in {"silver", "white", "grey"}
    assert set(dets.data) == {"colour", "colour_confidence"}


def test_vehicle_reporter_votes_per_track():
    rep = VehicleReporter("cam", VehiclesOptions(track_timeout_s=0.3, min_frames=2), ["car", "bus"])
    image = np.zeros((100, 200, 3), np.uint8)
    events = []
    for i, colour in enumerate(["red", "red", "orange", "red"]):
        dets = Detections(xyxy=[[10 + i, 10, 90 + i, 60], [120, 10, 180, 60]],
                          confidence=[0.9, 0.8], class_id=[0, 1], track_id=[4, 5 if i == 0 else -1],
                          data={"colour": np.array([colour, "blue"], object),
                                "colour_confidence": np.array([0.8, 0.9], np.float32)})
        events += rep.update(Frame(image, "cam", i, i / 10), dets)
    for i in range(4, 9):
        events += rep.update(Frame(image, "cam", i, i / 10), Detections.empty())
    assert len(events) == 1                       # track 5 was seen once: not reported
    e = events[0]
    assert e.type == "vehicle" and e.data["track_id"] == 4 and e.data["label"] == "car"
    assert e.data["colour"] == "red" and e.data["colour_confidence"] == pytest.approx(0.6)
    assert e.snapshot is not None and rep.finish() == []
