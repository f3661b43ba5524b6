"""`oko road clean`: traffic removed from a scene by a masked temporal median."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SAMPLE_VIDEO, assert_user_error, run_oko

from oko.core.detections import Detections
from oko.core.errors import ConfigError, SourceError
from oko.models import load_detector
from oko.road.clean import (
    clean_background,
    default_stride,
    masked_median,
    object_mask,
    plain_median,
    resolve_classes,
)
from oko.video import open_source

H, W, N = 120, 160, 60
MOVING = (0, 20, 20)  # class, height, width
PARKED = (1, (40, 90, 70, 130))  # class, box x1 y1 x2 y2: present in 90% of frames
BLOCKED = (1, (20, 20, 44, 40))  # present in every frame: never seen


def _background() -> np.ndarray:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([60 + xx * 0.8, 90 + yy * 0.6, 120 + (xx + yy) * 0.3], axis=-1)
    texture = cv2.GaussianBlur(rng.normal(0, 20, (H, W, 3)), (0, 0), 1.0)  # asphalt grain
    return np.clip(base + texture, 0, 255).astype(np.uint8)


class FakeDetector:
    """Returns the blocks' boxes (and a static 'tree' of a class that is not removed).

    Frames are recognised by identity (``id``): the test keeps them all alive.
    """

    labels = ["person", "car", "tree"]

    def __init__(self) -> None:
        self.boxes: dict[int, list[tuple[int, tuple[float, ...]]]] = {}
        self.seen = 0

    def __call__(self, images):
        out = []
        for image in images:
            rows = [*self.boxes[id(image)], (2, (100.0, 10.0, 150.0, 50.0))]
            out.append(Detections(np.array([b for _, b in rows], np.float32),
                                  confidence=np.full(len(rows), 0.9, np.float32),
                                  class_id=np.array([c for c, _ in rows], np.int32)))
        self.seen += len(images)
        return out


def _scene(n: int = N, seed: int = 1) -> tuple[np.ndarray, list[np.ndarray], FakeDetector]:
    bg = _background()
    rng = np.random.default_rng(seed)
    frames, det = [], FakeDetector()
    for i in range(n):
        f = bg.astype(np.int16) + rng.integers(-2, 3, bg.shape)  # sensor noise
        boxes = []
        x = 5 + (i * 3) % (W - 30)  # a person crossing, 3 px per frame
        f[60:80, x:x + MOVING[2]] = (0, 0, 230)
        boxes.append((MOVING[0], (x - 1.0, 59.0, x + 21.0, 81.0)))
        if i % 10:  # parked car: away in 1 of 10 frames
            x1, y1, x2, y2 = PARKED[1]
            f[y1:y2, x1:x2] = (200, 40, 40)
            boxes.append((PARKED[0], tuple(float(v) for v in PARKED[1])))
        x1, y1, x2, y2 = BLOCKED[1]
        f[y1:y2, x1:x2] = (30, 200, 30)
        boxes.append((BLOCKED[0], tuple(float(v) for v in BLOCKED[1])))
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
        det.boxes[id(frames[-1])] = boxes
    return bg, frames, det


def test_known_answer_moving_parked_and_never_seen():
    bg, frames, det = _scene()
    res = clean_background(iter(frames), det, ["person", "car"], stride=1)
    assert res.frames_used == N and res.frames_read == N and res.stride == 1
    assert res.image.shape == bg.shape and res.image.dtype == np.uint8
    err = np.abs(res.image.astype(int) - bg.astype(int)).max(axis=2)
    never = res.coverage_count == 0
    # Never seen: exactly the always-present block grown by the margin (4 px minimum,
    # 15% of its size, twice that downwards), inpainted and reported.
    x1, y1, x2, y2 = BLOCKED[1]
    grown = np.zeros((H, W), bool)
    grown[y1 - 4:y2 + 8, x1 - 4:x2 + 4] = True
    assert np.array_equal(never, grown)
    assert res.never_seen_fraction == pytest.approx(grown.mean())
    # Everywhere seen, the parked car's spot included (free in 6 of 60 frames): the
    # background within the sensor noise.
    assert err[~never].max() <= 2, err[~never].max()
    x1, y1, x2, y2 = PARKED[1]
    assert res.coverage_count[y1:y2, x1:x2].max() == N // 10
    # The inpainted hole is plausible road, not the green block (it differs by > 100).
    assert np.median(err[never]) < 25
    # The 'tree' is not a removed class: it was never masked.
    assert res.coverage_count[10:50, 100:150].min() > 0
    assert res.objects_masked == N + (N - N // 10) + N


def test_plain_median_keeps_the_parked_ghost():
    bg, frames, _ = _scene()
    plain = plain_median(frames)
    x1, y1, x2, y2 = PARKED[1]
    ghost = np.abs(plain[y1:y2, x1:x2].astype(int) - bg[y1:y2, x1:x2].astype(int))
    assert ghost.max(axis=2).min() > 50  # the whole parked car stays in a plain median


def test_stride_and_decimation_bound_the_samples():
    bg, frames, det = _scene(n=50)
    res = clean_background(iter(frames), det, ["person", "car"], max_samples=16)
    # Unknown length: stride 1, then halved twice (17 > 16 -> stride 2, again -> 4).
    # Detected: frames 0-16, then 18-32 by 2, then 36-48 by 4; kept: 0-48 by 4.
    assert res.stride == 4 and res.frames_used == 13 and res.frames_read == 50
    assert det.seen == 17 + 8 + 4
    seen = res.coverage_count > 0
    assert np.abs(res.image.astype(int) - bg.astype(int)).max(axis=2)[seen].max() <= 2
    _, frames, det = _scene(n=50)
    res = clean_background(iter(frames), det, ["person"], stride=5, max_frames=30)
    assert (res.frames_read, res.frames_used, res.stride) == (30, 6, 5) and det.seen == 6
    assert default_stride(795) == 6 and default_stride(450, 200) == 2
    assert default_stride(None) == 1 and default_stride(100) == 1


def test_masked_median_matches_nanmedian():
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (7, 9, 3), dtype=np.uint8) for _ in range(11)]
    valid = [rng.random((7, 9)) > 0.4 for _ in range(11)]
    valid[0][0, 0] = True  # at least one pixel is seen once
    for v in valid:
        v[1, 1] = False  # one pixel never seen
    med, count = masked_median(frames, valid)
    stack = np.stack(frames).astype(float)
    stack[~np.stack(valid)] = np.nan
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        ref = np.nanmedian(stack, axis=0)
    seen = count > 0
    assert np.array_equal(count, np.stack(valid).sum(0))
    assert np.array_equal(med[seen], np.floor(ref[seen] + 0.5).astype(np.uint8))
    assert count[1, 1] == 0 and (med[1, 1] == 0).all()


def test_object_mask_uses_instance_masks_when_given():
    inst = np.zeros((1, 50, 50), bool)
    inst[0, 20:30, 20:30] = True
    dets = Detections(np.array([[20, 20, 30, 30]], np.float32), class_id=np.array([0]),
                      mask=inst)
    m, n = object_mask(dets, [0], (50, 50))
    assert n == 1 and m[16:34, 16:34].all() and not m[:10].any() and m.sum() < 25 * 25
    m, n = object_mask(dets, [1], (50, 50))
    assert n == 0 and not m.any()


def test_errors_in_the_api():
    _, frames, det = _scene(n=4)
    with pytest.raises(ConfigError, match="'lorry'.*choose from: person, car, tree"):
        resolve_classes(det.labels, ["car", "lorry"])
    with pytest.raises(SourceError, match="no frames"):
        clean_background(iter([]), det, ["car"])
    frames[2] = frames[2][:, :100]
    with pytest.raises(SourceError, match="size changed"):
        clean_background(iter(frames), det, ["car"], stride=1)


@pytest.mark.slow
def test_cli_on_the_sample_removes_every_person(tmp_path):
    out = tmp_path / "clean.png"
    proc = run_oko("road", "clean", str(SAMPLE_VIDEO), "--out", str(out), "--max-frames", "200")
    assert proc.returncode == 0, proc.stderr
    assert "100 frames used" in proc.stdout and str(out) in proc.stdout.replace("\n", "")
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (576, 768, 3)
    detector = load_detector("nanodet-coco")  # its default threshold
    with open_source(SAMPLE_VIDEO) as source:
        raw = [f.image for _, f in zip(range(3), source, strict=False)]
    person = detector.labels.index("person")
    assert all((d.class_id == person).sum() >= 3 for d in detector(raw))
    assert (detector([image])[0].class_id == person).sum() == 0


def test_cli_user_errors(tmp_path):
    out = tmp_path / "clean.png"
    assert_user_error(run_oko("road", "clean", "/no/such/video.mp4", "--out", str(out)),
                      "/no/such/video.mp4", "no such file")
    assert_user_error(run_oko("road", "clean", str(SAMPLE_VIDEO), "--out", str(out),
                              "--classes", "car,pedestrian"),
                      "'pedestrian'", "choose from: person, bicycle, car")
    missing = tmp_path / "nope" / "clean.png"
    assert_user_error(run_oko("road", "clean", str(SAMPLE_VIDEO), "--out", str(missing)),
                      "output folder", "does not exist")
    assert not out.exists()


def test_cli_default_classes_mirror_the_library():
    from oko.road import clean, cli

    assert cli.DEFAULT_CLASSES == clean.DEFAULT_CLASSES
