"""Face attributes: a multi-head classifier (:mod:`oko.models.multihead`) on face crops.

No pretrained attribute weights ship with oko (none with a usable licence could be found);
bring an ONNX model whose manifest lists its heads. :data:`STANDARD_FACE_HEADS` is the head
set oko documents (CelebA-style attributes plus gender and age group); a model may have any
subset or others. Crops are either the aligned crop the recogniser sees (``aligned``,
for models trained on aligned faces) or a square box around the detection with a margin
(``box``, for models trained on loosely cropped faces).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any, Literal

import cv2
import numpy as np

from oko.models.multihead import MultiHeadClassifier

AttributeCrop = Literal["aligned", "box"]

# name, kind, classes: the documented face attribute set (see README, "Face attributes").
STANDARD_FACE_HEADS: list[dict[str, Any]] = [
    {"name": "bald", "kind": "sigmoid", "classes": ["bald"]},
    {"name": "bangs", "kind": "sigmoid", "classes": ["bangs"]},
    {"name": "receding_hairline", "kind": "sigmoid", "classes": ["receding_hairline"]},
    {"name": "big_nose", "kind": "sigmoid", "classes": ["big_nose"]},
    {"name": "pointy_nose", "kind": "sigmoid", "classes": ["pointy_nose"]},
    {"name": "hair_color", "kind": "softmax",
     "classes": ["black", "blond", "brown", "gray", "red", "other"]},
    {"name": "eyebrows", "kind": "sigmoid", "classes": ["bushy", "arched"]},
    {"name": "double_chin", "kind": "sigmoid", "classes": ["double_chin"]},
    {"name": "eyeglasses", "kind": "sigmoid", "classes": ["eyeglasses"]},
    {"name": "sunglasses", "kind": "sigmoid", "classes": ["sunglasses"]},
    {"name": "heavy_makeup", "kind": "sigmoid", "classes": ["heavy_makeup"]},
    {"name": "lipstick", "kind": "sigmoid", "classes": ["lipstick"]},
    {"name": "facial_hair", "kind": "sigmoid",
     "classes": ["beard", "moustache", "goatee", "sideburns", "shaven"]},
    {"name": "pale_skin", "kind": "sigmoid", "classes": ["pale_skin"]},
    {"name": "hat", "kind": "sigmoid", "classes": ["hat"]},
    {"name": "gender", "kind": "softmax", "classes": ["female", "male"]},
    {"name": "age_group", "kind": "softmax",
     "classes": ["child", "teen", "young_adult", "adult", "senior"]},
]


def box_crops(image: np.ndarray, xyxy: np.ndarray, margin: float = 0.3) -> list[np.ndarray]:
    """Square crops centred on each box, side ``(1 + margin) * max(w, h)``, zero-padded
    where they leave the frame."""
    crops = []
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in np.asarray(xyxy, np.float32).reshape(-1, 4):
        side = max(x2 - x1, y2 - y1) * (1 + margin)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        a, b = round(cx - side / 2), round(cy - side / 2)
        s = max(1, round(side))
        inside = image[max(b, 0):min(b + s, h), max(a, 0):min(a + s, w)]
        if not inside.size:  # the box lies outside the frame
            crops.append(np.zeros((s, s, 3), np.uint8))
            continue
        crops.append(cv2.copyMakeBorder(inside, max(-b, 0), max(b + s - h, 0), max(-a, 0),
                                        max(a + s - w, 0), cv2.BORDER_CONSTANT, value=(0, 0, 0)))
    return crops


class FaceAttributes:
    """Attribute records per face: ``{head: answer}`` (see MultiHeadResult.records)."""

    def __init__(self, classifier: MultiHeadClassifier, crop: AttributeCrop = "box",
                 margin: float = 0.3) -> None:
        self.classifier = classifier
        self.crop = crop
        self.margin = margin

    def __call__(self, image: np.ndarray, xyxy: np.ndarray, aligned: np.ndarray,
                 timings: MutableMapping[str, float] | None = None) -> list[dict[str, Any]]:
        crops: Sequence[np.ndarray] = (list(aligned) if self.crop == "aligned"
                                       else box_crops(image, xyxy, self.margin))
        if not len(crops):
            return []
        return self.classifier(crops, timings).records()
