"""Multi-head attribute classifier: constructed weights with known answers.

The graph is mean colour -> linear layer: for a uniformly coloured crop (r, g, b in 0..1)
the logits are W @ (r, g, b) + bias, so every probability can be computed here by hand.
"""

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from oko.core.errors import ConfigError, ModelContractError
from oko.faces.attributes import STANDARD_FACE_HEADS, FaceAttributes, box_crops
from oko.models.multihead import load_multihead


def linear_model(path, weights: dict[str, tuple[np.ndarray, np.ndarray]], size=8):
    """Input [N, 3, size, size] -> GlobalAveragePool -> Flatten -> one Gemm per output."""
    x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, size, size])
    nodes = [helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["features"], axis=1)]
    inits, outs = [], []
    for name, (w, b) in weights.items():
        inits += [numpy_helper.from_array(w.astype(np.float32), name + "_w"),
                  numpy_helper.from_array(b.astype(np.float32), name + "_b")]
        nodes.append(helper.make_node("Gemm", ["features", name + "_w", name + "_b"], [name],
                                      transB=1))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", len(b)]))
    graph = helper.make_graph(nodes, "heads", [x], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def manifest(folder, heads, **extra):
    data = {"name": "attr-test", "task": "classify", "family": "multihead", "file": "model.onnx",
            "input": {"width": 8, "height": 8, "color": "RGB", "mean": [0, 0, 0],
                      "std": [255, 255, 255], "resize": "stretch"},
            "labels": [], "decode": {"heads": heads}} | extra
    (folder / "manifest.yaml").write_text(yaml.safe_dump(data))
    return folder


def solid(bgr, h=20, w=30):
    return np.full((h, w, 3), bgr, np.uint8)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


# One concatenated output: hair_color softmax (3) | eyeglasses sigmoid (1) | facial_hair (2).
W = np.array([[4.0, -2, -2],    # black?  (weights on r, g, b)
              [-2.0, 4, -2],    # blond
              [-2.0, -2, 4],    # red ... on blue (any mapping will do, it is known)
              [0.0, 0, 8],      # eyeglasses: present when blue is high
              [8.0, 0, 0],      # beard: red high
              [0.0, 8, 0]])     # moustache: green high
B = np.array([0.0, 0, 0, -4, -4, -4])
HEADS = [{"name": "hair_color", "kind": "softmax", "classes": ["black", "blond", "red"]},
         {"name": "eyeglasses", "kind": "sigmoid", "classes": ["eyeglasses"]},
         {"name": "facial_hair", "kind": "sigmoid", "classes": ["beard", "moustache"]}]


def expected(rgb):
    logits = W @ np.asarray(rgb, float) + B
    return softmax(logits[:3]), sigmoid(logits[3:4]), sigmoid(logits[4:6])


def test_concatenated_output_gives_the_known_probabilities(tmp_path):
    linear_model(tmp_path / "model.onnx", {"logits": (W, B)})
    clf = load_multihead(manifest(tmp_path, HEADS))
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (51, 102, 204)]  # BGR: red, green, blue, mix
    result = clf([solid(c, 10 + i, 17 + 3 * i) for i, c in enumerate(colours)])  # any crop size
    assert result.n == 4
    for row, bgr in enumerate(colours):
        rgb = np.array(bgr[::-1]) / 255
        hair, glasses, beard = expected(rgb)
        np.testing.assert_allclose(result["hair_color"].probs[row], hair, atol=1e-5)
        np.testing.assert_allclose(result["eyeglasses"].probs[row], glasses, atol=1e-5)
        np.testing.assert_allclose(result["facial_hair"].probs[row], beard, atol=1e-5)
    # Known decisions: red -> 'black' (first class), green -> blond, blue -> red + glasses.
    assert result["hair_color"].labels[:3] == ["black", "blond", "red"]
    # The mix is rgb (0.8, 0.4, 0.2): eyeglasses logit 8 * 0.2 - 4 < 0.
    assert result["eyeglasses"].present[:, 0].tolist() == [False, False, True, False]
    records = result.records()
    assert records[0]["facial_hair"]["labels"] == ["beard"]
    assert records[1]["facial_hair"]["labels"] == ["moustache"]
    assert records[2]["eyeglasses"] == {"present": True, "score": pytest.approx(0.982, abs=1e-3)}
    assert records[2]["hair_color"]["label"] == "red"


def test_one_output_per_head_with_probabilities_and_offsets(tmp_path):
    # Two outputs. Output 'b' stands for heads that already emit probabilities: zero weights
    # and a bias of valid probabilities, read at explicit offsets and used as they are.
    linear_model(tmp_path / "model.onnx", {
        "a": (W[:3], B[:3]),
        "b": (np.zeros((4, 3)), np.array([0.7, 0.3, 0.2, 0.9]))})
    heads = [{"name": "hair_color", "kind": "softmax", "classes": ["black", "blond", "red"],
              "output": "a"},
             {"name": "gender", "kind": "softmax", "classes": ["female", "male"], "output": "b",
              "activation": "probabilities"},
             {"name": "hat", "kind": "sigmoid", "classes": ["hat"], "output": "b", "offset": 3,
              "activation": "probabilities", "threshold": 0.8},
             {"name": "bald", "kind": "sigmoid", "classes": ["bald"], "output": "b",
              "offset": 2, "activation": "probabilities"}]
    clf = load_multihead(manifest(tmp_path, heads))
    result = clf([solid((0, 255, 0))])
    np.testing.assert_allclose(result["gender"].probs[0], [0.7, 0.3], atol=1e-6)
    assert result.records()[0]["gender"] == {"label": "female", "score": 0.7}
    assert result.records()[0]["hat"] == {"present": True, "score": 0.9}
    assert result.records()[0]["bald"] == {"present": False, "score": 0.2}
    np.testing.assert_allclose(result["hair_color"].probs[0], expected([0, 1, 0])[0], atol=1e-5)


@pytest.mark.parametrize("heads, match", [
    (HEADS[:2], "unread"),                                          # last 2 columns not read
    (HEADS + [{"name": "x", "kind": "sigmoid", "classes": ["x"]}], "needs columns"),
    ([HEADS[0], dict(HEADS[1], offset=1), HEADS[2]], "overlaps"),
    ([dict(HEADS[0], output="nope")] + HEADS[1:], "reads output 'nope'"),
])
def test_a_manifest_that_does_not_describe_the_model_is_refused(tmp_path, heads, match):
    linear_model(tmp_path / "model.onnx", {"logits": (W, B)})
    with pytest.raises(ModelContractError, match=match):
        load_multihead(manifest(tmp_path, heads))


def test_manifest_typos_name_the_field(tmp_path):
    linear_model(tmp_path / "model.onnx", {"logits": (W, B)})
    bad = [dict(HEADS[0], kind="softmaxx")] + HEADS[1:]
    with pytest.raises(ConfigError, match="heads.0.kind"):
        load_multihead(manifest(tmp_path, bad))
    with pytest.raises(ConfigError, match="unique"):
        load_multihead(manifest(tmp_path, [HEADS[0], HEADS[0], HEADS[2]]))


def test_standard_face_heads_run_and_answer_per_face(tmp_path):
    # The documented head set on a 32-column model; column c has weight on one colour
    # channel so the answer is known: here every logit is 2*(r - g) for the test colour.
    width = sum(len(h["classes"]) for h in STANDARD_FACE_HEADS)
    assert width == 32
    w = np.tile([[2.0, -2.0, 0.0]], (width, 1))
    w[5:11] = 0  # hair colour: uniform
    w[5 + 1] = [6, 0, 0]  # ... except 'blond', driven by red
    linear_model(tmp_path / "model.onnx", {"logits": (w, np.zeros(width))})
    clf = load_multihead(manifest(tmp_path, STANDARD_FACE_HEADS))
    image = np.zeros((200, 300, 3), np.uint8)
    image[20:120, 30:130] = (0, 0, 255)     # a red square: face 1
    image[100:180, 200:280] = (0, 255, 0)   # a green square: face 2
    boxes = np.array([[50, 40, 110, 100], [210, 110, 270, 170]], np.float32)
    attrs = FaceAttributes(clf, crop="box", margin=0.0)(image, boxes, np.zeros((2, 8, 8, 3)))
    # gender is reported flat (gender + gender_score), every other head under its name
    assert len(attrs) == 2 and set(attrs[0]) == {h["name"] for h in STANDARD_FACE_HEADS} | {
        "gender_score"}
    assert attrs[0]["hair_color"]["label"] == "blond"
    assert attrs[0]["eyeglasses"]["present"] and not attrs[1]["eyeglasses"]["present"]
    assert attrs[0]["eyeglasses"]["score"] == pytest.approx(sigmoid(2.0), abs=1e-4)
    assert attrs[1]["facial_hair"]["labels"] == []
    assert attrs[0]["gender"] in ("female", "male") and 0.5 <= attrs[0]["gender_score"] <= 1


def test_box_crops_are_square_and_padded_outside_the_frame():
    image = np.full((50, 60, 3), 9, np.uint8)
    crops = box_crops(image, np.array([[-10, -10, 10, 30], [100, 100, 120, 110]]), margin=0.5)
    assert crops[0].shape == (60, 60, 3) and crops[0][0, 0, 0] == 0 and crops[0][-1, -1, 0] == 9
    assert crops[1].shape == (30, 30, 3) and not crops[1].any()  # wholly outside: black
