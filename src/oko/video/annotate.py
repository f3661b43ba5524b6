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
    """Boxes with a label and score above each."""

    def __init__(self, labels: Sequence[str], thickness: int = 2, font_scale: float = 0.5) -> None:
        self.labels = list(labels)
        self.thickness = thickness
        self.font_scale = font_scale

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
