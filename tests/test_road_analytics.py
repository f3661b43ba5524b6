"""Weight-free road analytics (lighting, glare, snow) on real images and on the same images
darkened, overexposed and veiled by known amounts.

Real images: frames of the bundled street-scene sample, and OpenCV's sample photos
(`opencv-doc`, read in place) when installed. Nothing was tuned on them: the thresholds
are the documented defaults. The transforms are exact (gamma on 0..1 values, gain with
clipping, a haze blend toward a bright veil) so the direction each figure must move is
known.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from oko.core.errors import ConfigError
from oko.road.lighting import LightingConfig, glare, lighting
from oko.road.scene import Scene, region_mask
from oko.road.snow import SnowEstimator

from conftest import SAMPLE_VIDEO

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
PHOTOS = ["leuvenA.jpg", "building.jpg", "licenseplate_motion.jpg", "aero3.jpg", "home.jpg"]


def _sample_frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(SAMPLE_VIDEO))
    frames = []
    for index in (0, 200, 400):
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        assert ok
        frames.append(frame)
    return frames


def _images() -> list[np.ndarray]:
    photos = [cv2.imread(str(OPENCV_DATA / n)) for n in PHOTOS if (OPENCV_DATA / n).is_file()]
    return _sample_frames() + [p for p in photos if p is not None]


def gamma(img: np.ndarray, g: float) -> np.ndarray:
    return np.round(255.0 * (img / 255.0) ** g).astype(np.uint8)


def gain(img: np.ndarray, k: float) -> np.ndarray:
    return np.clip(img.astype(np.float32) * k, 0, 255).astype(np.uint8)


def haze(img: np.ndarray, a: float, veil: float = 230.0) -> np.ndarray:
    return np.round(img * (1.0 - a) + veil * a).astype(np.uint8)


@pytest.fixture(scope="module")
def images():
    return _images()


def test_darkening_lowers_luminance_and_turns_day_into_night(images):
    for img in images:
        orig, dim, dark = (lighting(Scene.from_frame(x)) for x in
                           (img, gamma(img, 2.2), gamma(img, 4.0)))
        assert orig["mean_luma"] > dim["mean_luma"] > dark["mean_luma"]
        assert dark["underexposed"] > orig["underexposed"]
        assert orig["phase"] in ("day", "twilight")
        assert dark["phase"] == "night"
        # gamma 4 maps luma 128 to 8: the median must collapse by an order of magnitude
        assert dark["median_luma"] <= max(0.25 * orig["median_luma"], 12)


def test_gain_overexposes_and_shows_as_glare(images):
    for img in images:
        orig, hot = lighting(Scene.from_frame(img)), lighting(Scene.from_frame(gain(img, 2.5)))
        assert hot["overexposed"] > orig["overexposed"] + 0.2
        assert hot["phase"] == "day"
        assert glare(Scene.from_frame(gain(img, 2.5)))["glare"]


def test_veiling_glare_lifts_the_dark_channel_and_collapses_contrast(images):
    for img in images:
        clear, light, heavy = (glare(Scene.from_frame(x)) for x in
                               (img, haze(img, 0.3), haze(img, 0.5)))
        assert clear["dark_level"] < light["dark_level"] < heavy["dark_level"]
        assert clear["contrast"] > light["contrast"] > heavy["contrast"]
        assert not clear["veiled"] and not clear["glare"]
        assert heavy["veiled"] and heavy["glare"]


def test_all_black_and_all_white_frames_have_defined_figures():
    black = np.zeros((720, 1280, 3), np.uint8)
    white = np.full((720, 1280, 3), 255, np.uint8)
    lb, lw = lighting(Scene.from_frame(black)), lighting(Scene.from_frame(white))
    assert lb["phase"] == "night" and lb["underexposed"] == 1.0 and lb["lit_fraction"] == 0.0
    assert lw["phase"] == "day" and lw["overexposed"] == 1.0 and lw["lit_fraction"] == 1.0
    assert abs(sum(lb["histogram"]) - 1.0) < 1e-3
    gb, gw = glare(Scene.from_frame(black)), glare(Scene.from_frame(white))
    assert not gb["glare"] and gb["saturated_fraction"] == 0.0
    assert gw["glare"] and gw["saturated_fraction"] == 1.0 and gw["contrast"] == 0.0
    for img in (black, white):
        out = SnowEstimator()(Scene.from_frame(img))
        assert 0.0 <= out["snow_cover"] <= 1.0
    assert SnowEstimator()(Scene.from_frame(black))["snow_cover"] == 0.0


def test_night_lit_fraction_counts_the_lit_part_of_the_road():
    night = np.full((360, 640, 3), 10, np.uint8)
    night[:, :160] = 120                       # a quarter of the road under a street light
    out = lighting(Scene.from_frame(night))
    assert out["phase"] == "night" and out["lit_fraction"] == pytest.approx(0.25, abs=0.01)
    region = [[0, 0], [320, 0], [320, 360], [0, 360]]   # the left half only
    assert lighting(Scene.from_frame(night, region))["lit_fraction"] == pytest.approx(
        0.5, abs=0.02)


def test_snow_cover_of_a_painted_snowfield_and_markings_ignored():
    frame = _sample_frames()[0]
    base = SnowEstimator()(Scene.from_frame(frame))["snow_cover"]
    rng = np.random.default_rng(0)
    snowy = frame.copy()
    h, w = snowy.shape[:2]
    snowy[h // 2:] = np.clip(236 + rng.normal(0, 2, snowy[h // 2:].shape), 0, 255)
    region = [[0, h // 2], [w, h // 2], [w, h], [0, h]]
    covered = SnowEstimator()(Scene.from_frame(snowy, region))["snow_cover"]
    assert covered > 0.9
    # Thin white lines (markings) on dark asphalt are not snow.
    road = np.full((720, 1280, 3), 60, np.uint8)
    for x in range(100, 1280, 200):
        road[:, x:x + 4] = 240
    assert SnowEstimator()(Scene.from_frame(road))["snow_cover"] == 0.0
    assert base < covered


def test_snow_cover_is_smoothed_over_time():
    snow = np.full((180, 320, 3), 235, np.uint8)
    road = np.full((180, 320, 3), 70, np.uint8)
    est = SnowEstimator()
    assert est(Scene.from_frame(snow))["snow_cover"] == 1.0
    out = est(Scene.from_frame(road))          # one dark frame (a passing truck) ...
    assert out["snow_cover"] == 1.0 and out["snow_cover_frame"] == 0.0
    for _ in range(5):                         # ... but a lasting change wins
        out = est(Scene.from_frame(road))
    assert out["snow_cover"] == 0.0


def test_road_region_outside_the_frame_or_degenerate_is_a_config_error():
    with pytest.raises(ConfigError, match="outside"):
        region_mask([[2000, 2000], [2100, 2000], [2100, 2100]], 1280, 720, 320, 180)
    with pytest.raises(ConfigError, match="at least 3 points"):
        region_mask([[0, 0], [10, 10]], 1280, 720, 320, 180)
    with pytest.raises(ValueError):
        LightingConfig(night_below=100, day_above=50)
