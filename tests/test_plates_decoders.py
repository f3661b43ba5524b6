"""Known-answer tests of the plate decoders and geometry: RetinaFace priors and decoding,
greedy CTC, the plate-alphabet reader, corners, rectification and line splitting."""

from itertools import product
from math import ceil, log

import cv2
import numpy as np
import pytest

from oko.core.geometry import Letterbox
from oko.engines.base import TensorSpec
from oko.models.ctc import ctc_greedy
from oko.models.manifest import parse_manifest
from oko.models.plate_retina import RetinaPlateAdapter, retina_priors
from oko.plates.corners import box_corners, edge_lengths, estimate_in_box, expand, order_corners
from oko.plates.reader import CtcPlateReader
from oko.plates.rectify import homographies, side_by_side, split_lines, warp

STEPS, SIZES = [8, 16, 32], [[24, 48], [96, 192], [384, 768]]


def reference_priors(h, w):
    """The loop from agentclpr's CLPDetector.gen_priors (normalised), scaled to pixels."""
    anchors = []
    for k, step in enumerate(STEPS):
        for i, j in product(range(ceil(h / step)), range(ceil(w / step))):
            for size in SIZES[k]:
                anchors += [(j + 0.5) * step / w, (i + 0.5) * step / h, size / w, size / h]
    return np.array(anchors).reshape(-1, 4) * [w, h, w, h]


@pytest.mark.parametrize("w,h", [(640, 640), (100, 60), (33, 17)])
def test_priors_match_the_reference_loop(w, h):
    assert np.allclose(retina_priors(w, h, STEPS, SIZES), reference_priors(h, w), atol=1e-4)


def retina_adapter(width=64, height=64, threshold=0.5):
    manifest = parse_manifest({
        "name": "t", "task": "detect", "family": "retina_plate", "file": "x.onnx",
        "input": {"width": width, "height": height, "color": "BGR", "mean": [104, 117, 123],
                  "std": [1, 1, 1]},
        "labels": ["plate"], "outputs": ["loc", "conf", "landms"],
        "postprocess": {"conf_threshold": threshold, "class_agnostic": True}}, "test")
    n = len(retina_priors(width, height, STEPS, SIZES))
    outs = [TensorSpec("loc", (1, n, 4), np.float32), TensorSpec("conf", (1, n, 2), np.float32),
            TensorSpec("landms", (1, n, 8), np.float32)]
    return RetinaPlateAdapter(manifest, [TensorSpec("image", (1, 3, None, None), np.float32)], outs)


def test_retina_decoding_known_answer():
    adapter = retina_adapter()
    n = len(adapter.priors)
    loc, conf, landms = np.zeros((n, 4), np.float32), np.zeros((n, 2), np.float32), \
        np.zeros((n, 8), np.float32)
    conf[:, 0] = 1.0
    k = 2 * (1 * 8 + 3) + 1          # level 0, row 1, col 3, second size (48 px)
    assert np.allclose(adapter.priors[k], [28, 12, 48, 48])
    conf[k] = [0.1, 0.9]
    loc[k] = [0.5, -0.5, log(2) / 0.2, 0.0]   # centre moves by (+2.4, -2.4) px, width x2
    # Model corner order is BR, BL, TL, TR; offsets of +-1 prior size * 0.1 per unit.
    landms[k] = [2, 1, -2, 1, -2, -1, 2, -1]
    dets = adapter.decode([loc, conf, landms], Letterbox(1, 1, 0, 0, 64, 64))
    assert len(dets) == 1 and dets.confidence[0] == pytest.approx(0.9)
    cx, cy, w, h = 28 + 2.4, 12 - 2.4, 96, 48
    assert np.allclose(dets.xyxy[0], np.clip([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2],
                                             0, 64), atol=1e-4)
    # Canonical order TL, TR, BR, BL: 9.6 px steps (0.1 * 48 * 2 and * 1).
    want = [[28 - 9.6, 12 - 4.8], [28 + 9.6, 12 - 4.8], [28 + 9.6, 12 + 4.8], [28 - 9.6, 12 + 4.8]]
    assert np.allclose(dets.keypoints[0], want, atol=1e-4)


def test_retina_rejects_a_prior_count_mismatch():
    from oko.core.errors import ModelContractError

    adapter = retina_adapter()
    n = len(adapter.priors) + 2
    with pytest.raises(ModelContractError, match="priors"):
        adapter.decode([np.zeros((n, 4)), np.zeros((n, 2)), np.zeros((n, 8))],
                       Letterbox(1, 1, 0, 0, 64, 64))


def test_ctc_greedy_collapses_runs_and_keeps_alternatives():
    # Classes: 0 blank, 1 A, 2 B, 3 silent. Frames: A A _ A B B ~ B
    seq = [1, 1, 0, 1, 2, 2, 3, 2]
    probs = np.full((1, len(seq), 4), 0.02, np.float32)
    probs[0, np.arange(len(seq)), seq] = 0.9
    probs[0, 1, 2] = 0.07  # some B evidence inside the first A run
    (labels, run_max), = ctc_greedy(probs, blank=0, silent=(3,))
    assert labels.tolist() == [1, 1, 2, 2]
    assert run_max.shape == (4, 4) and run_max[0, 2] == pytest.approx(0.07)
    assert np.allclose(run_max[:, :3].max(axis=1), 0.9)
    empty = ctc_greedy(np.zeros((2, 5, 4), np.float32), blank=0)
    assert [len(lab) for lab, _ in empty] == [0, 0]


class _FakeRecognizer:
    """Stands in for a TextRecognizer: fixed per-frame probabilities, a given charset."""

    class adapter:
        class spec:
            height = 48

    def __init__(self, charset, frames):
        self.charset, self.blank, self.frames = charset, 0, frames

    def __call__(self, images):
        return np.repeat(self.frames[None], len(images), axis=0)


def test_plate_reader_folds_scripts_and_silences_everything_else():
    charset = ["", "a", "A", "А", "车", "7", "Д", " "]
    order = [3, 4, 1, 2, 0, 5, 6, 7, 5]   # А 车 a A _ 7 Д ␣ 7
    frames = np.full((len(order), len(charset)), 0.01, np.float32)
    frames[np.arange(len(order)), order] = 0.9
    reader = CtcPlateReader(_FakeRecognizer(charset, frames))
    read, = reader.read([np.zeros((20, 80, 3), np.uint8)], [1])
    # Cyrillic А and Latin a/A are one symbol: А|车 separates, a+A merge into one run.
    assert read.text == "AA77"
    assert read.probs.shape == (4, 36)
    assert read.confidences == pytest.approx([0.92, 0.92, 0.9, 0.9], abs=0.02)


def test_order_corners_from_any_order_and_tilt():
    boxes = box_corners([[10, 20, 110, 50], [0, 0, 160, 100]])
    for perm in ([2, 3, 0, 1], [3, 1, 0, 2], [1, 0, 3, 2]):
        assert np.array_equal(order_corners(boxes[:, perm]), boxes)
    for deg in (-40, -25, 15, 40):
        t = np.deg2rad(deg)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        tilted = (boxes[:1] - boxes[:1].mean(axis=1, keepdims=True)) @ rot.T
        assert np.allclose(order_corners(tilted[:, [3, 1, 0, 2]]), tilted, atol=1e-4)


def test_expand_and_edge_lengths():
    c = box_corners([[10, 20, 110, 40]])
    w, h = edge_lengths(c)
    assert w[0] == 100 and h[0] == 20
    assert np.allclose(expand(c, 0.1, 0.25), box_corners([[0, 15, 120, 45]]))


def test_homographies_map_corners():
    src = np.array([[[50, 40], [250, 60], [240, 120], [45, 100]]], np.float64)
    dst = box_corners([[0, 0, 200, 50]]).astype(np.float64)
    h = homographies(src, dst)[0]
    mapped = (h @ np.c_[src[0], np.ones(4)].T).T
    assert np.allclose(mapped[:, :2] / mapped[:, 2:], dst[0], atol=1e-6)


def test_warp_batched_equals_crops_and_opencv():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (200, 300, 3), np.uint8), (7, 7), 2)
    quads = np.array([[[10, 10], [100, 10], [100, 40], [10, 40]],
                      [[50, 40], [250, 60], [240, 120], [45, 100]]], np.float32)
    sizes = np.array([[90, 30], [200, 60]])
    crop, skewed = warp(image, quads, sizes)
    assert crop.shape == (30, 90, 3) and np.array_equal(crop, image[10:40, 10:100])
    m = cv2.getPerspectiveTransform(quads[1], np.float32([[0, 0], [200, 0], [200, 60], [0, 60]]))
    ref = cv2.warpPerspective(image, m, (200, 60), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    assert skewed.shape == (60, 200, 3) and np.abs(skewed.astype(int) - ref).mean() < 1.0
    assert warp(image, np.zeros((0, 4, 2)), np.zeros((0, 2))) == []


def test_two_line_plates_split_at_their_gap():
    plate = np.full((64, 128, 3), 230, np.uint8)
    cv2.putText(plate, "1234", (20, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    cv2.putText(plate, "AB 77", (10, 58), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    row, = split_lines([plate])
    assert 24 <= row <= 40
    line = side_by_side(plate, int(row), 48)
    assert line.shape[0] == 48 and line.shape[1] > 2 * 128


def test_corners_inside_a_box_follow_the_plate():
    image = np.zeros((120, 200, 3), np.uint8)
    rect = ((100, 60), (120, 36), 8.0)                # a tilted bright plate
    cv2.fillPoly(image, [cv2.boxPoints(rect).astype(np.int32)], (235, 235, 235))
    cv2.putText(image, "A123BC", (52, 68), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 2)
    box = np.array([[30, 30, 170, 90]], np.float32)
    corners = estimate_in_box(image, box)[0]
    want = order_corners(cv2.boxPoints(rect))[0]
    assert np.abs(corners - want).max() < 3.0
    # Nothing plate-like inside: the box corners are kept.
    assert np.allclose(estimate_in_box(np.zeros_like(image), box), box_corners(box))
