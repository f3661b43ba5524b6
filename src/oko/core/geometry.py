"""Box geometry: IoU, NMS, letterbox and its inverse, clipping. All vectorised numpy.

Boxes are float xyxy in pixels; areas are ``(x2 - x1) * (y2 - y1)`` without the +1 of
integer-pixel conventions (the same as torchvision, Ultralytics and OpenCV's Rect2d).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of two xyxy box arrays."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
        class_ids: np.ndarray | None = None, max_det: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression.

    Returns indices of kept boxes, highest score first. A box is suppressed when its IoU
    with a kept box of the same class (or any class when ``class_ids`` is None) is greater
    than ``iou_threshold``. Class awareness shifts each class's boxes to a disjoint region
    so that one pass handles all classes. The loop runs once per *kept* box; each step is
    one vectorised IoU of that box against all remaining candidates.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    if class_ids is not None:
        # Offset larger than any box extent keeps classes from overlapping.
        span = float(np.max(boxes[:, 2:]) - min(0.0, float(np.min(boxes[:, :2])))) + 1.0
        boxes = boxes + (np.asarray(class_ids, dtype=np.float32) * span)[:, None]
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[order, i] for i in range(4))
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    limit = len(order) if max_det is None else max_det
    keep: list[int] = []
    remaining = np.arange(len(order))
    while remaining.size and len(keep) < limit:
        i = remaining[0]
        keep.append(i)
        rest = remaining[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        remaining = rest[iou <= iou_threshold]
    return order[np.asarray(keep, dtype=np.int64)]


def clip_boxes(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip xyxy boxes to the image rectangle [0, width] x [0, height] (new array)."""
    out = np.asarray(xyxy, dtype=np.float32).copy()
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """Centre-size boxes (cx, cy, w, h) to corners."""
    xywh = np.asarray(xywh, dtype=np.float32)
    half = xywh[..., 2:4] * 0.5
    return np.concatenate([xywh[..., :2] - half, xywh[..., :2] + half], axis=-1)


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a source image was mapped into a model's input: ``dst = src * scale + pad``.

    Letterboxing keeps the aspect ratio (``scale_x ~= scale_y``, up to rounding of the
    resized size) and pads; stretching
    scales each axis on its own with no padding. Either way ``to_source`` undoes it.
    """

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    src_width: int
    src_height: int

    def boxes_to_source(self, xyxy: np.ndarray, clip: bool = True) -> np.ndarray:
        """Map xyxy boxes from model-input pixels back to source pixels."""
        out = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4).copy()
        out[:, 0::2] = (out[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (out[:, 1::2] - self.pad_y) / self.scale_y
        return clip_boxes(out, self.src_width, self.src_height) if clip else out

    def points_to_source(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) points from model-input pixels back to source pixels."""
        out = np.asarray(points, dtype=np.float32).copy()
        out[..., 0] = (out[..., 0] - self.pad_x) / self.scale_x
        out[..., 1] = (out[..., 1] - self.pad_y) / self.scale_y
        return out


def letterbox(image: np.ndarray, width: int, height: int,
              pad_value: int = 114) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect ratio and pad to (height, width), centred.

    Rounding follows Ultralytics' LetterBox so that models exported by it see exactly the
    input they were validated with: ``top = round(dh - 0.1)``, ``left = round(dw - 0.1)``.
    """
    h, w = image.shape[:2]
    r = min(height / h, width / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    dw, dh = (width - new_w) / 2, (height - new_h) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    if (new_w, new_h) != (w, h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if top or bottom or left or right:
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                   value=(pad_value, pad_value, pad_value))
    # The exact per-axis scale of the resized content (new_w / w), not the nominal ratio r:
    # mapping boxes back with it is what Ultralytics does and is exact to the pixel grid.
    return image, Letterbox(new_w / w, new_h / h, left, top, w, h)


def stretch(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, Letterbox]:
    """Resize to (height, width) ignoring aspect ratio."""
    h, w = image.shape[:2]
    if (w, h) != (width, height):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return image, Letterbox(width / w, height / h, 0.0, 0.0, w, h)
