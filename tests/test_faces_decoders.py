"""Face detector decoders on constructed outputs and constructed ONNX graphs (known answers).

Every expected box below is worked out by hand from the family's formula and the input
geometry, not by running the decoder.
"""

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from oko.core.errors import ModelContractError
from oko.engines.base import TensorSpec
from oko.faces.detect import load_face_detector
from oko.faces.yunet import YuNetAdapter
from oko.models.manifest import parse_manifest

# ---------------------------------------------------------------------------- YuNet

YUNET_OUTPUTS = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)]


def yunet_adapter(conf=0.6, iou=0.3):
    manifest = parse_manifest({
        "name": "yunet-test", "task": "detect", "family": "yunet", "file": "none.onnx",
        "input": {"width": 640, "height": 640, "color": "BGR", "mean": [0, 0, 0],
                  "std": [1, 1, 1], "pad_value": 0},
        "labels": ["face"], "outputs": YUNET_OUTPUTS,
        "postprocess": {"conf_threshold": conf, "iou_threshold": iou}}, "test")
    cols = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}
    outputs = [TensorSpec(n, (1, None, cols[n.split("_")[0]]), np.dtype(np.float32))
               for n in YUNET_OUTPUTS]
    return YuNetAdapter(manifest, [TensorSpec("input", (1, 3, None, None),
                                              np.dtype(np.float32))], outputs)


def empty_yunet_outputs(width, height):
    out = {}
    for s in (8, 16, 32):
        n = (width // s) * (height // s)
        out[f"cls_{s}"] = np.zeros((1, n, 1), np.float32)
        out[f"obj_{s}"] = np.zeros((1, n, 1), np.float32)
        out[f"bbox_{s}"] = np.zeros((1, n, 4), np.float32)
        out[f"kps_{s}"] = np.zeros((1, n, 10), np.float32)
    return out


def test_yunet_decodes_a_constructed_face_back_to_frame_pixels():
    adapter = yunet_adapter()
    frame = np.zeros((640, 1280, 3), np.uint8)       # scaled by 0.5 to 640x320, no padding
    inputs, geoms = adapter.preprocess([frame])
    assert inputs["input"].shape == (1, 3, 320, 640)
    out = empty_yunet_outputs(640, 320)
    # Stride 16, grid 40 x 20: a face in cell (col 5, row 3) = row-major index 125.
    i = 3 * 40 + 5
    out["cls_16"][0, i, 0], out["obj_16"][0, i, 0] = 0.81, 1.0      # score sqrt(0.81) = 0.9
    out["bbox_16"][0, i] = [0.25, 0.5, math.log(2), math.log(3)]   # centre (84, 56), 32 x 48
    out["kps_16"][0, i] = [0, 0, 0.5, 0, 0.25, 0.5, 0, 1, 0.5, 1]
    # A weaker duplicate of it at stride 8 (NMS removes it) and a face below the threshold.
    j = 7 * 80 + 10                                                  # cell (10, 7): centre 84, 60
    out["cls_8"][0, j, 0], out["obj_8"][0, j, 0] = 0.49, 1.0        # 0.7
    out["bbox_8"][0, j] = [0.5, 0.0, math.log(4), math.log(6)]
    k = 30 * 80 + 60
    out["cls_8"][0, k, 0], out["obj_8"][0, k, 0] = 0.25, 1.0        # 0.5 < 0.6
    dets = adapter.postprocess(out, geoms)[0]
    assert len(dets) == 1
    # Input box (68, 32, 100, 80), times 2 back to the 1280x640 frame.
    np.testing.assert_allclose(dets.xyxy[0], [136, 64, 200, 160], atol=1e-3)
    assert dets.confidence[0] == pytest.approx(0.9, abs=1e-6)
    assert dets.class_id[0] == 0
    expected = np.array([[80, 48], [88, 48], [84, 56], [80, 64], [88, 64]]) * 2
    np.testing.assert_allclose(dets.keypoints[0], expected, atol=1e-3)


def test_yunet_pads_to_multiples_of_32_and_does_not_upscale_small_frames():
    adapter = yunet_adapter()
    inputs, geoms = adapter.preprocess([np.full((50, 70, 3), 7, np.uint8)])
    assert inputs["input"].shape == (1, 3, 64, 96)           # padded, not scaled up
    assert geoms[0].scale_x == 1 and geoms[0].pad_x == 0
    assert inputs["input"][0, 0, 49, 69] == 7 and inputs["input"][0, 0, 50, 70] == 0
    dets = adapter.postprocess(empty_yunet_outputs(96, 64), geoms)[0]
    assert len(dets) == 0 and dets.keypoints.shape == (0, 5, 2)


def test_yunet_contract_errors():
    manifest = parse_manifest({
        "name": "bad", "task": "detect", "family": "yunet", "file": "x.onnx",
        "input": {"width": 640, "height": 640}, "labels": ["face"]}, "test")
    spec = TensorSpec("input", (1, 3, None, None), np.dtype(np.float32))
    with pytest.raises(ModelContractError, match="4 outputs per stride"):
        YuNetAdapter(manifest, [spec], [TensorSpec("o", (1, 10, 1), np.dtype(np.float32))])
    wrong_labels = manifest.model_copy(update={"labels": ["person"], "outputs": YUNET_OUTPUTS})
    outs = [TensorSpec(n, (1, None, {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}[n.split("_")[0]]),
                       np.dtype(np.float32)) for n in YUNET_OUTPUTS]
    with pytest.raises(ModelContractError, match="labels must be"):
        YuNetAdapter(wrong_labels, [spec], outs)


# ---------------------------------------------------------------- constructed ONNX graphs

def constant_model(path, input_name, input_shape, outputs: dict[str, np.ndarray]):
    """A graph whose outputs are the given arrays (+ 0 * mean(input), so the input flows)."""
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)
    nodes = [helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    inits = [numpy_helper.from_array(np.array(0, np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), name + "_value"))
        nodes.append(helper.make_node("Add", [name + "_value", "nothing"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(nodes, "constant", [x], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def write_manifest(folder, text):
    (folder / "manifest.yaml").write_text(text)
    return folder


def test_scrfd_adapter_runs_a_constructed_graph(tmp_path):
    # SCRFD layout without a batch axis: scores, boxes, keypoints for strides 8, 16, 32 on a
    # 64x64 input, 2 anchors per cell at the cell corner.
    counts = {8: 8 * 8 * 2, 16: 4 * 4 * 2, 32: 2 * 2 * 2}
    outs = {}
    for s, n in counts.items():
        outs[f"score_{s}"] = np.zeros((n, 1))
    for s, n in counts.items():
        outs[f"bbox_{s}"] = np.zeros((n, 4))
    for s, n in counts.items():
        outs[f"kps_{s}"] = np.zeros((n, 10))
    # Stride 16, cell (col 2, row 1), second anchor: index (1 * 4 + 2) * 2 + 1 = 13, at (32, 16).
    outs["score_16"][13] = 0.88
    outs["bbox_16"][13] = [1, 0.5, 1.5, 2]          # box (16, 8, 56, 48) in the input
    outs["kps_16"][13] = [-0.5, 0, 0.5, 0, 0, 0.5, -0.5, 1, 0.5, 1]
    outs["score_8"][5] = 0.2                          # below the threshold
    constant_model(tmp_path / "model.onnx", "input.1", [1, 3, 64, 64], outs)
    names = ", ".join(outs)
    write_manifest(tmp_path, f"""
name: scrfd-test
task: detect
family: scrfd
file: model.onnx
input: {{width: 64, height: 64, color: RGB, mean: [127.5, 127.5, 127.5], std: [128, 128, 128],
         pad_value: 0}}
labels: [face]
outputs: [{names}]
decode: {{strides: [8, 16, 32], anchors_per_cell: 2}}
postprocess: {{conf_threshold: 0.5, iou_threshold: 0.4}}
""")
    detector = load_face_detector(tmp_path)
    # A 128x96 frame is scaled by 0.5 to 64x48 and placed top-left: frame = input * 2.
    dets = detector([np.zeros((96, 128, 3), np.uint8)])[0]
    assert len(dets) == 1
    np.testing.assert_allclose(dets.xyxy[0], [32, 16, 112, 96], atol=1e-3)
    assert dets.confidence[0] == pytest.approx(0.88, abs=1e-6)
    expected = np.array([[24, 16], [40, 16], [32, 24], [24, 32], [40, 32]]) * 2
    np.testing.assert_allclose(dets.keypoints[0], expected, atol=1e-3)


@pytest.mark.parametrize("channels_last", [False, True])
def test_yolov8_face_adapter_runs_a_constructed_graph(tmp_path, channels_last):
    # One output [1, 20, anchors]: cx, cy, w, h, score, 5 x (x, y, visibility), input pixels.
    n = 8 * 8 + 4 * 4 + 2 * 2
    pred = np.zeros((20, n))
    pred[:, 17] = [32, 24, 20, 24, 0.9, 26, 20, 0.9, 38, 20, 0.9, 32, 25, 0.9, 27, 30, 0.9,
                   37, 30, 0.9]
    pred[:, 40] = [33, 25, 20, 24, 0.6] + [0] * 15    # overlaps the first: NMS drops it
    pred[:, 60] = [10, 10, 8, 8, 0.1] + [0] * 15      # below the threshold
    out = (pred.T if channels_last else pred)[None]
    constant_model(tmp_path / "model.onnx", "images", [1, 3, 64, 64], {"output0": out})
    write_manifest(tmp_path, """
name: yolo-face-test
task: detect
family: yolov8-face
file: model.onnx
input: {width: 64, height: 64, color: RGB, mean: [0, 0, 0], std: [255, 255, 255]}
labels: [face]
postprocess: {conf_threshold: 0.25, iou_threshold: 0.45}
""")
    detector = load_face_detector(tmp_path / "manifest.yaml")
    # 128x96 frame: scale 0.5 to 64x48, centred with 8 px above: frame = (input - (0, 8)) * 2.
    dets = detector([np.zeros((96, 128, 3), np.uint8)])[0]
    assert len(dets) == 1
    np.testing.assert_allclose(dets.xyxy[0], [44, 8, 84, 56], atol=1e-3)
    expected = (np.array([[26, 20], [38, 20], [32, 25], [27, 30], [37, 30]]) - [0, 8]) * 2
    np.testing.assert_allclose(dets.keypoints[0], expected, atol=1e-3)


def test_a_non_face_model_is_refused_as_face_detector():
    with pytest.raises(ModelContractError, match="not a face detector"):
        load_face_detector("nanodet-coco")
