"""Plate detection with four corners, from any detector the zoo can load.

- Corner models (``retina_plate``, the default; ``yolo_pose`` with four keypoints, the
  design most ported to Sophon boxes): corners come from the model.
- Box-only models (any other family, e.g. a YOLO trained on one ``plate`` class): corners
  are estimated inside each box from its pixels (``corners.estimate_in_box``), or are the
  box corners when ``refine_box_corners`` is off.

Either way the result carries ``keypoints`` (n, 4, 2) in TL, TR, BR, BL order.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import replace

import numpy as np

from oko.core.detections import Detections
from oko.core.errors import ConfigError
from oko.models.detector import Detector
from oko.plates.corners import box_corners, estimate_in_box, order_corners


class PlateDetector:
    def __init__(self, detector: Detector, label: str | None = None,
                 refine_box_corners: bool = True) -> None:
        """``label``: keep only this class of a multi-class model (None: every class)."""
        self.detector = detector
        self.label = label
        self.refine_box_corners = refine_box_corners
        self._class: int | None = None
        if label is not None:
            if label not in detector.labels:
                raise ConfigError(f"plate label {label!r} is not a label of model "
                                  f"{detector.manifest.name!r} ({', '.join(detector.labels)})")
            self._class = list(detector.labels).index(label)

    @property
    def name(self) -> str:
        return self.detector.manifest.name

    def __call__(self, images: Sequence[np.ndarray],
                 timings: MutableMapping[str, float] | None = None) -> list[Detections]:
        results = self.detector(images, timings)
        return [self._with_corners(img, d) for img, d in zip(images, results, strict=True)]

    def _with_corners(self, image: np.ndarray, dets: Detections) -> Detections:
        if self._class is not None and dets.class_id is not None:
            dets = dets[dets.class_id == self._class]
        kp = dets.keypoints
        if kp is not None and kp.shape[1] >= 4:
            corners = order_corners(kp[:, :4, :2])
        elif self.refine_box_corners:
            corners = estimate_in_box(image, dets.xyxy)
        else:
            corners = box_corners(dets.xyxy)
        return replace(dets, keypoints=corners.astype(np.float32), data=dict(dets.data),
                       class_id=np.zeros(len(dets), np.int32))
