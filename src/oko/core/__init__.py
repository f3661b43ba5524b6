"""Core types shared by every layer: frames, detections, events, geometry, errors."""

from oko.core.detections import Detections
from oko.core.errors import (
    ConfigError,
    EngineLoadError,
    ModelContractError,
    ModelNotFoundError,
    OkoError,
    SourceError,
    UnknownNameError,
)
from oko.core.events import Event, detection_records
from oko.core.frame import Frame
from oko.core.geometry import Letterbox, box_iou, clip_boxes, letterbox, nms, stretch
from oko.core.timing import StageTimer

__all__ = [
    "ConfigError", "Detections", "EngineLoadError", "Event", "Frame", "Letterbox",
    "ModelContractError", "ModelNotFoundError", "OkoError", "SourceError", "StageTimer",
    "UnknownNameError", "box_iou", "clip_boxes", "detection_records", "letterbox", "nms",
    "stretch",
]
