"""The pieces of the reid module on known inputs: view quality and the best-K keeper,
clothing colours, the person embedders (stripes and an ONNX ReID model), silhouettes
(the vendored person-mask model on a real person of the sample video), the track store,
and the split-video score."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DATA, ROOT, SAMPLE_VIDEO
from oko.core.errors import ModelContractError, OkoError
from oko.reid import split_eval
from oko.reid.colours import clothing_colours
from oko.reid.crops import BestViews, View, box_quality, crop_box, sharpness
from oko.reid.embed import (OnnxPersonEmbedder, StripeEmbedder, fill_background,
                            load_person_embedder)
from oko.reid.silhouette import load_masker, masks_from_detections
from oko.reid.store import TrackStore, TrackStoreError, TrackStoreModelMismatch
from oko.reid.stripes import COLOUR_BINS, N_STRIPES
from oko.reid.stripes import DIM as STRIPES_DIM

REID_RANDOM = DATA / "reid" / "reid-random"
IMAGENET_MEAN_BGR = [104, 116, 124]  # round(103.53), round(116.28), round(123.675)


# ---------------------------------------------------------------------- crops
def test_box_quality_known_answers() -> None:
    w, h = 640, 480
    q = box_quality(np.array([
        [100, 100, 140, 260],   # 160 px high, inside, alone: 1
        [300, 100, 330, 180],   # 80 px high: size 0.5
        [400, 50, 460, 450],    # 400 px high: size capped at 1
        [0, 200, 40, 360],      # touches the left edge: edge_penalty
        [600, 200, 639, 360],   # within EDGE_MARGIN_PX of the right edge
    ], np.float32), w, h)
    np.testing.assert_allclose(q, [1.0, 0.5, 1.0, 0.3, 0.3], atol=1e-6)
    assert q.dtype == np.float32
    q = box_quality(np.array([[100, 100, 140, 260], [300, 100, 340, 260]]), w, h,
                    full_height=320, edge_penalty=0.5)
    np.testing.assert_allclose(q, [0.5, 0.5], atol=1e-6)
    edge = box_quality(np.array([[100, 0, 140, 160]]), w, h, edge_penalty=0.5)  # top edge
    np.testing.assert_allclose(edge, [0.5], atol=1e-6)
    assert box_quality(np.zeros((0, 4)), w, h).shape == (0,)


def test_box_quality_occlusion_is_covered_share() -> None:
    # B covers the right half of A (x 120..140 of 100..140); A covers 1/4 of B.
    q = box_quality(np.array([[100, 100, 140, 260], [120, 100, 200, 260],
                              [400, 100, 440, 260]], np.float32), 640, 480)
    np.testing.assert_allclose(q, [0.5, 0.75, 1.0], atol=1e-6)
    # a box fully inside a bigger one is fully hidden: 0; the big one keeps 1 - share
    q = box_quality(np.array([[100, 100, 260, 260], [140, 140, 180, 180]], np.float32),
                    640, 480, full_height=160)
    np.testing.assert_allclose(q, [1 - (40 * 40) / (160 * 160), 0.25 * 0.0], atol=1e-6)


def _view(score: float) -> View:
    return View(score, np.zeros((2, 2, 3), np.uint8), None, 0.0, 0, [0, 0, 1, 1])


def test_best_views_keeps_k_best_sorted() -> None:
    best = BestViews(k=3)
    assert best.worst_kept() == -1.0                  # not full: anything enters
    for s in (0.2, 0.9, 0.5, 0.1, 0.7):
        best.offer(_view(s))
    assert [v.score for v in best.views] == [0.9, 0.7, 0.5]
    assert best.worst_kept() == 0.5
    best.offer(_view(0.5))                            # a tie does not displace
    best.offer(_view(0.3))
    assert [v.score for v in best.views] == [0.9, 0.7, 0.5]
    best.offer(_view(0.95))
    assert [v.score for v in best.views] == [0.95, 0.9, 0.7]


def test_sharpness_prefers_sharp_pattern() -> None:
    yy, xx = np.mgrid[:120, :60]
    board = np.where(((yy // 6) + (xx // 6)) % 2 == 0, 230, 30).astype(np.uint8)
    sharp = cv2.cvtColor(board, cv2.COLOR_GRAY2BGR)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4)
    s_sharp = sharpness(sharp, sharp_ref=1e6)
    s_blur = sharpness(blurred, sharp_ref=1e6)
    assert s_sharp > 10 * s_blur > 0
    assert sharpness(sharp) == 1.0                    # capped
    assert sharpness(np.full((50, 30, 3), 128, np.uint8)) == 0.0  # flat: no edges
    assert sharpness(np.zeros((2, 40, 3), np.uint8)) == 0.0      # too small to measure
    # tall crops are measured at 128 px: a 2x upscaled copy scores about the same blur
    tall = cv2.resize(blurred, (120, 240), interpolation=cv2.INTER_LINEAR)
    assert sharpness(tall, sharp_ref=1e6) == pytest.approx(s_blur, rel=0.5)


def test_crop_box_clips_to_frame() -> None:
    img = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    c = crop_box(img, np.array([-10.0, -5.0, 50.0, 40.0]))
    assert c.shape == (40, 50, 3)
    np.testing.assert_array_equal(c, img[:40, :50])
    assert np.shares_memory(c, img)                   # a view, no copy
    assert crop_box(img, np.array([190.0, 90.0, 250.0, 130.0])).shape == (10, 10, 3)
    assert crop_box(img, np.array([10.0, 10.0, 10.0, 10.0])).shape == (1, 1, 3)  # degenerate
    assert crop_box(img, np.array([10.4, 10.6, 20.2, 30.3])).shape == (19, 10, 3)  # rounded


# ---------------------------------------------------------------------- colours
RED, BLUE, GREEN = (0, 0, 255), (255, 0, 0), (0, 200, 0)


def _two_tone(h: int = 120, w: int = 60) -> np.ndarray:
    crop = np.zeros((h, w, 3), np.uint8)
    crop[: h // 2] = RED
    crop[h // 2:] = BLUE
    return crop


def test_colours_upper_red_lower_blue() -> None:
    out = clothing_colours([_two_tone(), _two_tone(60, 24)])
    assert out == [{"upper_colour": "red", "lower_colour": "blue"}] * 2
    swapped = _two_tone()[::-1]
    assert clothing_colours([swapped]) == [{"upper_colour": "blue", "lower_colour": "red"}]


def test_colours_mask_keeps_background_out() -> None:
    h, w = 120, 60
    crop = np.zeros((h, w, 3), np.uint8)
    crop[:] = GREEN                                   # background everywhere ...
    person = np.zeros((h, w), bool)
    person[:, 24:36] = True                           # ... but a narrow centre column
    crop[: h // 2][person[: h // 2]] = RED
    crop[h // 2:][person[h // 2:]] = BLUE
    # without a mask the middle 60 % is 2/3 green: the background wins (why masks matter)
    assert clothing_colours([crop]) == [{"upper_colour": "green", "lower_colour": "green"}]
    assert clothing_colours([crop], [person]) == [{"upper_colour": "red",
                                                   "lower_colour": "blue"}]
    # a None mask in the list means "no silhouette" for that crop only
    assert clothing_colours([crop, _two_tone()], [person, None]) == [
        {"upper_colour": "red", "lower_colour": "blue"}] * 2


def test_colours_grey_when_little_hue() -> None:
    crop = np.full((120, 60, 3), 128, np.uint8)
    crop[20:25, 20:40] = RED                          # a small red badge: < 30 % of the region
    assert clothing_colours([crop])[0]["upper_colour"] == "grey"


def test_colours_tiny_crops_and_empty_masks_give_none() -> None:
    tiny = [np.full((1, 1, 3), RED, np.uint8), np.full((2, 2, 3), RED, np.uint8),
            np.full((6, 3, 3), RED, np.uint8), np.zeros((0, 5, 3), np.uint8)]
    assert clothing_colours(tiny) == [{"upper_colour": None, "lower_colour": None}] * 4
    crop = _two_tone()
    assert clothing_colours([crop], [np.zeros(crop.shape[:2], bool)]) == [
        {"upper_colour": None, "lower_colour": None}]
    # a silhouette of only a few pixels in the upper body is too little to name a colour
    few = np.zeros(crop.shape[:2], bool)
    few[30, 28:32] = True
    few[80:100, 20:40] = True
    assert clothing_colours([crop], [few]) == [{"upper_colour": None, "lower_colour": "blue"}]
    assert clothing_colours([]) == []


# ---------------------------------------------------------------------- embedders
@pytest.fixture(scope="module")
def onnx_embedder() -> OnnxPersonEmbedder:
    emb = load_person_embedder(REID_RANDOM)
    assert isinstance(emb, OnnxPersonEmbedder)
    return emb


def _crops(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (int(rng.integers(40, 300)), int(rng.integers(20, 150)), 3),
                         dtype=np.uint8) for _ in range(n)]


def test_stripe_embedder_identity() -> None:
    emb = load_person_embedder("stripes")
    assert isinstance(emb, StripeEmbedder)
    assert (emb.name, emb.dim, emb.model_id) == ("stripes", STRIPES_DIM, "stripes-v1/1632d")
    assert STRIPES_DIM == 1632
    timings: dict[str, float] = {}
    out = emb(_crops(3), timings=timings)
    assert out.shape == (3, 1632) and out.dtype == np.float32 and "embed" in timings
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_onnx_embedder_unit_norm_and_batch_invariant(onnx_embedder) -> None:
    emb = onnx_embedder
    assert emb.name == "reid-random" and emb.dim == 512
    assert emb.model_id.startswith("reid-random/512d/") and len(emb.model_id) == 33
    crops = _crops(5, seed=1)
    batch = emb(crops)
    assert batch.shape == (5, 512) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    single = np.concatenate([emb([c]) for c in crops])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    # different crops give different vectors (the network is not a constant)
    assert float(batch[0] @ batch[1]) < 0.9999
    assert emb([]).shape == (0, 512)


def test_fill_background_uses_imagenet_mean(onnx_embedder) -> None:
    np.testing.assert_array_equal(onnx_embedder.fill_bgr, IMAGENET_MEAN_BGR)
    crop = np.random.default_rng(2).integers(0, 256, (64, 32, 3), dtype=np.uint8)
    mask = np.zeros((64, 32), bool)
    mask[10:50, 8:24] = True
    out = fill_background(crop, mask, onnx_embedder.fill_bgr)
    assert out.dtype == np.uint8 and out.shape == crop.shape
    np.testing.assert_array_equal(out[mask], crop[mask])
    np.testing.assert_array_equal(out[~mask], np.tile(IMAGENET_MEAN_BGR, ((~mask).sum(), 1)))
    assert fill_background(crop, None, onnx_embedder.fill_bgr) is crop
    with pytest.raises(ValueError, match="does not match"):
        fill_background(crop, mask[:10], onnx_embedder.fill_bgr)
    # the embedder fills before embedding: same vector as embedding the filled crop
    np.testing.assert_allclose(onnx_embedder([crop], [mask]), onnx_embedder([out]),
                               atol=1e-6)
    assert float(onnx_embedder([crop], [mask])[0] @ onnx_embedder([crop])[0]) < 0.9999
    # a None in the list: that crop as is
    np.testing.assert_allclose(onnx_embedder([crop, crop], [None, mask]),
                               onnx_embedder([crop, out]), atol=1e-6)


def test_one_channel_reid_model_is_refused(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_reid_testdata", ROOT / "tools" / "make_reid_testdata.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    folder = tool.write(tmp_path / "reid-grey", channels=1)
    with pytest.raises(ModelContractError, match="3-channel") as info:
        load_person_embedder(folder)
    assert "1 channel" in str(info.value)


def test_non_reid_model_is_refused() -> None:
    with pytest.raises(ModelContractError, match="not a person ReID embedder"):
        load_person_embedder("person-mask-selfie")


def test_one_by_two_pixel_crop_embeds_like_its_colour(onnx_embedder) -> None:
    """A 1x2 crop is a legal (if useless) input: both embedders return a finite unit
    vector, not an error and not NaN, and it describes the crop's colour: the ONNX model
    sees the same (uniform) input as for a full-size crop of that colour; the stripe
    descriptor has the same colour histograms. (Not the same whole stripe vector: on a
    flat image its gradient-orientation histograms are L1-normalised float noise, ~1e-8
    magnitudes, which differ between resize paths: cosine ~0.91.)"""
    colour = (30, 90, 200)
    tiny = np.full((1, 2, 3), colour, np.uint8)
    big = np.full((256, 128, 3), colour, np.uint8)
    stripes = StripeEmbedder()
    for emb in (stripes, onnx_embedder):
        v = emb([tiny, big])
        assert v.shape == (2, emb.dim) and np.isfinite(v).all()
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
        vm = emb([tiny], [np.ones((1, 2), bool)])     # a full mask: the same as none
        np.testing.assert_allclose(vm, v[:1], atol=1e-5)
    v = onnx_embedder([tiny, big])
    assert float(v[0] @ v[1]) == pytest.approx(1.0, abs=1e-5)
    v = stripes([tiny, big]).reshape(2, N_STRIPES, -1)[:, :, :COLOUR_BINS]
    v /= np.linalg.norm(v, axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(v[0], v[1], atol=1e-5)
    # stripes: an all-background mask leaves no foreground -> the zero vector (documented)
    assert not stripes([tiny], [np.zeros((1, 2), bool)]).any()


# ---------------------------------------------------------------------- silhouettes
@pytest.fixture(scope="module")
def person_crop() -> np.ndarray:
    from oko.models import load_detector

    cap = cv2.VideoCapture(str(SAMPLE_VIDEO))
    ok, frame = cap.read()
    cap.release()
    assert ok
    detector = load_detector("nanodet-coco")
    dets = detector([frame])[0]
    people = dets.xyxy[dets.class_id == detector.labels.index("person")]
    assert len(people) >= 3
    box = people[np.argmax(people[:, 3] - people[:, 1])]
    crop = crop_box(frame, box)
    assert crop.shape[0] >= 60
    return np.ascontiguousarray(crop)


@pytest.fixture(scope="module")
def masker():
    return load_masker()


def test_masker_finds_person_on_real_crop(masker, person_crop) -> None:
    before = masker.empty
    (mask,) = masker([person_crop])
    assert mask is not None and mask.dtype == bool and mask.shape == person_crop.shape[:2]
    assert 0.2 <= mask.mean() <= 0.9, mask.mean()
    h, w = mask.shape
    centre = mask[int(0.1 * h):int(0.9 * h), w // 2]   # the body's axis, head to feet
    assert centre.mean() >= 0.8, centre.mean()
    # the body is in the middle: the centre third holds more foreground than the sides
    third = w // 3
    assert mask[:, third:2 * third].mean() > max(mask[:, :third].mean(),
                                                 mask[:, 2 * third:].mean())
    assert masker.empty == before


def test_masker_empty_and_tiny_crops_give_none(masker, person_crop) -> None:
    before = masker.empty
    grey = np.full((120, 50, 3), 128, np.uint8)
    out = masker([grey, np.zeros((1, 1, 3), np.uint8), np.zeros((1, 8, 3), np.uint8),
                  np.zeros((8, 1, 3), np.uint8), person_crop])
    assert out[:4] == [None, None, None, None]
    assert out[4] is not None and out[4].shape == person_crop.shape[:2]
    assert masker.empty == before + 1                 # the grey crop; tiny ones never ran
    assert masker([]) == []


def test_masks_from_detections_crops_to_boxes() -> None:
    masks = np.zeros((4, 100, 200), np.uint8)
    masks[0, 20:60, 30:80] = 1                        # exactly box 0
    masks[1, 90:100, 190:200] = 1                     # box 1 runs off the frame
    masks[2, 0:1, 0:1] = 1                            # 1 px in a 10x10 box: too little
    masks[3, 0:100, 0:200] = 1
    boxes = np.array([[30, 20, 80, 60], [190, 90, 250, 130], [0, 0, 10, 10],
                      [300, 300, 400, 400]], np.float32)  # box 3 lies outside the frame
    out = masks_from_detections(masks, boxes)
    assert out[0] is not None and out[0].shape == (40, 50) and out[0].all()
    assert out[0].dtype == bool
    assert out[1] is not None and out[1].shape == (10, 10) and out[1].all()
    assert out[2] is None and out[3] is None
    half = np.zeros((1, 100, 200), bool)
    half[0, 20:40, 30:80] = True
    (m,) = masks_from_detections(half, boxes[:1])
    assert m is not None and m[:20].all() and not m[20:].any()
    assert masks_from_detections(None, boxes) == [None] * 4


# ---------------------------------------------------------------------- store
def _units(rng: np.random.Generator, n: int, d: int = 8) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_track_store_add_search_and_reopen(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "tracks.db"
    vecs = _units(rng, 4)
    with TrackStore.create(path, "m-a/8d/abc", "m-a", 8) as store:
        rows = [store.add(v, 10 + i, "cam1" if i < 2 else "cam2", i, 1.0 * i, 2.0 * i,
                          {"upper_colour": "red"} if i == 2 else None,
                          b"jpeg-%d" % i) for i, v in enumerate(vecs)]
        assert len(store) == 4 and rows == sorted(rows)
    query = vecs[2] + 0.05 * _units(rng, 1)[0]
    query /= np.linalg.norm(query)
    with TrackStore.open(path, readonly=True) as store:
        (hits,) = store.search(query[None], k=3)
        assert len(hits) == 3
        top = hits[0].track
        assert (top.global_id, top.channel, top.track_id) == (12, "cam2", 2)
        assert (top.first_seen, top.last_seen) == (2.0, 4.0)
        assert top.attributes == {"upper_colour": "red"}
        assert hits[0].similarity == pytest.approx(float(vecs[2] @ query), abs=1e-5)
        assert hits[0].similarity >= hits[1].similarity >= hits[2].similarity
        assert store.crop(top.row) == b"jpeg-2"
        assert store.crop(9999) is None
        matrix, tracks = store.load()
        np.testing.assert_array_equal(matrix, vecs)
        assert [t.attributes for t in tracks] == [{}, {}, {"upper_colour": "red"}, {}]
    # same model: open_or_create opens and appends
    with TrackStore.open_or_create(path, "m-a/8d/abc", "m-a", 8) as store:
        store.add(vecs[0], 99, "cam3", 7, 5.0, 6.0)
        assert len(store) == 5
        with pytest.raises(TrackStoreModelMismatch, match="4-d embedding"):
            store.add(np.ones(4, np.float32), 1, "cam1", 1, 0.0, 1.0)


def test_empty_store_search_returns_no_hits(tmp_path: Path) -> None:
    with TrackStore.create(tmp_path / "t.db", "m", "m", 8) as store:
        assert store.search(_units(np.random.default_rng(1), 2), k=5) == [[], []]


def test_track_store_refuses_other_model(tmp_path: Path) -> None:
    path = tmp_path / "tracks.db"
    TrackStore.create(path, "stripes-v1/1632d", "stripes", 1632).close()
    with pytest.raises(TrackStoreModelMismatch) as info:
        TrackStore.open_or_create(path, "reid-random/512d/2a922e4e", "reid-random", 512)
    err = info.value
    assert isinstance(err, OkoError) and isinstance(err, TrackStoreError)
    assert "'stripes'" in err.message and "'reid-random'" in err.message
    assert "1632-d" in err.message and "512-d" in err.message
    assert err.hint is not None and "--model stripes" in err.hint


def test_track_store_refuses_foreign_and_garbage_files(tmp_path: Path) -> None:
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(TrackStoreError, match="not an oko ReID track store"):
        TrackStore.open(foreign)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database\x00" * 200)
    with pytest.raises(TrackStoreError, match="not a readable oko ReID track store"):
        TrackStore.open(garbage)
    with pytest.raises(TrackStoreError, match="no ReID track store here"):
        TrackStore.open(tmp_path / "missing.db")
    with pytest.raises(TrackStoreError, match="already exists"):
        TrackStore.create(garbage, "m", "m", 8)
    # a face gallery is a vector file too, but not a track store
    from oko.faces.gallery import Gallery

    Gallery.create(tmp_path / "faces.db", "m", "m", 8).close()
    with pytest.raises(TrackStoreError, match="not an oko ReID track store"):
        TrackStore.open(tmp_path / "faces.db")


# ---------------------------------------------------------------------- split_eval
def _event(kind: str, channel: str, frame: int, track: int, gid: int, bbox: list[float],
           joined: tuple[str, int] | None = None) -> dict:
    data = {"global_id": gid, "track_id": track, "bbox": bbox}
    if joined is not None:
        data["from"] = {"channel": joined[0], "track_id": joined[1], "time": 0.0}
        data["to"] = {"channel": channel, "track_id": track, "time": 0.0}
    return {"type": kind, "channel_id": channel, "frame_index": frame, "data": data}


def test_split_score_counts_matches_misses_and_false_matches() -> None:
    off = 200
    reference = {
        10: (np.array([[0, 0, 10, 20], [100, 0, 110, 20]], np.float32), np.array([1, 2])),
        20: (np.array([[300, 0, 310, 20], [400, 0, 410, 20]], np.float32), np.array([1, 2])),
        30: (np.array([[350, 0, 360, 20]], np.float32), np.array([3])),
    }
    events = [
        _event("person_appeared", "left", 10, 1, 1, [0, 0, 10, 20]),       # ref 1
        _event("person_appeared", "left", 10, 2, 2, [100, 0, 110, 20]),    # ref 2
        # ref 1 crosses and is joined to left/1: a matched crossing
        _event("person_reidentified", "right", 20, 5, 1, [100, 0, 110, 20], ("left", 1)),
        # ref 2 crosses but gets a new id: a missed crossing
        _event("person_appeared", "right", 20, 6, 3, [200, 0, 210, 20]),
        # ref 3 (only on the right) wrongly joined to left/1 (ref 1): a false match
        _event("person_reidentified", "right", 30, 7, 1, [151, 0, 161, 20], ("left", 1)),
        # no reference box at frame 40: unmapped
        _event("person_appeared", "left", 40, 9, 4, [0, 0, 10, 20]),
        # a box overlapping no reference box enough: unmapped too
        _event("person_appeared", "left", 10, 8, 5, [50, 50, 60, 70]),
        {"type": "line_crossed", "channel_id": "left", "frame_index": 10, "data": {}},
    ]
    report = split_eval.score(events, reference, right_offset=off)
    assert report.to_dict() == {"tracks": 7, "unmapped": 2, "crossings": 2, "matched": 1,
                                "matched_fraction": 0.5, "reidentified": 2,
                                "false_matches": 1}
    assert sorted((d["reference"], d["matched"], d["left"], d["right"])
                  for d in report.details) == [(1, True, [1], [1]), (2, False, [2], [3])]
    # without the right offset the right boxes map nowhere: no crossing at all
    shifted = split_eval.score(events, reference, right_offset=0)
    assert (shifted.crossings, shifted.matched, shifted.false_matches) == (0, 0, 0)
    assert split_eval.SplitReport().matched_fraction == 0.0
