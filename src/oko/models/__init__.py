"""Model manifests, the zoo, and family adapters (pure numpy pre/post-processing)."""

from oko.models import centernet as _centernet  # noqa: F401  (each import registers a family)
from oko.models import nanodet as _nanodet  # noqa: F401
from oko.models import plate_retina as _plate_retina  # noqa: F401
from oko.models import yolo as _yolo  # noqa: F401
from oko.models import yolo_pose as _yolo_pose  # noqa: F401
from oko.models import yolo_seg as _yolo_seg  # noqa: F401
from oko.models.adapter import DetectionAdapter, adapter_for
from oko.models.detector import Detector, load_detector
from oko.models.manifest import Manifest, load_manifest
from oko.models.zoo import DEFAULT_DETECTOR, resolve_model, scan_zoo

__all__ = ["DEFAULT_DETECTOR", "DetectionAdapter", "Detector", "Manifest", "adapter_for",
           "load_detector", "load_manifest", "resolve_model", "scan_zoo"]
