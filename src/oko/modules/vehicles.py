"""Vehicles and their attributes: type, colour and, with a classifier, make and model.

The detector (COCO ``nanodet-coco`` by default) finds vehicles; its label is the type
(car, bus, truck, motorcycle). Colour comes from ``oko.vehicles.colour`` (no learned
weights; inside the object's mask when the detector gives masks). A multi-head classifier
(``attributes``: a manifest with ``family: multihead``, any heads such as type, make,
model, colour) adds one column per head, read on the vehicle crops of the whole batch at
once; a head named ``colour`` replaces the estimated colour. In the runtime the reporter
sends one ``vehicle`` event per track with the attributes voted over its frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from oko.core.detections import Detections
from oko.core.errors import ConfigError
from oko.core.frame import Frame
from oko.core.timing import StageTimer
from oko.models import DEFAULT_DETECTOR, load_detector
from oko.modules.base import Module, ModuleOptions, TrackReporter, spread_timings
from oko.modules.voting import VotingReporter
from oko.vehicles.colour import ColourEstimator

if TYPE_CHECKING:
    from oko.models.multihead import MultiHeadClassifier

VEHICLE_CLASSES = ["car", "bus", "truck", "motorcycle"]
COLOUR_HEADS = ("colour", "color")


class VehiclesOptions(ModuleOptions):
    model: str = Field(DEFAULT_DETECTOR, description="Vehicle detector (zoo name or path).")
    engine: str | dict[str, Any] | None = Field(None, description="Engine for all models.")
    conf_threshold: float | None = Field(None, ge=0, le=1, description="Detector score.")
    iou_threshold: float | None = Field(None, ge=0, le=1, description="Detector NMS IoU.")
    classes: list[str] = Field(VEHICLE_CLASSES, description="Detector labels that are vehicles.")
    attributes: str | None = Field(None, description="Multi-head classifier for vehicle crops "
                                   "(type/make/model/colour heads); None: colour only.")
    colour: bool = Field(True, description="Estimate the body colour (no weights needed).")
    crop_margin: float = Field(0.05, ge=0, le=0.5, description="Margin around crops for the "
                               "classifier, as a fraction of the box size per side.")
    min_size: int = Field(24, ge=1, description="Vehicles smaller than this (pixels, shorter "
                          "side) get no attributes.")
    track_timeout_s: float = Field(1.5, gt=0, description="A track unseen this long is final.")
    min_frames: int = Field(3, ge=1, description="Tracks seen fewer frames are not reported.")
    snapshots: bool = Field(True, description="Attach a JPEG of the largest view to events.")


class VehiclesModule(Module):
    name = "vehicles"
    options_class = VehiclesOptions

    def __init__(self, options: VehiclesOptions) -> None:
        super().__init__(options)
        o = options
        self.detector = load_detector(o.model, o.engine, o.conf_threshold, o.iou_threshold)
        unknown = sorted(set(o.classes) - set(self.detector.labels))
        if unknown:
            raise ConfigError(f"module vehicles: classes {unknown} are not labels of model "
                              f"{self.detector.manifest.name!r}")
        self._keep = np.flatnonzero(np.isin(self.detector.labels, o.classes))
        self.colour = ColourEstimator(min_size=o.min_size) if o.colour else None
        self.classifier: MultiHeadClassifier | None = None
        if o.attributes:
            from oko.models.multihead import load_multihead  # only when heads are configured

            self.classifier = load_multihead(o.attributes, o.engine)

    @property
    def labels(self) -> Sequence[str]:
        return self.detector.labels

    @property
    def model_name(self) -> str:
        base = self.detector.manifest.name
        return base if self.classifier is None else f"{base}+{self.classifier.name}"

    @property
    def max_batch(self) -> int | None:
        return self.detector.max_batch

    def process(self, frames: Sequence[Frame]) -> list[Detections]:
        timings: dict[str, float] = {}
        images = [f.image for f in frames]
        found = [d[np.isin(d.class_id, self._keep)] for d in self.detector(images, timings)]
        columns: list[dict[str, np.ndarray]] = [{} for _ in frames]
        with StageTimer(timings, "colour"):
            if self.colour is not None:
                for cols, img, dets in zip(columns, images, found, strict=True):
                    est = self.colour(img, dets.xyxy, dets.mask)
                    big = self._big(dets)
                    cols["colour"] = np.array([n if b else None for n, b in
                                               zip(est.names, big, strict=True)], object)
                    cols["colour_confidence"] = np.where(big, est.confidence, 0.0).astype(np.float32)
        if self.classifier is not None:
            self._classify(images, found, columns, timings)
        spread_timings(frames, timings)
        return [d.with_data(**cols) for d, cols in zip(found, columns, strict=True)]

    def _big(self, dets: Detections) -> np.ndarray:
        wh = dets.xyxy[:, 2:] - dets.xyxy[:, :2]
        return wh.min(axis=1) >= self.options.min_size if len(dets) else np.zeros(0, bool)

    def _classify(self, images: Sequence[np.ndarray], found: list[Detections],
                  columns: list[dict[str, np.ndarray]], timings: dict[str, float]) -> None:
        """All vehicle crops of the batch through the multi-head classifier at once."""
        crops, owner = [], []
        m = self.options.crop_margin
        for i, (img, dets) in enumerate(zip(images, found, strict=True)):
            h, w = img.shape[:2]
            grow = (dets.xyxy[:, 2:] - dets.xyxy[:, :2]) * m
            boxes = np.concatenate([dets.xyxy[:, :2] - grow, dets.xyxy[:, 2:] + grow], axis=1)
            for x1, y1, x2, y2 in np.clip(np.round(boxes), 0, [w, h, w, h]).astype(int):
                crops.append(img[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)])
                owner.append(i)
        result = self.classifier(crops, timings)
        owner_arr = np.asarray(owner, np.int64)
        for i, (cols, dets) in enumerate(zip(columns, found, strict=True)):
            rows = np.flatnonzero(owner_arr == i)
            big = self._big(dets)
            for name, head in result.heads.items():
                key = "colour" if name in COLOUR_HEADS else name
                probs = head.probs[rows]
                if head.spec.kind == "softmax":
                    best = probs.argmax(axis=1) if len(rows) else np.zeros(0, np.int64)
                    cols[key] = np.array([head.spec.classes[b] if ok else None
                                          for b, ok in zip(best, big, strict=True)], object)
                    conf = probs[np.arange(len(rows)), best] if len(rows) else np.zeros(0)
                    cols[f"{key}_confidence"] = np.where(big, conf, 0.0).astype(np.float32)
                else:
                    present = probs >= head.spec.threshold
                    col = np.empty(len(rows), object)
                    for r in range(len(rows)):
                        col[r] = [c for c, p in zip(head.spec.classes, present[r], strict=True) if p]
                    cols[key] = col

    def reporter(self, channel_id: str) -> TrackReporter:
        return VehicleReporter(channel_id, self.options, list(self.labels))


class VehicleReporter(VotingReporter):
    """One ``vehicle`` event per track (see :class:`VotingReporter`)."""

    event_type = "vehicle"
