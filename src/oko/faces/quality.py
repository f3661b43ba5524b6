"""Face quality: is this crop worth embedding? Size, sharpness and pose, each in [0, 1].

Recognition accuracy falls off sharply for tiny, blurred or turned faces, and a bad crop
embedded into a gallery or averaged into a track's decision pulls it towards nobody in
particular. The score is the product of three parts, so any one of them can veto:

- size: the shorter box side, 0 at ``min_px`` and 1 from ``good_px`` up;
- sharpness: variance of the Laplacian of the aligned grey crop, 0 at 0 and 1 from
  ``sharp_var`` up (the crop is 112 px whatever the face size, so faces are comparable);
- pose from the landmarks alone: yaw is the nose's sideways offset from the eyes' midpoint
  in units of the eye distance (0 frontal, about 0.5 in profile), pitch the nose's height
  between the eye line and the mouth line compared with the template's 0.49; each gives
  ``1 - (value / limit)^2``: gentle near frontal, 0 from ``max_yaw`` / ``max_pitch`` on.

These are heuristics with documented defaults, not a learned quality model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oko.faces.align import ARCFACE_TEMPLATE

_T = ARCFACE_TEMPLATE
# Nose height between the eye line and the mouth line on the template (frontal face).
FRONTAL_PITCH = float((_T[2, 1] - _T[:2, 1].mean()) / (_T[3:, 1].mean() - _T[:2, 1].mean()))


@dataclass(frozen=True)
class QualitySettings:
    min_px: float = 16.0
    good_px: float = 64.0
    sharp_var: float = 60.0
    max_yaw: float = 0.45
    max_pitch: float = 0.35


@dataclass(frozen=True)
class FaceQuality:
    """Per-face quality parts (n,) and their product ``score``."""

    size: np.ndarray
    sharpness: np.ndarray
    pose: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    score: np.ndarray


def pose_from_landmarks(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed yaw and pitch proxies (n,) from landmarks (n, 5, 2), roll removed first."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    eyes = lm[:, 1] - lm[:, 0]
    dist = np.maximum(np.linalg.norm(eyes, axis=1), 1e-6)
    cos, sin = eyes[:, 0] / dist, eyes[:, 1] / dist
    # Rotate every point so that the eye line is horizontal (roll does not hurt: alignment
    # undoes it), with the eyes' midpoint at the origin.
    centred = lm - (lm[:, 0] + lm[:, 1])[:, None] / 2
    x = centred[..., 0] * cos[:, None] + centred[..., 1] * sin[:, None]
    y = -centred[..., 0] * sin[:, None] + centred[..., 1] * cos[:, None]
    yaw = x[:, 2] / dist
    mouth_y = (y[:, 3] + y[:, 4]) / 2
    ratio = np.divide(y[:, 2], mouth_y, out=np.ones_like(mouth_y), where=np.abs(mouth_y) > 1e-6)
    pitch = ratio - FRONTAL_PITCH
    return yaw.astype(np.float32), pitch.astype(np.float32)


def sharpness(crops: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of each grey crop (n,), vectorised."""
    crops = np.asarray(crops)
    if not len(crops):
        return np.zeros(0, np.float32)
    grey = crops.astype(np.float32) @ np.array([0.114, 0.587, 0.299], np.float32)  # BGR
    lap = (grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:] + grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1]
           - 4 * grey[:, 1:-1, 1:-1])
    # The border of an aligned crop can be black padding: look at the central 3/4 only.
    m = lap.shape[1] // 8
    return lap[:, m:-m or None, m:-m or None].var(axis=(1, 2)).astype(np.float32)


def face_quality(boxes: np.ndarray, landmarks: np.ndarray, crops: np.ndarray,
                 settings: QualitySettings | None = None) -> FaceQuality:
    """Quality of n faces: boxes (n, 4) in frame pixels, landmarks (n, 5, 2), aligned crops."""
    s = settings or QualitySettings()
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    size = np.clip((side - s.min_px) / (s.good_px - s.min_px), 0, 1)
    sharp = np.clip(sharpness(crops) / s.sharp_var, 0, 1)
    yaw, pitch = pose_from_landmarks(landmarks)
    pose = (np.clip(1 - (yaw / s.max_yaw) ** 2, 0, 1)
            * np.clip(1 - (pitch / s.max_pitch) ** 2, 0, 1))
    score = (size * sharp * pose).astype(np.float32)
    return FaceQuality(size.astype(np.float32), sharp.astype(np.float32),
                       pose.astype(np.float32), yaw, pitch, score)
