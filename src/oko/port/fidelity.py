"""Stage 4 of `oko port`: how close a compiled model stays to ONNX Runtime FP32.

Per output: cosine similarity and euclidean similarity (``1 - |a-b| / |(a+b)/2|``, the
measure TPU-MLIR uses), per validation sample, reported as mean and minimum. Per task:
detection — box agreement with the FP32 model (precision/recall/F1 at IoU 0.5, FP32 as
truth; AP50 against labels when given); classification — top-1 agreement; embedding —
mean cosine; segmentation — mIoU between the two class maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from oko.core.detections import Detections
from oko.core.geometry import box_iou


@dataclass
class OutputFidelity:
    name: str
    cosine_mean: float
    cosine_min: float
    euclidean_mean: float
    euclidean_min: float
    max_abs_diff: float


@dataclass
class TaskFidelity:
    task: str
    metric: str  # the headline number's name
    value: float
    details: dict[str, Any] = field(default_factory=dict)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    return float(a @ b / max(na * nb, 1e-30))


def euclidean_similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    denom = np.linalg.norm((a + b) / 2)
    if denom == 0:
        return 1.0 if np.linalg.norm(a - b) == 0 else 0.0
    return float(1.0 - np.linalg.norm(a - b) / denom)


def align_outputs(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]
                  ) -> dict[str, np.ndarray]:
    """Candidate outputs under the reference's names (by name, else by position and size)."""
    if set(reference) <= set(candidate):
        return {k: candidate[k] for k in reference}
    if len(reference) != len(candidate):
        raise ValueError(f"compiled model has {len(candidate)} outputs, original {len(reference)}")
    out = {}
    for (name, ref), cand in zip(reference.items(), candidate.values(), strict=True):
        if cand.size != ref.size:
            raise ValueError(f"output {name!r}: {cand.shape} vs original {ref.shape}")
        out[name] = cand.reshape(ref.shape).astype(np.float32)
    return out


def compare_outputs(reference: Sequence[dict[str, np.ndarray]],
                    candidate: Sequence[dict[str, np.ndarray]]) -> list[OutputFidelity]:
    """Per-output similarity over paired samples (one dict of outputs per sample)."""
    names = list(reference[0])
    result = []
    for name in names:
        cos = [cosine(r[name], c[name]) for r, c in zip(reference, candidate, strict=True)]
        euc = [euclidean_similarity(r[name], c[name])
               for r, c in zip(reference, candidate, strict=True)]
        diff = max(float(np.max(np.abs(r[name].astype(np.float64) - c[name])))
                   for r, c in zip(reference, candidate, strict=True))
        result.append(OutputFidelity(name, float(np.mean(cos)), float(np.min(cos)),
                                     float(np.mean(euc)), float(np.min(euc)), diff))
    return result


def match_detections(truth: Detections, pred: Detections, iou: float = 0.5) -> int:
    """Greedy matches (same class, IoU >= iou), highest prediction score first."""
    if not len(truth) or not len(pred):
        return 0
    order = np.argsort(-pred.confidence, kind="stable")
    ious = box_iou(pred.xyxy[order], truth.xyxy)
    same = pred.class_id[order][:, None] == truth.class_id[None, :]
    ious = np.where(same, ious, 0.0)
    used = np.zeros(len(truth), bool)
    matched = 0
    for row in ious:
        row = np.where(used, 0.0, row)
        j = int(row.argmax())
        if row[j] >= iou:
            used[j] = True
            matched += 1
    return matched


def detection_agreement(reference: Sequence[Detections], candidate: Sequence[Detections]
                        ) -> TaskFidelity:
    """Precision/recall/F1 of the candidate's boxes, treating the FP32 boxes as truth."""
    tp = sum(match_detections(r, c) for r, c in zip(reference, candidate, strict=True))
    n_ref = sum(len(r) for r in reference)
    n_cand = sum(len(c) for c in candidate)
    precision = tp / n_cand if n_cand else 1.0
    recall = tp / n_ref if n_ref else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return TaskFidelity("detect", "detection agreement (F1 @ IoU 0.5 vs FP32)", f1,
                        {"precision": precision, "recall": recall, "fp32_boxes": n_ref,
                         "ported_boxes": n_cand})


def average_precision50(predictions: Sequence[Detections], labels: Sequence[Detections]) -> float:
    """VOC-style AP at IoU 0.5 (all-point interpolation), averaged over labelled classes."""
    classes = sorted({int(c) for d in labels for c in d.class_id.tolist()})
    aps = []
    for cls in classes:
        scores, hits, n_true = [], [], 0
        for pred, truth in zip(predictions, labels, strict=True):
            t = truth[truth.class_id == cls]
            p = pred[pred.class_id == cls]
            n_true += len(t)
            if not len(p):
                continue
            order = np.argsort(-p.confidence, kind="stable")
            ious = box_iou(p.xyxy[order], t.xyxy) if len(t) else np.zeros((len(p), 0))
            used = np.zeros(len(t), bool)
            for k, row in enumerate(ious):
                row = np.where(used, 0.0, row)
                j = int(row.argmax()) if row.size else -1
                hit = j >= 0 and row[j] >= 0.5
                if hit:
                    used[j] = True
                scores.append(float(p.confidence[order][k]))
                hits.append(hit)
        if n_true == 0:
            continue
        order = np.argsort(-np.asarray(scores), kind="stable")
        tp = np.cumsum(np.asarray(hits, float)[order]) if hits else np.zeros(0)
        recall = tp / n_true
        precision = tp / np.arange(1, len(tp) + 1) if len(tp) else np.zeros(0)
        r = np.concatenate([[0.0], recall, [1.0]])
        p = np.concatenate([[1.0], precision, [0.0]])
        p = np.maximum.accumulate(p[::-1])[::-1]
        aps.append(float(np.sum((r[1:] - r[:-1]) * p[1:])))
    return float(np.mean(aps)) if aps else 0.0


def top1_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> TaskFidelity:
    ref = np.array([int(np.argmax(r)) for r in reference])
    cand = np.array([int(np.argmax(c)) for c in candidate])
    return TaskFidelity("classify", "top-1 agreement vs FP32", float(np.mean(ref == cand)),
                        {"samples": len(ref)})


def embedding_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]
                        ) -> TaskFidelity:
    cos = [cosine(r, c) for r, c in zip(reference, candidate, strict=True)]
    return TaskFidelity("embed", "mean embedding cosine vs FP32", float(np.mean(cos)),
                        {"min": float(np.min(cos)), "samples": len(cos)})


def miou_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]
                   ) -> TaskFidelity:
    """mIoU between argmax class maps (logits [C, H, W]) or given class-index maps."""
    def class_map(a: np.ndarray) -> np.ndarray:
        a = np.squeeze(a)
        return a.astype(np.int64) if a.ndim == 2 else np.argmax(a, axis=0)

    ious = []
    for r, c in zip(reference, candidate, strict=True):
        rm, cm = class_map(r), class_map(c)
        for cls in np.union1d(np.unique(rm), np.unique(cm)).tolist():
            a, b = rm == cls, cm == cls
            ious.append(np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1))
    return TaskFidelity("segment", "mIoU agreement vs FP32", float(np.mean(ious)) if ious else 1.0,
                        {"samples": len(reference)})


def as_dict(item: OutputFidelity | TaskFidelity) -> dict[str, Any]:
    return asdict(item)
