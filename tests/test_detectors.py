"""The bundled pretrained detectors on real images, and known-answer checks of decoding."""

import itertools
import json

import numpy as np
import pytest

from oko.core.geometry import box_iou
from oko.engines.base import TensorSpec
from oko.models import load_detector, resolve_model
from oko.models.centernet import CenterNetAdapter, local_maxima
from oko.models.nanodet import NanoDetAdapter
from oko.video import open_source

from conftest import SHARED_DATA

VEHICLES = {"car", "truck", "bus", "motorcycle"}


@pytest.fixture(scope="module")
def frames(sample_video):
    with open_source(sample_video) as src:
        return {f.index: f.image for f in itertools.islice(src, 301) if f.index in (0, 150, 300)}


@pytest.fixture(scope="module", params=["nanodet-coco", "centernet-mbv3-coco"])
def detector(request):
    return load_detector(request.param)


def persons(dets, labels, min_score=0.3):
    names = np.array(dets.labels(labels))
    return dets[(names == "person") & (dets.confidence >= min_score)]


def test_finds_the_walking_people(detector, frames):
    # Frame 0 of vtest: three clearly visible walkers (boxes measured by hand, +-10 px).
    walkers = np.array([[640, 238, 684, 324], [500, 156, 529, 233], [253, 220, 282, 310]], np.float32)
    found = persons(detector([frames[0]])[0], detector.labels, 0.5)
    iou = box_iou(walkers, found.xyxy)
    assert (iou.max(axis=1) > 0.6).all(), (detector.manifest.name, found.xyxy, iou)
    # Frame 300 has six or more people in view.
    assert len(persons(detector([frames[300]])[0], detector.labels)) >= 5


def test_nanodet_matches_independent_upstream_decode(frames):
    """Numbers from a separate numpy port of RangiLyu/nanodet's GFL decoding, run on the
    original (MS-MPEG4) frame; the bundled sample is re-encoded H.264, hence 1 px / 0.02."""
    det = load_detector("nanodet-coco")
    dets = det([frames[0]])[0]
    expected = {  # label, score, x, y, w, h
        ("person", 0.84, 639.8, 238.3, 44.5, 85.6), ("person", 0.78, 500.8, 155.7, 28.0, 78.0),
        ("person", 0.77, 253.2, 220.5, 28.8, 89.8), ("car", 0.66, 734.6, 50.3, 33.4, 44.4)}
    names = dets.labels(det.labels)
    for label, score, x, y, w, h in expected:
        box = np.array([[x, y, x + w, y + h]], np.float32)
        i = int(box_iou(box, dets.xyxy)[0].argmax())
        assert names[i] == label
        assert dets.confidence[i] == pytest.approx(score, abs=0.02)
        np.testing.assert_allclose(dets.xyxy[i], box[0], atol=1.0)


def test_batch_equals_single_images(frames):
    det = load_detector("nanodet-coco")  # dynamic batch axis
    assert det.max_batch is None
    imgs = [frames[0], frames[150], frames[300]]
    single = [det([im])[0] for im in imgs]
    for a, b in zip(single, det(imgs), strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)


@pytest.mark.skipif(not (SHARED_DATA / "plates-ru").is_dir(), reason="shared test data absent")
def test_every_labelled_plate_sits_on_a_detected_vehicle():
    """Real photos the detectors were never tuned on: each plate is on a found vehicle."""
    folder = SHARED_DATA / "plates-ru"
    labels = json.loads((folder / "labels.json").read_text())
    det = load_detector("nanodet-coco")
    hits = total = 0
    for entry in labels:
        (frame,) = list(open_source(folder / entry["file"]))
        dets = det([frame.image])[0]
        vehicles = dets[np.isin(dets.labels(det.labels), list(VEHICLES))]
        for plate in entry["plates"]:
            if "bbox" not in plate or plate.get("text") in (None, ""):
                continue
            cx = (plate["bbox"][0] + plate["bbox"][2]) / 2
            cy = (plate["bbox"][1] + plate["bbox"][3]) / 2
            v = vehicles.xyxy
            inside = (v[:, 0] <= cx) & (cx <= v[:, 2]) & (v[:, 1] <= cy) & (cy <= v[:, 3])
            hits += bool(inside.any())
            total += 1
    assert total >= 15
    assert hits / total >= 0.85, (hits, total)


def spec(name, *shape):
    return TensorSpec(name, tuple(shape), np.dtype(np.float32))


def test_nanodet_single_output_layout_decodes_like_per_level_outputs(frames):
    det = load_detector("nanodet-coco")
    inputs, geoms = det.adapter.preprocess([frames[0]])
    outs = det.engine.run(inputs)
    per_level = det.adapter.postprocess(outs, geoms)[0]
    cls = np.concatenate([outs[f"cls_s{s}"] for s in (8, 16, 32)], axis=1)
    reg = np.concatenate([outs[f"reg_s{s}"] for s in (8, 16, 32)], axis=1)
    manifest = det.manifest.model_copy(update={"outputs": None})
    single = NanoDetAdapter(manifest, [spec("images", None, 3, 416, 416)],
                            [spec("output", None, 3549, 80 + 44)])
    joined = single.postprocess({"output": np.concatenate([cls, reg], axis=2)}, geoms)[0]
    np.testing.assert_array_equal(joined.xyxy, per_level.xyxy)
    np.testing.assert_array_equal(joined.class_id, per_level.class_id)


def test_centernet_raw_heads_known_answer():
    manifest = resolve_model("centernet-mbv3-coco").model_copy(update={
        "outputs": None, "decode": {"format": "heads", "heatmap_activation": "none"},
        "input": resolve_model("centernet-mbv3-coco").input.model_copy(
            update={"layout": "NCHW", "width": 64, "height": 64})})
    adapter = CenterNetAdapter(manifest, [spec("images", 1, 3, 64, 64)],
                               [spec("hm", 1, 80, 16, 16), spec("wh", 1, 2, 16, 16),
                                spec("reg", 1, 2, 16, 16)])
    heat = np.zeros((80, 16, 16), np.float32)
    heat[0, 5, 3] = 0.9  # a person centred at cell (x=3, y=5)
    heat[0, 5, 4] = 0.5  # its neighbour: not a local maximum, must not become a box
    heat[2, 10, 12] = 0.6  # a car at cell (x=12, y=10)
    wh = np.zeros((2, 16, 16), np.float32)
    wh[:, 5, 3] = (2.0, 4.0)  # 8 x 16 input px
    wh[:, 10, 12] = (4.0, 2.0)
    off = np.zeros((2, 16, 16), np.float32)
    off[:, 5, 3] = (0.5, 0.25)
    from oko.core.geometry import stretch
    _, geom = stretch(np.zeros((64, 64, 3), np.uint8), 64, 64)
    dets = adapter.decode([heat, wh, off], geom)
    assert dets.class_id.tolist() == [0, 2]
    np.testing.assert_allclose(dets.confidence, [0.9, 0.6])
    # centre = (cell + offset) * 4; box = centre -+ size * 4 / 2
    np.testing.assert_allclose(dets.xyxy, [[10, 13, 18, 29], [40, 36, 56, 44]])
    assert local_maxima(heat)[0, 5, 3] and not local_maxima(heat)[0, 5, 4]
