"""Vehicle colour without learned weights: the dominant named colour of the body.

The body is sampled where paint dominates whatever the view: the lower-middle part of
the vehicle box (windows, roof and background sit mostly in the upper part and at the
sides), or the object's mask there when a segmentation model gave one. Each sampled
pixel is named from its HSV value (black, grey, silver, white and eight hues, with brown
and beige for dark and pale warm tones); pixels near the centre weigh more. Paint with a
hue is strong evidence (glass, tyres, road and shadows are colourless), so when coloured
pixels make up at least ``chromatic_share`` of the weight the top hue wins, otherwise
the top colourless name (black only when it is a large share of those: every vehicle
has dark tyres, grilles and shadows). All vehicles of a frame are classified in one array pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

COLOURS = ("black", "grey", "silver", "white",
           "red", "orange", "yellow", "green", "blue", "purple", "brown", "beige")
N_ACHROMATIC = 4
SAMPLE = 32  # body regions are resized to SAMPLE x SAMPLE before naming pixels


@dataclass(frozen=True)
class ColourEstimate:
    names: list[str | None]       # per vehicle (None: too small to tell)
    confidence: np.ndarray        # float32 (n,): weight share of the chosen colour
    shares: np.ndarray            # float32 (n, len(COLOURS)): weight share of every colour


def name_pixels(hsv: np.ndarray) -> np.ndarray:
    """Colour index (into COLOURS) of each OpenCV HSV pixel (H 0-179, S and V 0-255).

    A hue counts only with enough saturation, and darker pixels need more: shadows and
    sky reflections tint black, grey and white paint blue without making it blue.
    """
    h = hsv[..., 0].astype(np.int32) * 2           # degrees
    s = hsv[..., 1].astype(np.int32)
    v = hsv[..., 2].astype(np.int32)
    grey = s < 60 + 0.8 * np.maximum(0, 140 - v)
    out = np.full(h.shape, COLOURS.index("grey"), np.int8)
    out[grey & (v >= 125)] = COLOURS.index("silver")
    out[grey & (v >= 180)] = COLOURS.index("white")
    hue = np.select([(h < 15) | (h >= 340), h < 45, h < 70, h < 170, h < 260],
                    [COLOURS.index(c) for c in ("red", "orange", "yellow", "green", "blue")],
                    COLOURS.index("purple"))
    warm = (h >= 10) & (h < 50)
    hue = np.where(warm & (v < 140), COLOURS.index("brown"), hue)
    hue = np.where(warm & (s < 110) & (v >= 150), COLOURS.index("beige"), hue)
    out = np.where(grey, out, hue).astype(np.int8)
    out[v < 60] = COLOURS.index("black")           # too dark to see a hue
    return out


def body_boxes(xyxy: np.ndarray, x_range: tuple[float, float] = (0.15, 0.85),
               y_range: tuple[float, float] = (0.45, 0.9)) -> np.ndarray:
    """The part of each vehicle box sampled for its colour."""
    b = np.asarray(xyxy, np.float32).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return np.stack([b[:, 0] + x_range[0] * w, b[:, 1] + y_range[0] * h,
                     b[:, 0] + x_range[1] * w, b[:, 1] + y_range[1] * h], axis=1)


def _centre_weights() -> np.ndarray:
    g = np.exp(-0.5 * ((np.arange(SAMPLE) + 0.5 - SAMPLE / 2) / (SAMPLE / 3)) ** 2)
    return np.outer(g, g).astype(np.float32)


_WEIGHTS = _centre_weights()


class ColourEstimator:
    def __init__(self, chromatic_share: float = 0.35, black_share: float = 0.35,
                 min_size: int = 16) -> None:
        self.chromatic_share = chromatic_share
        self.black_share = black_share
        self.min_size = min_size

    def __call__(self, image: np.ndarray, xyxy: np.ndarray,
                 masks: np.ndarray | None = None) -> ColourEstimate:
        """Colours of the vehicles in ``xyxy`` on a BGR frame; ``masks`` (n, H, W) optional."""
        if not len(xyxy):
            return ColourEstimate([], np.zeros(0, np.float32), np.zeros((0, len(COLOURS)), np.float32))
        regions = np.round(body_boxes(xyxy)).astype(int)
        h, w = image.shape[:2]
        regions[:, 0::2] = np.clip(regions[:, 0::2], 0, w)
        regions[:, 1::2] = np.clip(regions[:, 1::2], 0, h)
        n = len(regions)
        samples = np.zeros((n, SAMPLE, SAMPLE, 3), np.uint8)
        weights = np.zeros((n, SAMPLE, SAMPLE), np.float32)
        for i, (x1, y1, x2, y2) in enumerate(regions):  # crops differ in size: one resize each
            if x2 - x1 < self.min_size // 2 or y2 - y1 < self.min_size // 4:
                continue
            samples[i] = cv2.resize(image[y1:y2, x1:x2], (SAMPLE, SAMPLE),
                                    interpolation=cv2.INTER_AREA)
            weights[i] = _WEIGHTS
            if masks is not None:
                m = cv2.resize(masks[i, y1:y2, x1:x2].astype(np.uint8), (SAMPLE, SAMPLE),
                               interpolation=cv2.INTER_NEAREST)
                weights[i] *= m
        hsv = cv2.cvtColor(samples.reshape(n * SAMPLE, SAMPLE, 3), cv2.COLOR_BGR2HSV)
        names = name_pixels(hsv).reshape(n, SAMPLE * SAMPLE).astype(np.int64)
        flat_w = weights.reshape(n, -1)
        k = len(COLOURS)
        hist = np.bincount((names + np.arange(n)[:, None] * k).ravel(), flat_w.ravel(),
                           minlength=n * k).reshape(n, k)
        total = hist.sum(axis=1, keepdims=True)
        shares = np.where(total > 0, hist / np.maximum(total, 1e-9), 0.0).astype(np.float32)
        chromatic = shares[:, N_ACHROMATIC:].sum(axis=1) >= self.chromatic_share
        # Every vehicle has dark parts (tyres, grille, shadow underneath): black only when
        # it is a large share (``black_share``) of the colourless weight, else the best
        # lighter tone.
        grey_tones = shares[:, :N_ACHROMATIC]
        black = grey_tones[:, 0] >= self.black_share * np.maximum(grey_tones.sum(axis=1), 1e-9)
        achromatic = np.where(black, 0, 1 + grey_tones[:, 1:].argmax(axis=1))
        choice = np.where(chromatic, N_ACHROMATIC + shares[:, N_ACHROMATIC:].argmax(axis=1),
                          achromatic)
        conf = shares[np.arange(n), choice]
        known = total[:, 0] > 0
        return ColourEstimate([COLOURS[c] if ok else None for c, ok in zip(choice, known, strict=True)],
                              np.where(known, conf, 0.0).astype(np.float32), shares)
