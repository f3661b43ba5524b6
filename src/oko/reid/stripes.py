"""The default person descriptor, with no learned weights: colour and texture statistics
of horizontal body stripes, computed on the silhouette only.

This is the classic pre-deep-learning ReID baseline (ELF / SDALF / LOMO-style stripe
histograms, much simplified). Be honest about what it is: it matches people by what
they wear, under similar lighting. It is robust to small shifts and scale changes of the
box and ignores the background when a mask is given, but it cannot tell apart two
people in similar clothes, and strong lighting or white-balance changes between cameras
hurt it. Hand-crafted features of this kind score far below learned models on
Market-1501 (published hand-crafted baselines sit in the tens of percent rank-1, learned
embedders above 90 %); the number for this exact recipe has not been measured yet (run
`oko reid eval`). Use a learned ReID embedder when one is available.

Recipe, for every crop:

1. resize to 128x64 (HxW). With a mask, the resize is *normalised*: ``resize(img*m) /
   resize(m)`` with the same linear interpolation, and pixels whose resized mask is below
   0.5 are background. So background pixel values cannot leak into the descriptor.
2. split into 6 horizontal stripes;
3. per stripe, a joint HSV histogram (8 hue x 8 saturation x 4 value bins) over
   foreground pixels, and two texture histograms over foreground pixels whose four
   neighbours are foreground too: gradient orientation (8 unsigned bins, weighted by
   gradient magnitude) and gradient magnitude (8 log-spaced bins);
4. each histogram L1-normalised then square-rooted (Hellinger: the dot product of two
   such vectors is the Bhattacharyya coefficient), the texture ones scaled by 0.5;
5. everything concatenated and L2-normalised -> float32 (n, 1632). Cosine similarity is
   the dot product. A crop with no foreground gives the zero vector.

All histograms of a batch are accumulated with one ``np.bincount`` each; the only Python
loop is the per-crop resize.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

DESCRIPTOR_ID = "stripes-v1"
HEIGHT, WIDTH = 128, 64
N_STRIPES = 6
HUE_BINS, SAT_BINS, VAL_BINS = 8, 8, 4
COLOUR_BINS = HUE_BINS * SAT_BINS * VAL_BINS
ORI_BINS = 8
MAG_EDGES = np.array([0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64], dtype=np.float32)
MAG_BINS = len(MAG_EDGES) + 1
TEXTURE_WEIGHT = 0.5
DIM = N_STRIPES * (COLOUR_BINS + ORI_BINS + MAG_BINS)

_STRIPE_OF_ROW = (np.arange(HEIGHT) * N_STRIPES) // HEIGHT


def _resize(crops: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None
            ) -> tuple[np.ndarray, np.ndarray]:
    """(n, H, W, 3) float32 BGR in [0, 1] and (n, H, W) bool foreground."""
    n = len(crops)
    if masks is not None and len(masks) != n:
        raise ValueError(f"{len(masks)} masks for {n} crops")
    img = np.zeros((n, HEIGHT, WIDTH, 3), dtype=np.float32)
    fg = np.zeros((n, HEIGHT, WIDTH), dtype=bool)
    for i, crop in enumerate(crops):
        crop = np.asarray(crop)
        if crop.ndim != 3 or crop.shape[2] != 3:
            raise ValueError(f"crop {i}: expected HxWx3 BGR, got shape {crop.shape}")
        if crop.shape[0] == 0 or crop.shape[1] == 0:
            continue
        interp = cv2.INTER_AREA if crop.shape[0] >= HEIGHT and crop.shape[1] >= WIDTH \
            else cv2.INTER_LINEAR
        c = crop.astype(np.float32) * np.float32(1 / 255)
        mask = None if masks is None else masks[i]
        if mask is None:
            img[i] = cv2.resize(c, (WIDTH, HEIGHT), interpolation=interp)
            fg[i] = True
            continue
        mask = np.asarray(mask)
        if mask.shape != crop.shape[:2]:
            raise ValueError(f"mask {i}: shape {mask.shape} does not match crop {crop.shape}")
        m = mask.astype(np.float32)
        num = cv2.resize(c * m[..., None], (WIDTH, HEIGHT), interpolation=interp)
        den = cv2.resize(m, (WIDTH, HEIGHT), interpolation=interp)
        fg[i] = den >= 0.5
        img[i] = np.where(fg[i][..., None], num / np.maximum(den, 1e-6)[..., None], 0.0)
    np.clip(img, 0.0, 1.0, out=img)
    return img, fg


def _hist(bins: np.ndarray, weights: np.ndarray, n_bins: int) -> np.ndarray:
    """Per crop and stripe weighted histograms: bins/weights (n, H, W) -> (n, S, n_bins)."""
    n = bins.shape[0]
    cell = np.arange(n)[:, None, None] * N_STRIPES + _STRIPE_OF_ROW[None, :, None]
    idx = (cell * n_bins + bins).ravel()
    h = np.bincount(idx, weights=weights.ravel(), minlength=n * N_STRIPES * n_bins)
    return h.reshape(n, N_STRIPES, n_bins)


def _hellinger(h: np.ndarray) -> np.ndarray:
    return np.sqrt(h / np.maximum(h.sum(axis=-1, keepdims=True), 1e-12))


def _describe(crops: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None
              ) -> np.ndarray:
    n = len(crops)
    img, fg = _resize(crops, masks)
    hsv = cv2.cvtColor(img.reshape(n * HEIGHT, WIDTH, 3), cv2.COLOR_BGR2HSV)
    hsv = hsv.reshape(n, HEIGHT, WIDTH, 3)  # H in [0, 360), S and V in [0, 1]
    hb = np.minimum((hsv[..., 0] * (HUE_BINS / 360.0)).astype(np.int64), HUE_BINS - 1)
    sb = np.minimum((hsv[..., 1] * SAT_BINS).astype(np.int64), SAT_BINS - 1)
    vb = np.minimum((hsv[..., 2] * VAL_BINS).astype(np.int64), VAL_BINS - 1)
    colour = _hist((hb * SAT_BINS + sb) * VAL_BINS + vb, fg.astype(np.float64), COLOUR_BINS)

    grey = img @ np.array([0.114, 0.587, 0.299], dtype=np.float32)  # BGR weights
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    gx[:, :, 1:-1] = grey[:, :, 2:] - grey[:, :, :-2]
    gy[:, 1:-1, :] = grey[:, 2:, :] - grey[:, :-2, :]
    inner = np.zeros_like(fg)  # foreground with all four neighbours foreground
    inner[:, 1:-1, 1:-1] = (fg[:, 1:-1, 1:-1] & fg[:, :-2, 1:-1] & fg[:, 2:, 1:-1]
                            & fg[:, 1:-1, :-2] & fg[:, 1:-1, 2:])
    mag = np.hypot(gx, gy)
    theta = np.arctan2(gy, gx) % np.pi
    ob = np.minimum((theta * (ORI_BINS / np.pi)).astype(np.int64), ORI_BINS - 1)
    ori = _hist(ob, np.where(inner, mag, 0.0).astype(np.float64), ORI_BINS)
    mb = np.searchsorted(MAG_EDGES, mag, side="right")
    magh = _hist(mb, inner.astype(np.float64), MAG_BINS)

    desc = np.concatenate([_hellinger(colour), TEXTURE_WEIGHT * _hellinger(ori),
                           TEXTURE_WEIGHT * _hellinger(magh)], axis=2).reshape(n, -1)
    desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
    return desc.astype(np.float32)


def stripe_descriptors(crops: Sequence[np.ndarray] | np.ndarray,
                       masks: Sequence[np.ndarray | None] | None = None,
                       batch_size: int = 256) -> np.ndarray:
    """L2-normalised stripe descriptors, float32 (n, DIM), of BGR uint8 person crops.

    ``masks``: optional per-crop boolean silhouettes (HxW like the crop; ``None`` in the
    list = whole crop). Crops may differ in size. Work is done ``batch_size`` crops at a
    time; the result does not depend on it.
    """
    n = len(crops)
    if n == 0:
        return np.zeros((0, DIM), dtype=np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, batch_size):
        out[s:s + batch_size] = _describe(crops[s:s + batch_size],
                                          None if masks is None else masks[s:s + batch_size])
    return out
