"""Semantic segmentation adapters (oko.road.segmentation) on constructed-weight models.

tests/data/road holds three tiny ONNX graphs (tools/make_semseg_testdata.py): a 1x1 identity
convolution on the normalised RGB input, so class 0 (road) wins on red pixels, 1
(lane_marking) on green, 2 (crack) on blue. Frames of pure colour regions therefore have an
exactly known class map:

- ``seg-logits`` (mmseg, logits at input resolution, stretch);
- ``seg-indices`` (mmseg, ArgMax -> int64 [N, 1, H, W], letterbox);
- ``segformer`` (segformer, 4x4 average pool -> logits at 1/4 resolution, stretch).

Where region edges sit on whole pixels at every resampling step (even columns for a 2x
downscale, multiples of the 1/4 cell) the expected map is exact. Elsewhere the input's
bilinear resize blends the two colours of an edge and the decoder's nearest-neighbour
upsampling then places that edge within one model pixel, so pixels next to an edge (a
band of ``radius`` frame pixels, about one model pixel) may go either way; everywhere else
must match.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from oko.core.errors import ConfigError, ModelContractError
from oko.core.geometry import Letterbox
from oko.models.manifest import load_manifest
from oko.road.segmentation import SegmentationResult, SemanticSegmenter, load_segmenter

from conftest import DATA

ROAD = DATA / "road"
RED, GREEN, BLUE = (0, 0, 255), (0, 255, 0), (255, 0, 0)  # BGR
ROAD_ID, LANE_ID, CRACK_ID = 0, 1, 2


def manifest(name: str, **changes):
    m = load_manifest(ROAD / name / "manifest.yaml")
    if "input" in changes:
        changes["input"] = m.input.model_copy(update=changes["input"])
    return m.model_copy(update=changes)


@pytest.fixture(scope="module")
def seg():
    return {name: load_segmenter(ROAD / name) for name in ("seg-logits", "seg-indices",
                                                           "segformer")}


def scene(height: int, width: int, rects) -> tuple[np.ndarray, np.ndarray]:
    """A BGR frame and its class map: left half red, right half blue, then the
    (y0, y1, x0, x1) rectangles painted green."""
    img = np.empty((height, width, 3), np.uint8)
    img[:, :width // 2], img[:, width // 2:] = RED, BLUE
    cmap = np.full((height, width), CRACK_ID, np.uint8)
    cmap[:, :width // 2] = ROAD_ID
    for y0, y1, x0, x1 in rects:
        img[y0:y1, x0:x1] = GREEN
        cmap[y0:y1, x0:x1] = LANE_ID
    return img, cmap


def assert_map(got: np.ndarray, want: np.ndarray, radius: int = 0) -> None:
    """Equal, except within ``radius`` pixels of an edge of ``want`` (see module doc)."""
    assert got.shape == want.shape
    if radius == 0:
        np.testing.assert_array_equal(got, want)
        return
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    band = cv2.dilate(want, kernel) != cv2.erode(want, kernel)
    wrong = (got != want) & ~band
    assert not wrong.any(), f"{wrong.sum()} pixels wrong away from edges, e.g. " \
                            f"{np.argwhere(wrong)[:5].tolist()}"
    assert (got == want).mean() > 0.9


# 128x64 frames: every edge even (2x downscale into 64x64) and on 8x4-pixel cells (1/4).
WIDE_RECTS = [(16, 48, 32, 96)]


@pytest.mark.parametrize("name", ["seg-logits", "seg-indices", "segformer"])
def test_known_class_map_exact(seg, name):
    img, want = scene(64, 128, WIDE_RECTS)
    result = seg[name]([img])[0]
    assert result.class_map.dtype == np.uint8
    assert_map(result.class_map, want)  # seg-indices letterboxes: pad 16 rows undone exactly
    assert result.coverage() == pytest.approx(
        {"road": 0.375, "lane_marking": 0.25, "crack": 0.375})


def test_output_kinds_and_resolution(seg):
    kinds = {n: (s.decoder.kind, s.decoder.output) for n, s in seg.items()}
    assert kinds == {"seg-logits": ("logits", "output"), "seg-indices": ("indices", "output"),
                     "segformer": ("logits", "logits")}
    assert [o.shape for o in seg["segformer"].engine.outputs()] == [(None, 3, 16, 16)]


@pytest.mark.parametrize("name,resize,radius", [
    ("seg-logits", "stretch", 2), ("seg-logits", "letterbox", 2),
    ("seg-indices", "letterbox", 2), ("seg-indices", "stretch", 2),
    # 1/4 output: one model pixel is 6.25 frame pixels; letterbox pad 13 -> 3.25 cells
    # (the fractional, warpAffine path).
    ("segformer", "stretch", 4), ("segformer", "letterbox", 4)])
def test_non_square_frame(name, resize, radius):
    segmenter = load_segmenter(manifest(name, input={"resize": resize}))
    img, want = scene(60, 100, [(10, 30, 20, 40), (35, 55, 70, 90)])
    result = segmenter([img])[0]
    assert result.class_map.shape == (60, 100)
    assert_map(result.class_map, want, radius)


def test_letterbox_undone_at_quarter_resolution():
    """The frame-to-model-pixel map, against the closed form, for a 1/4 output with a pad
    that is not a whole model pixel (warp path) and one that is (crop + resize path)."""
    decoder = load_segmenter(manifest("segformer", input={"resize": "letterbox"})).decoder
    cells = np.arange(256, dtype=np.uint8).reshape(16, 16)  # each model pixel its own id
    # Pads of 3.25 and 3.5 cells (warp path); 4 cells with 6.25 frame pixels per cell
    # (crop + resize path, where INTER_NEAREST would be off by half a pixel); 4 cells x8.
    for width, height in [(100, 60), (50, 90), (100, 50), (128, 64)]:
        _, (geom,) = decoder.preprocess([np.zeros((height, width, 3), np.uint8)])
        got = decoder.to_frame(cells, geom)
        ux = ((np.arange(width) + 0.5) * geom.scale_x + geom.pad_x) / 4
        uy = ((np.arange(height) + 0.5) * geom.scale_y + geom.pad_y) / 4
        want = cells[np.floor(uy).astype(int)[:, None], np.floor(ux).astype(int)[None, :]]
        # Skip centres that land exactly on a cell edge (rounding ties).
        tie = (np.abs(uy - np.rint(uy)) < 1e-3)[:, None] | (np.abs(ux - np.rint(ux)) < 1e-3)
        assert (got == want)[~tie].all(), (width, height)


def test_coverage_in_roi(seg):
    img, _ = scene(64, 128, WIDE_RECTS)
    result = seg["seg-logits"]([img])[0]
    left = np.zeros((64, 128), bool)
    left[:, :64] = True
    assert result.coverage(left) == pytest.approx(
        {"road": 0.75, "lane_marking": 0.25, "crack": 0.0})
    assert result.coverage(left.astype(np.uint8) * 255) == result.coverage(left)
    assert result.coverage(np.zeros((64, 128), bool)) == {
        "road": 0.0, "lane_marking": 0.0, "crack": 0.0}
    assert result.pixel_counts(left).tolist() == [3072, 1024, 0]
    assert result.mask("lane_marking").sum() == 2048
    with pytest.raises(ValueError, match="ROI mask"):
        result.coverage(np.ones((10, 10), bool))


def test_polygons_known_rectangle_and_min_area(seg):
    # A 64x32 lane marking and an 8x4 speck, all edges even: exact class map.
    img, want = scene(64, 128, [*WIDE_RECTS, (4, 8, 8, 16)])
    result = seg["seg-logits"]([img])[0]
    assert_map(result.class_map, want)
    lanes = result.polygons([LANE_ID])
    assert [p["area"] for p in lanes] == [2048, 32]
    big = result.polygons(["lane_marking"], min_area=100)
    assert len(big) == 1
    rect = big[0]
    assert rect["label"] == "lane_marking" and rect["class_id"] == LANE_ID
    assert abs(rect["area"] - 64 * 32) <= 0.02 * 64 * 32
    assert len(rect["polygon"]) == 4
    assert sorted(map(tuple, rect["polygon"])) == [(32, 16), (32, 47), (95, 16), (95, 47)]
    # Every class present, filtered: the two half planes (with the marking cut out) remain.
    labels = sorted(p["label"] for p in result.polygons(min_area=100))
    assert labels == ["crack", "lane_marking", "road"]


def test_colorize_and_blend(seg):
    img, want = scene(64, 128, WIDE_RECTS)
    result = seg["seg-logits"]([img])[0]
    colour = result.colorize()
    assert colour.shape == (64, 128, 3) and colour.dtype == np.uint8
    # Manifest colours are RGB; frames are BGR.
    assert colour[0, 0].tolist() == [128, 64, 128][::-1]
    assert colour[30, 60].tolist() == [255, 255, 255]
    assert colour[0, 127].tolist() == [0, 0, 255]
    np.testing.assert_array_equal(result.blend(img, 1.0), colour)
    np.testing.assert_array_equal(result.blend(img, 0.0), img)
    half = result.blend(img, 0.5).astype(int)
    assert np.abs(half - (img.astype(int) + colour) / 2).max() <= 1


def test_index_output_ignore_and_layouts(seg):
    decoder = seg["seg-indices"].decoder
    raw = np.zeros((1, 8, 8), np.int64)  # [N, H, W]
    raw[0, :, 4:] = 2
    raw[0, :2] = 255  # ignore_index
    geom = Letterbox(64 / 8, 64 / 8, 0, 0, 8, 8)  # model output 64x64 -> 8x8 frame
    big = np.repeat(np.repeat(raw, 8, axis=1), 8, axis=2)  # at model resolution
    (result,) = decoder.postprocess({"output": big}, [geom])
    np.testing.assert_array_equal(result.class_map, raw[0])
    assert result.coverage() == pytest.approx({"road": 0.375, "lane_marking": 0.0,
                                               "crack": 0.375})
    assert result.colorize()[0].max() == 0  # ignored: black
    img = np.full((8, 8, 3), 7, np.uint8)
    assert (result.blend(img, 1.0)[:2] == 7).all()
    assert result.polygons(min_area=1)[0]["area"] == 24
    # NHWC-style [N, H, W, 1] and float-coded indices read the same.
    for variant in (big[..., None], big[:, None].astype(np.float32)):
        (again,) = decoder.postprocess({"output": variant}, [geom])
        np.testing.assert_array_equal(again.class_map, raw[0])


def test_out_of_range_index_is_an_error():
    # Stretch: the letterbox's grey padding reads as blue (crack) to this model, and the
    # check is on the model's whole output, padding included.
    two = load_segmenter(manifest("seg-indices", labels=["road", "lane_marking"],
                                  decode={"ignore_index": 255}, input={"resize": "stretch"}))
    img, _ = scene(64, 128, WIDE_RECTS)
    with pytest.raises(ModelContractError, match=r"class indices \[2\].*2 labels"):
        two([img])
    only_red_green = img.copy()
    only_red_green[:, 64:] = RED
    assert two([only_red_green])[0].coverage()["road"] == pytest.approx(0.875)


def test_label_count_mismatch_is_refused_at_load():
    with pytest.raises(ModelContractError, match="4 labels.*3 channels"):
        load_segmenter(manifest("seg-logits", labels=["road", "lane_marking", "crack", "pothole"]))
    with pytest.raises(ModelContractError, match="2 labels.*3 channels"):
        load_segmenter(manifest("segformer", labels=["road", "crack"]))


def test_contract_errors():
    with pytest.raises(ModelContractError, match="segformer output 'output'.*indices"):
        load_segmenter(manifest("seg-indices", family="segformer"))
    with pytest.raises(ModelContractError, match="not a semantic segmentation model"):
        load_segmenter(DATA / "reid" / "reid-random")
    with pytest.raises(ConfigError, match="2 colours for 3 labels"):
        load_segmenter(manifest("seg-logits", decode={"colors": [[1, 2, 3], [4, 5, 6]]}))
    with pytest.raises(ConfigError, match="decode"):
        load_segmenter(manifest("seg-logits", decode={"palette": "x"}))


class _TwoAtATime:
    """The ONNX engine as if compiled for batches of at most 2, counting runs."""

    def __init__(self, engine):
        self.engine, self.max_batch, self.batches = engine, 2, []

    def inputs(self):
        return self.engine.inputs()

    def outputs(self):
        return self.engine.outputs()

    def run(self, feeds):
        self.batches.append(next(iter(feeds.values())).shape[0])
        return self.engine.run(feeds)


@pytest.mark.parametrize("name", ["seg-logits", "segformer"])
def test_batch_of_frames_of_different_sizes(seg, name):
    engine = _TwoAtATime(seg[name].engine)
    segmenter = SemanticSegmenter(seg[name].manifest, engine)
    frames = [scene(64, 128, WIDE_RECTS), scene(128, 64, []), scene(32, 32, [(0, 16, 0, 16)])]
    timings = {}
    results = segmenter([f for f, _ in frames], timings)
    assert engine.batches == [2, 1]
    assert set(timings) == {"pre", "infer", "post"}
    assert all(isinstance(r, SegmentationResult) for r in results)
    for (img, want), result in zip(frames, results, strict=True):
        assert result.class_map.shape == img.shape[:2]
        np.testing.assert_array_equal(result.class_map, seg[name]([img])[0].class_map)
    assert_map(results[0].class_map, frames[0][1])
    assert results[1].coverage()["road"] == pytest.approx(0.5)
    assert results[2].coverage() == pytest.approx(
        {"road": 0.25, "lane_marking": 0.25, "crack": 0.5})
