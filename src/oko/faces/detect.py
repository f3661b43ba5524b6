"""Loading a face detector by name or path; importing this registers the face families."""

from __future__ import annotations

from pathlib import Path

from oko.core.errors import ModelContractError
from oko.faces import scrfd as _scrfd  # noqa: F401  (each import registers a family)
from oko.faces import yolov8_face as _yolov8_face  # noqa: F401
from oko.faces import yunet as _yunet  # noqa: F401
from oko.faces.face_adapter import FaceDetectionAdapter
from oko.models.detector import Detector, load_detector
from oko.models.manifest import Manifest

DEFAULT_FACE_DETECTOR = "yunet-face"
FACE_FAMILIES = ("yunet", "scrfd", "yolov8-face")


def load_face_detector(model: str | Path | Manifest = DEFAULT_FACE_DETECTOR,
                       engine: str | dict | None = None,
                       conf_threshold: float | None = None) -> Detector:
    """A :class:`Detector` whose results carry 5 landmarks per face (``keypoints``)."""
    detector = load_detector(model, engine, conf_threshold)
    if not isinstance(detector.adapter, FaceDetectionAdapter):
        raise ModelContractError(
            f"model {detector.manifest.name!r} (family {detector.manifest.family!r}) is not a "
            f"face detector", f"use a model of family {', '.join(FACE_FAMILIES)}")
    return detector
