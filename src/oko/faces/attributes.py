"""Face attributes: multi-head classifiers (:mod:`oko.models.multihead`) on face crops.

By default gender (``gender-oarriaga``, vendored, MIT) and age (``age-ssrnet``, converted
from the npm package at install time because its licence is unclear); any ONNX model whose
manifest lists its heads can be added or used instead. :data:`STANDARD_FACE_HEADS` is the head
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


# The default attribute models (see models/README.md): gender from oarriaga's MIT
# classifier (vendored), age from SSR-Net (converted at install time: no licence stated).
DEFAULT_ATTRIBUTE_MODELS = ["gender-oarriaga", "age-ssrnet"]
AGE_GROUPS = ((10, "0-10"), (20, "11-20"), (40, "21-40"), (60, "41-60"))


def age_group(age: float) -> str:
    """0-10, 11-20, 21-40, 41-60 or 60+ (whole years, as people say them)."""
    years = int(age)
    return next((name for top, name in AGE_GROUPS if years <= top), "60+")


def flatten_record(record: dict[str, dict[str, Any]],
                   classes: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A face's per-head answers as the face module reports them.

    ``gender`` becomes ``gender`` + ``gender_score`` (softmax female/male, or a sigmoid
    head of the class ``male`` or ``female``); ``age`` becomes ``age`` (whole years) +
    ``age_group``; any other head keeps its generic answer (``{label, score}`` etc.).
    ``classes``: each head's class names (needed for one-class sigmoid gender heads).
    """
    out: dict[str, Any] = {}
    for head, answer in record.items():
        head_classes = (classes or {}).get(head, [])
        if "present" in answer and len(head_classes) == 1:
            answer = {**answer, "class": head_classes[0]}
        if head == "gender" and "label" in answer:
            out["gender"], out["gender_score"] = answer["label"], answer["score"]
        elif head == "gender" and "present" in answer and answer.get("class") in ("male",
                                                                                 "female"):
            p, cls = answer["score"], answer["class"]
            other = "female" if cls == "male" else "male"
            out["gender"] = cls if answer["present"] else other
            out["gender_score"] = round(p if answer["present"] else 1.0 - p, 4)
        elif head == "age" and "value" in answer:
            out["age"] = int(round(max(answer["value"], 0.0)))
            out["age_group"] = age_group(out["age"])
        else:
            out[head] = {k: v for k, v in answer.items() if k != "class"}
    return out


class FaceAttributes:
    """Attribute records per face from one or more multi-head models (merged): gender,
    gender_score, age, age_group and any other head (see :func:`flatten_record`)."""

    def __init__(self, classifiers: MultiHeadClassifier | Sequence[MultiHeadClassifier],
                 crop: AttributeCrop = "box", margin: float = 0.2) -> None:
        self.classifiers = ([classifiers] if isinstance(classifiers, MultiHeadClassifier)
                            else list(classifiers))
        self.crop = crop
        self.margin = margin

    @property
    def classifier(self) -> MultiHeadClassifier:
        return self.classifiers[0]

    @property
    def name(self) -> str:
        return "+".join(c.name for c in self.classifiers)

    def __call__(self, image: np.ndarray, xyxy: np.ndarray, aligned: np.ndarray,
                 timings: MutableMapping[str, float] | None = None) -> list[dict[str, Any]]:
        crops: Sequence[np.ndarray] = (list(aligned) if self.crop == "aligned"
                                       else box_crops(image, xyxy, self.margin))
        if not len(crops):
            return []
        merged: list[dict[str, Any]] = [{} for _ in crops]
        for classifier in self.classifiers:
            classes = {h.name: h.classes for h in classifier.heads}
            for row, record in zip(merged, classifier(crops, timings).records(), strict=True):
                row.update(flatten_record(record, classes))
        return merged
