"""The ``attributes`` module: people and what they wear, for "person in a red jacket" search.

The detector (COCO ``nanodet-coco`` by default) finds people; each person is cut out of
the frame with the silhouette model (:mod:`oko.reid.silhouette`) and gets the dominant
named colour of the upper and the lower body (:mod:`oko.reid.colours`, no learned
weights). A multi-head classifier for person crops (``classifier``: any pedestrian-
attribute ONNX with ``family: multihead``, e.g. bag, hat, sleeve length) adds one column
per head. In the runtime the reporter sends one ``person_attributes`` event per track with
the values voted over its frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from oko.core.detections import Detections
from oko.core.frame import Frame
from oko.core.timing import StageTimer
from oko.models import DEFAULT_DETECTOR, load_detector
from oko.modules.base import (Module, ModuleOptions, TrackReporter, label_id,
                              spread_timings)
from oko.modules.voting import VotingReporter
from oko.reid.colours import clothing_colours
from oko.reid.crops import crop_box
from oko.reid.silhouette import DEFAULT_MASK_MODEL, load_masker, masks_from_detections

if TYPE_CHECKING:
    from oko.models.multihead import MultiHeadClassifier


class AttributesOptions(ModuleOptions):
    model: str = Field(DEFAULT_DETECTOR, description="Person detector (zoo name or path).")
    engine: str | dict[str, Any] | None = Field(None, description="Engine for all models.")
    conf_threshold: float | None = Field(None, ge=0, le=1, description="Detector score.")
    person_label: str = Field("person", description="The detector's label for people.")
    masks: bool = Field(True, description="Colours inside the silhouette (mask model, or "
                        "the detector's masks when it has them).")
    mask_model: str = Field(DEFAULT_MASK_MODEL, description="Person-segmentation model.")
    classifier: str | None = Field(None, description="Multi-head classifier for person crops.")
    min_height: int = Field(48, ge=8, description="People lower than this (px) get none.")
    track_timeout_s: float = Field(1.5, gt=0, description="A track unseen this long is final.")
    min_frames: int = Field(3, ge=1, description="Tracks seen fewer frames are not reported.")
    snapshots: bool = Field(True, description="Attach a JPEG of the largest view to events.")


class AttributesModule(Module):
    name = "attributes"
    options_class = AttributesOptions

    def __init__(self, options: AttributesOptions) -> None:
        super().__init__(options)
        o = options
        self.detector = load_detector(o.model, o.engine, o.conf_threshold)
        self._person = label_id(self.detector.labels, o.person_label, "attributes",
                                self.detector.manifest.name)
        seg = self.detector.manifest.task.value == "segment"
        self.masker = load_masker(o.mask_model, o.engine) if o.masks and not seg else None
        self.classifier: MultiHeadClassifier | None = None
        if o.classifier:
            from oko.models.multihead import load_multihead

            self.classifier = load_multihead(o.classifier, o.engine)

    @property
    def labels(self) -> Sequence[str]:
        return self.detector.labels

    @property
    def model_name(self) -> str:
        parts = [self.detector.manifest.name]
        parts += [m.name for m in (self.masker, self.classifier) if m is not None]
        return "+".join(parts)

    @property
    def max_batch(self) -> int | None:
        return self.detector.max_batch

    def process(self, frames: Sequence[Frame]) -> list[Detections]:
        timings: dict[str, float] = {}
        found = [d[d.class_id == self._person] for d in
                 self.detector([f.image for f in frames], timings)]
        crops, owner, masks = [], [], []
        for i, (frame, dets) in enumerate(zip(frames, found, strict=True)):
            tall = (dets.xyxy[:, 3] - dets.xyxy[:, 1]) >= self.options.min_height
            for j in np.flatnonzero(tall):
                crops.append(crop_box(frame.image, dets.xyxy[j]))
                owner.append((i, j))
            if self.masker is None and self.options.masks:
                masks += masks_from_detections(dets.mask, dets.xyxy[tall])
        if self.masker is not None:
            masks = self.masker(crops, timings)
        with StageTimer(timings, "colour"):
            colours = clothing_colours(crops, masks if self.options.masks else None)
        heads = self.classifier(crops, timings).records() if self.classifier and crops else []
        columns: list[dict[str, np.ndarray]] = []
        for dets in found:
            n = len(dets)
            columns.append({"upper_colour": np.full(n, None, object),
                            "upper_colour_confidence": np.zeros(n, np.float32),
                            "lower_colour": np.full(n, None, object),
                            "lower_colour_confidence": np.zeros(n, np.float32)})
        for k, (i, j) in enumerate(owner):
            for key, value in colours[k].items():
                columns[i][key][j] = value
                columns[i][f"{key}_confidence"][j] = 1.0 if value is not None else 0.0
            for head, answer in (heads[k].items() if heads else ()):
                if "label" in answer:
                    columns[i].setdefault(head, np.full(len(found[i]), None, object))[j] = \
                        answer["label"]
                    columns[i].setdefault(f"{head}_confidence", np.zeros(
                        len(found[i]), np.float32))[j] = answer["score"]
        spread_timings(frames, timings)
        return [d.with_data(**cols) for d, cols in zip(found, columns, strict=True)]

    def reporter(self, channel_id: str) -> TrackReporter:
        return PersonAttributesReporter(channel_id, self.options, list(self.labels))


class PersonAttributesReporter(VotingReporter):
    """One ``person_attributes`` event per track (see :class:`VotingReporter`)."""

    event_type = "person_attributes"
