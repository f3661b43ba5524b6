"""5-point face alignment to the ArcFace 112x112 template (similarity transforms, batched).

Recognition models are trained on faces warped so that the eyes, nose tip and mouth
corners land on fixed points; the same warp at run time is what makes their embeddings
comparable. The transform is the least-squares similarity (rotation, uniform scale,
translation; no reflection) of Umeyama (1991), solved for all faces at once with one
batched 2x2 SVD; the warps are one ``cv2.warpAffine`` per face.
"""

from __future__ import annotations

import cv2
import numpy as np

# ArcFace / InsightFace reference points for a 112x112 crop, in the landmark order of the
# face detectors: image-left eye, image-right eye, nose tip, left and right mouth corners.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)
TEMPLATE_SIZE = 112


def template(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The template scaled to a ``size`` x ``size`` crop."""
    return ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)


def similarity_transforms(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Affine matrices (n, 2, 3) mapping each ``src[i]`` (n, k, 2) onto ``dst`` (k, 2) or
    ``dst[i]`` (n, k, 2) in the least-squares similarity sense (Umeyama, no reflection)."""
    src = np.asarray(src, np.float64)
    dst = np.broadcast_to(np.asarray(dst, np.float64), src.shape)
    k = src.shape[1]
    mu_s, mu_d = src.mean(axis=1, keepdims=True), dst.mean(axis=1, keepdims=True)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc ** 2).sum(axis=(1, 2)) / k
    cov = np.einsum("nki,nkj->nij", dc, sc) / k  # (n, 2, 2): dst x src
    u, sigma, vt = np.linalg.svd(cov)
    # A reflection would fit mirrored landmarks better; force a proper rotation instead.
    d = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    fix = np.ones((len(src), 2))
    fix[:, 1] = d
    rot = np.einsum("nij,nj,njk->nik", u, fix, vt)
    scale = (sigma * fix).sum(axis=1) / np.maximum(var_s, 1e-12)
    lin = rot * scale[:, None, None]
    shift = mu_d[:, 0] - np.einsum("nij,nj->ni", lin, mu_s[:, 0])
    return np.concatenate([lin, shift[:, :, None]], axis=2).astype(np.float32)


def align_faces(image: np.ndarray, landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """Aligned crops (n, size, size, 3) uint8 of ``image`` (BGR) for landmarks (n, 5, 2)."""
    landmarks = np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
    out = np.zeros((len(landmarks), size, size, 3), np.uint8)
    if not len(landmarks):
        return out
    matrices = similarity_transforms(landmarks, template(size))
    for i, m in enumerate(matrices):
        cv2.warpAffine(image, m, (size, size), dst=out[i], flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return out
