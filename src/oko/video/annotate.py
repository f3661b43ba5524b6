"""Drawing detections on images. Annotators only read detections; style is set once."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from oko.core.detections import Detections

# A qualitative palette (BGR); a class keeps its colour across frames.
_PALETTE = np.array([
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
], dtype=np.uint8)


class BoxAnnotator:
    """Boxes with a label and score above each; instance masks (``Detections.mask``)
    blended in the class colour underneath, ``mask_alpha`` opaque (0 hides them)."""

    def __init__(self, labels: Sequence[str], thickness: int = 2, font_scale: float = 0.5,
                 mask_alpha: float = 0.4) -> None:
        self.labels = list(labels)
        self.thickness = thickness
        self.font_scale = font_scale
        self.mask_alpha = mask_alpha

    def annotate(self, image: np.ndarray, dets: Detections) -> np.ndarray:
        """Return a copy of ``image`` (BGR) with ``dets`` drawn."""
        out = image.copy()
        if not len(dets):
            return out
        boxes = np.round(dets.xyxy).astype(np.int32).tolist()
        class_ids = dets.class_id.tolist() if dets.class_id is not None else [0] * len(dets)
        scores = dets.confidence.tolist() if dets.confidence is not None else [None] * len(dets)
        names = dets.labels(self.labels)
        tracks = dets.track_id.tolist() if dets.track_id is not None else [None] * len(dets)
        if dets.mask is not None and self.mask_alpha > 0:
            self._draw_masks(out, dets.mask, class_ids)
        font = cv2.FONT_HERSHEY_SIMPLEX
        for (x1, y1, x2, y2), cid, score, name, tid in zip(boxes, class_ids, scores, names,
                                                            tracks, strict=True):
            color = tuple(int(c) for c in _PALETTE[cid % len(_PALETTE)])
            cv2.rectangle(out, (x1, y1), (x2, y2), color, self.thickness, cv2.LINE_AA)
            text = name if tid is None or tid < 0 else f"#{tid} {name}"
            if score is not None:
                text = f"{text} {score:.2f}"
            (tw, th), base = cv2.getTextSize(text, font, self.font_scale, 1)
            ty = max(y1, th + base + 2)
            cv2.rectangle(out, (x1, ty - th - base - 2), (x1 + tw + 2, ty), color, -1)
            cv2.putText(out, text, (x1 + 1, ty - base - 1), font, self.font_scale,
                        (255, 255, 255), 1, cv2.LINE_AA)
        return out

    def _draw_masks(self, out: np.ndarray, masks: np.ndarray, class_ids: list[int]) -> None:
        """Blend each mask in its class colour, in place; masks sized to another frame
        are skipped. Each mask touches only the pixels inside its own bounding rows/cols."""
        if masks.shape[1:] != out.shape[:2]:
            return
        a = self.mask_alpha
        for m, cid in zip(masks, class_ids, strict=True):
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            if not len(rows):
                continue
            sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            sub, mm = out[sl], m[sl]
            color = _PALETTE[cid % len(_PALETTE)].astype(np.float32)
            sub[mm] = (sub[mm] * (1 - a) + color * a).astype(np.uint8)


def blend_overlay(image: np.ndarray, overlay: np.ndarray | None, alpha: float = 0.4
                  ) -> np.ndarray:
    """``image`` with a same-sized BGR overlay (a class map) blended in, ``alpha`` opaque;
    unchanged when there is none or it does not fit."""
    if overlay is None or overlay.shape != image.shape:
        return image
    return cv2.addWeighted(image, 1.0 - alpha, overlay, alpha, 0.0)
