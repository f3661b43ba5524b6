"""Detect -> align -> quality -> embed, for a batch of frames at once.

Every face of every frame in the batch is embedded in one engine call (chunked by the
engine's batch limit); faces below ``min_quality`` are aligned and scored but not embedded
(their embedding row stays zero and ``embedded`` is False), so a blurred or turned face
costs no recognition time and never reaches a gallery or a track's decision.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from oko.core.detections import Detections
from oko.core.errors import SourceError
from oko.core.timing import StageTimer
from oko.faces.align import align_faces
from oko.faces.embed import Embedder
from oko.faces.quality import FaceQuality, QualitySettings, face_quality
from oko.models.detector import Detector


@dataclass(frozen=True)
class FaceResult:
    """The faces of one frame: boxes/landmarks, aligned crops, quality, embeddings."""

    detections: Detections       # xyxy, confidence, class_id 0, keypoints (n, 5, 2)
    crops: np.ndarray            # (n, S, S, 3) uint8 BGR, aligned
    quality: FaceQuality
    embeddings: np.ndarray       # (n, d) float32, L2-normalised; zero rows where skipped
    embedded: np.ndarray         # (n,) bool

    def __len__(self) -> int:
        return len(self.detections)

    def largest(self) -> int | None:
        """Index of the largest face (by box area), None when there is none."""
        return int(np.argmax(self.detections.area)) if len(self.detections) else None


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Any decoded image as uint8 HxWx3 BGR: grey, BGRA (alpha dropped), 16-bit."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise SourceError(f"unsupported image type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise SourceError(f"unsupported image shape {image.shape}")


def read_image(path: str | Path) -> np.ndarray:
    """An image file as BGR uint8, or SourceError. OpenCV's colour mode converts grey and
    drops alpha, and applies the EXIF orientation (phone photos stored sideways)."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    data = np.fromfile(path, np.uint8)  # not imread: non-ASCII paths
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"{path}: not an image OpenCV can read")
    return image


class FacePipeline:
    def __init__(self, detector: Detector, embedder: Embedder, min_quality: float = 0.25,
                 quality: QualitySettings | None = None) -> None:
        self.detector = detector
        self.embedder = embedder
        self.min_quality = min_quality
        self.quality_settings = quality or QualitySettings()

    def __call__(self, images: Sequence[np.ndarray],
                 timings: MutableMapping[str, float] | None = None) -> list[FaceResult]:
        timings = {} if timings is None else timings
        dets = self.detector(list(images), timings)
        size = self.embedder.crop_size
        crops, qualities = [], []
        for image, d in zip(images, dets, strict=True):
            with StageTimer(timings, "align"):
                c = align_faces(image, d.keypoints if d.keypoints is not None
                                else np.zeros((0, 5, 2), np.float32), size)
            with StageTimer(timings, "quality"):
                q = face_quality(d.xyxy, d.keypoints, c, self.quality_settings)
            crops.append(c)
            qualities.append(q)
        good = [q.score >= self.min_quality for q in qualities]
        todo = np.concatenate([c[g] for c, g in zip(crops, good, strict=True)]) if crops else []
        vectors = self.embedder(np.asarray(todo).reshape(-1, size, size, 3), timings)
        results, used = [], 0
        for d, c, q, g in zip(dets, crops, qualities, good, strict=True):
            emb = np.zeros((len(d), self.embedder.dim), np.float32)
            emb[g] = vectors[used:used + int(g.sum())]
            used += int(g.sum())
            results.append(FaceResult(d, c, q, emb, g))
        return results
