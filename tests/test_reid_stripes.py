"""The weight-free stripe descriptor: stable under small shifts and rescales, sensitive
to clothing colour, blind to masked-out background, independent of batching."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from oko.reid.stripes import DIM, stripe_descriptors


def _person(seed: int = 0, shirt_bgr=(40, 40, 200), height: int = 256, width: int = 128
            ) -> tuple[np.ndarray, np.ndarray]:
    """A cartoon pedestrian on a noisy scene: crop (BGR uint8) and its silhouette."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)  # cluttered background
    mask = np.zeros((height, width), dtype=np.uint8)
    cx = width // 2
    h = height
    cv2.ellipse(mask, (cx, int(0.1 * h)), (int(0.1 * width), int(0.08 * h)), 0, 0, 360, 1, -1)
    cv2.rectangle(mask, (cx - int(0.25 * width), int(0.18 * h)),
                  (cx + int(0.25 * width), int(0.55 * h)), 2, -1)
    cv2.rectangle(mask, (cx - int(0.22 * width), int(0.55 * h)),
                  (cx + int(0.22 * width), int(0.97 * h)), 3, -1)
    noise = rng.normal(0, 8, (height, width, 3))
    body = np.zeros((height, width, 3), dtype=np.float64)
    body[mask == 1] = (120, 150, 210)  # skin
    body[mask == 2] = shirt_bgr
    body[mask == 3] = (90, 50, 30)  # dark blue trousers
    rows = np.arange(height)[:, None]
    shirt_texture = np.where((rows // 6) % 2 == 0, 1.0, 0.8)[..., None]  # knit stripes
    body = np.where((mask == 2)[..., None], body * shirt_texture, body)
    body = np.clip(body + noise, 0, 255).astype(np.uint8)
    img = np.where((mask > 0)[..., None], body, img)
    return img, mask > 0


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_shape_norm_and_dtype() -> None:
    crops = [_person(i)[0] for i in range(3)] + [np.zeros((40, 17, 3), np.uint8)]
    d = stripe_descriptors(crops)
    assert d.shape == (4, DIM) and d.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    assert stripe_descriptors([]).shape == (0, DIM)


def test_small_shift_and_rescale_keep_descriptor() -> None:
    img, mask = _person(1)
    shifted = np.roll(img, (5, 3), axis=(0, 1))
    shifted_mask = np.roll(mask, (5, 3), axis=(0, 1))
    small = cv2.resize(img, (115, 230), interpolation=cv2.INTER_AREA)  # 90 %
    small_mask = cv2.resize(mask.astype(np.uint8), (115, 230),
                            interpolation=cv2.INTER_NEAREST) > 0
    d = stripe_descriptors([img, shifted, small], [mask, shifted_mask, small_mask])
    assert _cos(d[0], d[1]) > 0.9
    assert _cos(d[0], d[2]) > 0.9
    # Without masks too: another noise draw in the background does not matter much.
    other_bg, _ = _person(1)
    du = stripe_descriptors([img, np.roll(img, (5, 3), axis=(0, 1)), other_bg])
    assert _cos(du[0], du[1]) > 0.9


def test_recoloured_shirt_is_clearly_less_similar() -> None:
    img, mask = _person(2)
    same, _ = _person(3)  # same clothes, other noise
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    upper = np.zeros(mask.shape, bool)
    upper[: img.shape[0] // 2] = True
    hsv[..., 0] = np.where(upper & mask, (hsv[..., 0].astype(int) + 90) % 180, hsv[..., 0])
    recoloured = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)  # red shirt -> cyan shirt
    d = stripe_descriptors([img, same, recoloured], [mask, mask, mask])
    same_sim, recoloured_sim = _cos(d[0], d[1]), _cos(d[0], d[2])
    assert same_sim > 0.9
    assert recoloured_sim < same_sim - 0.2


def test_masked_out_background_is_ignored() -> None:
    img, mask = _person(4)
    other = img.copy()
    rng = np.random.default_rng(99)
    other[~mask] = rng.integers(0, 256, (int((~mask).sum()), 3), dtype=np.uint8)
    d = stripe_descriptors([img, other], [mask, mask])
    np.testing.assert_allclose(d[0], d[1], atol=1e-6)
    # ... and it does matter without the mask.
    du = stripe_descriptors([img, other])
    assert np.abs(du[0] - du[1]).max() > 1e-3


def test_batch_of_one_equals_batch_of_many() -> None:
    people = [_person(i, shirt_bgr=(40 * i % 255, 90, 200 - 20 * i)) for i in range(7)]
    crops = [p[0] for p in people]
    masks = [p[1] if i % 2 else None for i, p in enumerate(people)]
    many = stripe_descriptors(crops, masks)
    chunked = stripe_descriptors(crops, masks, batch_size=3)
    ones = np.concatenate([stripe_descriptors([c], [m]) for c, m in zip(crops, masks)])
    np.testing.assert_allclose(many, ones, atol=1e-6)
    np.testing.assert_allclose(many, chunked, atol=1e-6)


def test_bad_inputs() -> None:
    img, mask = _person(0)
    with pytest.raises(ValueError, match="mask 0"):
        stripe_descriptors([img], [mask[:10]])
    with pytest.raises(ValueError, match="crop 0"):
        stripe_descriptors([img[..., 0]])
    with pytest.raises(ValueError, match="masks for"):
        stripe_descriptors([img, img], [mask])
