"""Alignment and quality: known answers on synthetic faces."""

import cv2
import numpy as np
import pytest

from oko.faces.align import ARCFACE_TEMPLATE, align_faces, similarity_transforms, template
from oko.faces.quality import FRONTAL_PITCH, face_quality, pose_from_landmarks, sharpness


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx],
                     [scale * np.sin(a), scale * np.cos(a), ty]])


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


CASES = [(0, 1, 0, 0), (30, 2.5, 400, 120), (-75, 0.6, 50, 300), (180, 1.7, 900, 700)]


def test_transforms_recover_known_similarities_in_one_batch():
    # Faces placed by known similarities; the solved transforms must be their inverses.
    faces = np.stack([apply(similarity(*c), ARCFACE_TEMPLATE) for c in CASES])
    m = similarity_transforms(faces, ARCFACE_TEMPLATE)
    assert m.shape == (len(CASES), 2, 3)
    for i, case in enumerate(CASES):
        fwd = np.vstack([similarity(*case), [0, 0, 1]])
        inv = np.linalg.inv(fwd)[:2]
        np.testing.assert_allclose(m[i], inv, atol=1e-4)
        np.testing.assert_allclose(apply(m[i], faces[i]), ARCFACE_TEMPLATE, atol=1e-3)


def test_noisy_landmarks_give_the_least_squares_fit_and_no_reflection():
    rng = np.random.default_rng(1)
    noisy = ARCFACE_TEMPLATE * 3 + 40 + rng.normal(0, 2, (5, 2))
    m = similarity_transforms(noisy[None], ARCFACE_TEMPLATE)[0]
    # Least squares: perturbing the solution makes the residual worse.
    base = ((apply(m, noisy) - ARCFACE_TEMPLATE) ** 2).sum()
    for delta in (0.01, -0.01):
        worse = m.copy()
        worse[:, :2] *= 1 + delta
        assert ((apply(worse, noisy) - ARCFACE_TEMPLATE) ** 2).sum() > base
    # Mirrored landmarks (left/right swapped in x) must still give a rotation, not a flip.
    mirrored = ARCFACE_TEMPLATE.copy()
    mirrored[:, 0] = 112 - mirrored[:, 0]
    m = similarity_transforms(mirrored[None], ARCFACE_TEMPLATE)[0]
    assert np.linalg.det(m[:, :2]) > 0


def test_align_faces_puts_landmarks_on_the_template():
    # Draw a bright dot at each landmark of two rotated/scaled faces; after alignment the
    # intensity centroid near each template point must sit on it.
    image = np.zeros((800, 1000, 3), np.uint8)
    faces = np.stack([apply(similarity(25, 2.0, 300, 100), ARCFACE_TEMPLATE),
                      apply(similarity(-40, 3.0, 600, 350), ARCFACE_TEMPLATE)])
    for face in faces:
        for x, y in face:
            cv2.circle(image, (round(x), round(y)), 6, (255, 255, 255), -1)
    crops = align_faces(image, faces)
    assert crops.shape == (2, 112, 112, 3) and crops.dtype == np.uint8
    ys, xs = np.mgrid[0:112, 0:112]
    for face, crop in zip(faces, crops, strict=True):
        grey = crop[:, :, 0].astype(float)
        for (tx, ty), (x, y) in zip(ARCFACE_TEMPLATE, face, strict=True):
            window = (np.abs(xs - tx) <= 7) & (np.abs(ys - ty) <= 7)
            w = grey * window
            assert w.sum() > 0
            cx, cy = (w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()
            # The dot's centre was rounded to whole pixels when drawn: allow that, scaled.
            assert abs(cx - tx) < 0.6 and abs(cy - ty) < 0.6, (cx, cy, tx, ty, x, y)


def test_template_scales_with_the_crop_size_and_empty_input_is_fine():
    np.testing.assert_allclose(template(224), ARCFACE_TEMPLATE * 2)
    assert align_faces(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 5, 2))).shape == (
        0, 112, 112, 3)


def test_pose_proxies():
    yaw, pitch = pose_from_landmarks(ARCFACE_TEMPLATE[None])
    assert abs(yaw[0]) < 0.02 and abs(pitch[0]) < 1e-6  # the template is frontal
    # Roll does not count: the same face rotated by 60 degrees has the same pose.
    rolled = apply(similarity(60, 1.3, 10, 20), ARCFACE_TEMPLATE)
    yaw_r, pitch_r = pose_from_landmarks(rolled[None])
    assert yaw_r[0] == pytest.approx(yaw[0], abs=1e-4) and pitch_r[0] == pytest.approx(0, abs=1e-4)
    # Nose moved sideways by half the eye distance: yaw 0.5 towards that side.
    turned = ARCFACE_TEMPLATE.copy()
    eye_mid = turned[:2].mean(axis=0)
    turned[2, 0] = eye_mid[0] + 0.5 * (turned[1, 0] - turned[0, 0])
    assert pose_from_landmarks(turned[None])[0][0] == pytest.approx(0.5, abs=0.01)
    assert 0.4 < FRONTAL_PITCH < 0.6


def test_quality_parts_and_veto():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 255, (1, 112, 112, 3), dtype=np.uint8)
    flat = np.full((1, 112, 112, 3), 128, np.uint8)
    assert sharpness(sharp)[0] > 1000 and sharpness(flat)[0] == 0
    lm = ARCFACE_TEMPLATE[None]
    big = np.array([[0, 0, 100, 120]], np.float32)
    tiny = np.array([[0, 0, 12, 14]], np.float32)
    good = face_quality(big, lm, sharp)
    assert good.score[0] > 0.9 and good.size[0] == 1
    assert face_quality(tiny, lm, sharp).score[0] == 0      # too small
    assert face_quality(big, lm, flat).score[0] == 0        # no detail at all
    profile = ARCFACE_TEMPLATE.copy()
    profile[2, 0] = profile[1, 0] + 5  # nose outside the eyes: a profile
    assert face_quality(big, profile[None], sharp).score[0] == 0
