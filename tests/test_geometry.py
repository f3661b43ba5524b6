import cv2
import numpy as np
import pytest

from oko.core.geometry import box_iou, clip_boxes, letterbox, nms, stretch


def random_boxes(rng, n, size=200.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(5, size / 3, (n, 2))
    return np.hstack([xy, xy + wh]).astype(np.float32)


def iou_reference(a, b):
    """Scalar loop, written independently of the vectorised version."""
    out = np.zeros((len(a), len(b)))
    for i, (ax1, ay1, ax2, ay2) in enumerate(a):
        for j, (bx1, by1, bx2, by2) in enumerate(b):
            iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
            ih = max(0.0, min(ay2, by2) - max(ay1, by1))
            inter = iw * ih
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def test_iou_matches_scalar_reference():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 30), random_boxes(rng, 17)
    np.testing.assert_allclose(box_iou(a, b), iou_reference(a, b), atol=1e-6)
    assert box_iou(a[:0], b).shape == (0, 17)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_opencv(seed, threshold):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 300)
    scores = rng.permutation(300).astype(np.float32) / 300 + 0.001  # distinct: no ties
    ours = nms(boxes, scores, threshold)
    xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float64)
    ref = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, threshold)
    ref = np.asarray(ref, dtype=np.int64).reshape(-1)
    assert ours.tolist() == ref.tolist()


def test_class_aware_nms_matches_opencv_per_class():
    rng = np.random.default_rng(7)
    boxes = random_boxes(rng, 200)
    scores = rng.permutation(200).astype(np.float32) / 200 + 0.001
    classes = rng.integers(0, 4, 200)
    ours = set(nms(boxes, scores, 0.45, classes).tolist())
    xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float64)
    ref = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), classes.tolist(), 0.0, 0.45)
    assert ours == set(np.asarray(ref).reshape(-1).tolist())
    # Two identical boxes survive together only when their classes differ.
    same = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    assert len(nms(same, np.array([0.9, 0.8]), 0.5, np.array([0, 1]))) == 2
    assert len(nms(same, np.array([0.9, 0.8]), 0.5, np.array([1, 1]))) == 1


def test_nms_max_det_and_order():
    rng = np.random.default_rng(1)
    boxes = random_boxes(rng, 100, size=5000)  # sparse: little suppression
    scores = rng.uniform(size=100).astype(np.float32)
    kept = nms(boxes, scores, 0.5, max_det=10)
    assert len(kept) == 10
    assert np.all(np.diff(scores[kept]) <= 0)
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


@pytest.mark.parametrize("shape", [(576, 768), (375, 500), (320, 320), (100, 700), (900, 60)])
def test_letterbox_inverse_maps_boxes_back(shape):
    h, w = shape
    img = np.zeros((h, w, 3), np.uint8)
    out, geom = letterbox(img, 320, 256)
    assert out.shape == (256, 320, 3)
    assert geom.scale_x == pytest.approx(geom.scale_y, rel=0.02)
    src = np.array([[0, 0, w, h], [w * 0.25, h * 0.5, w * 0.5, h * 0.75]], np.float32)
    dst = src * np.array([geom.scale_x, geom.scale_y] * 2, np.float32) + np.array([geom.pad_x, geom.pad_y] * 2, np.float32)
    np.testing.assert_allclose(geom.boxes_to_source(dst), src, atol=1e-3)
    # The unpadded image area of the output is where the source went.
    assert 0 <= geom.pad_x <= 160 and 0 <= geom.pad_y <= 128


def test_letterbox_pads_with_value_and_centres():
    img = np.full((100, 200, 3), 255, np.uint8)
    out, geom = letterbox(img, 64, 64, pad_value=114)
    assert (geom.pad_x, geom.pad_y) == (0, 16)
    assert (out[:16] == 114).all() and (out[48:] == 114).all() and (out[16:48] == 255).all()


def test_stretch_inverse_and_clip():
    img = np.zeros((50, 100, 3), np.uint8)
    out, geom = stretch(img, 64, 64)
    assert out.shape == (64, 64, 3)
    np.testing.assert_allclose(geom.boxes_to_source(np.array([[0, 0, 64, 64]])), [[0, 0, 100, 50]])
    np.testing.assert_allclose(clip_boxes(np.array([[-5, -5, 120, 70]]), 100, 50), [[0, 0, 100, 50]])
