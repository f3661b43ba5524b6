"""Licence plates: find plates with their corners, read them, and report one read per track.

Per frame the module returns plate rows (label ``plate``) with ``text`` (Cyrillic for
Russian plates), ``text_latin``, ``format``, ``country``, ``corners``,
``char_confidences`` and ``readable`` (see ``oko.plates.pipeline``). In the runtime the
channel's tracker follows the plates, and the reporter combines the reads of each track
character by character (``oko.plates.voting``) into one ``plate_read`` event when the
track ends, with a JPEG of the plate's best view.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from oko.core.detections import Detections
from oko.core.errors import ConfigError, ModelContractError
from oko.core.events import Event
from oko.core.frame import Frame
from oko.models import load_detector
from oko.models.manifest import Task
from oko.models.recognizer import load_recognizer
from oko.models.zoo import resolve_model
from oko.modules.base import Module, ModuleOptions, TrackReporter, spread_timings
from oko.plates.chars import CharDetectorReader
from oko.plates.classify import TemplateClassifier
from oko.plates.corners import edge_lengths, expand
from oko.plates.detector import PlateDetector
from oko.plates.formats import format_by_name, formats_for
from oko.plates.pipeline import PlatePipeline, ReadSettings, VehicleSearch
from oko.plates.reader import CtcPlateReader, PlateReader
from oko.plates.rectify import one_line_sizes, warp
from oko.plates.voting import PlateVotes

log = logging.getLogger(__name__)

DEFAULT_PLATE_DETECTOR = "plate-corners-retina"
DEFAULT_PLATE_READER = "ppocr-rec-v4"


class PlatesOptions(ModuleOptions):
    model: str = Field(DEFAULT_PLATE_DETECTOR, description="Plate detector (zoo name or path): "
                       "a corner model (retina_plate, yolo_pose) or any box detector.")
    reader: str = Field(DEFAULT_PLATE_READER, description="Text recogniser (task recognize, "
                        "CTC) or a per-character detector (task detect, labels are characters).")
    engine: str | dict[str, Any] | None = Field(None, description="Engine for all models.")
    read_batch: int | None = Field(
        1, ge=1, description="Plates per recogniser call (None: all at once). 1 is fastest on "
        "CPU with ONNX Runtime (measured: batches of 4 cost 1.7x more per plate); raise it "
        "for GPUs and TPUs.")
    conf_threshold: float | None = Field(None, ge=0, le=1, description="Plate detector score "
                                         "for candidates (the manifest's: 0.1 for the default).")
    min_score: float = Field(0.3, ge=0, le=1, description="Detector score a plate needs when no "
                             "country format confirms its read (generic reads, plates too small "
                             "to read).")
    plate_label: str | None = Field(None, description="Class of a multi-class detector that is "
                                    "the plate (None: every class).")
    refine_box_corners: bool = Field(True, description="Box detectors: estimate the corners "
                                     "from the pixels in the box (else the box corners).")
    countries: list[str] = Field(["RU"], description="Plate formats to check reads against.")
    generic: bool = Field(True, description="Also accept reads that fit no country (3-10 "
                          "symbols, uncorrected).")
    search: Literal["frame", "vehicles", "both"] = Field(
        "both", description="Where to look for plates: the whole frame, inside vehicles found "
        "by `vehicle_model` (scaled to `vehicle_crop_width`), or both.")
    vehicle_model: str = Field("nanodet-coco", description="Vehicle detector for `search`.")
    vehicle_classes: list[str] = Field(["car", "bus", "truck", "motorcycle"])
    vehicle_crop_width: int = Field(320, ge=64, le=2048)
    margin: tuple[float, float] = Field((0.08, 0.10), description="Read this fraction of the "
                                        "plate's width/height beyond its corners, per side.")
    min_width: float = Field(40.0, ge=0, description="Narrower plates are unreadable (pixels).")
    min_height: float = Field(10.0, ge=0, description="Lower plates are unreadable (pixels).")
    min_confidence: float = Field(0.5, ge=0, le=1, description="Least geometric-mean character "
                                  "confidence of a read that counts.")
    unreadable_min_score: float = Field(
        0.5, ge=0, le=1, description="A plate big enough to read that could not be read is "
        "kept only with at least this detector score (the rest are likely not plates).")
    track_timeout_s: float = Field(1.5, gt=0, description="A track not seen for this long (stream "
                                   "time) is final: its plate_read event is sent.")
    min_frames_unreadable: int = Field(3, ge=1, description="Tracks never read are reported "
                                       "(text null) when seen in at least this many frames.")
    snapshots: bool = Field(True, description="Attach a JPEG of the best plate view to events.")


def _load_reader(ref: str, engine: Any, batch: int | None) -> PlateReader:
    manifest = resolve_model(ref)
    if manifest.task == Task.RECOGNIZE:
        return CtcPlateReader(load_recognizer(manifest, engine, batch))
    if manifest.task == Task.DETECT:
        return CharDetectorReader(load_detector(manifest, engine))
    raise ConfigError(f"module plates: reader {ref!r} is a {manifest.task.value} model; "
                      "use a text recogniser or a character detector")


def _crop_detector(detector: PlateDetector, width: int, engine: Any) -> PlateDetector:
    """The plate detector again with a square input of ``width`` (fully convolutional models);
    the same detector when its input size is fixed."""
    manifest = detector.detector.manifest
    small = manifest.model_copy(update={"input": manifest.input.model_copy(
        update={"width": width, "height": width})})
    try:
        inner = load_detector(small, engine)
    except ModelContractError:
        return detector
    return PlateDetector(inner, detector.label, detector.refine_box_corners)


class PlatesModule(Module):
    name = "plates"
    options_class = PlatesOptions

    def __init__(self, options: PlatesOptions) -> None:
        super().__init__(options)
        o = options
        detector = PlateDetector(load_detector(o.model, o.engine, o.conf_threshold),
                                 o.plate_label, o.refine_box_corners)
        vehicles = None
        if o.search != "frame":
            vdet = load_detector(o.vehicle_model, o.engine)
            unknown = sorted(set(o.vehicle_classes) - set(vdet.labels))
            if unknown:
                raise ConfigError(f"module plates: vehicle_classes {unknown} are not labels of "
                                  f"{vdet.manifest.name!r}")
            vehicles = VehicleSearch(vdet, o.vehicle_classes,
                                     _crop_detector(detector, o.vehicle_crop_width, o.engine),
                                     o.vehicle_crop_width)
        settings = ReadSettings(margin=o.margin, min_width=o.min_width, min_height=o.min_height,
                                min_confidence=o.min_confidence, min_score=o.min_score,
                                unreadable_min_score=o.unreadable_min_score)
        classifier = TemplateClassifier(formats_for(o.countries, generic=o.generic))
        self.pipeline = PlatePipeline(detector, _load_reader(o.reader, o.engine, o.read_batch), classifier,
                                      settings, vehicles, search_frame=o.search != "vehicles")

    @property
    def labels(self) -> Sequence[str]:
        return ["plate"]

    @property
    def model_name(self) -> str:
        return f"{self.options.model}+{self.options.reader}"

    def process(self, frames: Sequence[Frame]) -> list[Detections]:
        timings: dict[str, float] = {}
        results = self.pipeline([f.image for f in frames], timings)
        spread_timings(frames, timings)
        return results

    def reporter(self, channel_id: str) -> TrackReporter:
        return PlateReporter(channel_id, self.options)


@dataclass
class _Track:
    first_seen: float
    last_seen: float = 0.0
    frames: int = 0
    votes: PlateVotes = field(default_factory=PlateVotes)
    best_quality: float = -1.0
    best: dict[str, Any] = field(default_factory=dict)
    snapshot: bytes | None = None


class PlateReporter(TrackReporter):
    """One ``plate_read`` event per track: the voted text, when the track ends.

    Without a tracker (no track ids) every readable plate is reported on every frame.
    Tentative tracks (id -1) are not counted.
    """

    def __init__(self, channel_id: str, options: PlatesOptions) -> None:
        self.channel_id = channel_id
        self.options = options
        self._tracks: dict[int, _Track] = {}

    def update(self, frame: Frame, dets: Detections) -> list[Event]:
        if not len(dets):
            return self._close(frame.timestamp)
        if dets.track_id is None:
            return [self._single(frame, dets, i) for i in np.flatnonzero(dets.data["readable"])]
        for i in np.flatnonzero(dets.track_id >= 0):
            tid = int(dets.track_id[i])
            track = self._tracks.setdefault(tid, _Track(first_seen=frame.timestamp))
            track.last_seen = frame.timestamp
            track.frames += 1
            readable = bool(dets.data["readable"][i])
            conf = np.asarray(dets.data["char_confidences"][i], np.float32)
            if readable:
                track.votes.add(dets.data["text_latin"][i], conf, dets.data["format"][i])
            quality = float(conf.mean()) if readable else float(dets.confidence[i]) - 1.0
            if quality > track.best_quality:
                track.best_quality = quality
                track.best = {"bbox": dets.xyxy[i].round(1).tolist(),
                              "corners": dets.data["corners"][i].round(1).tolist(),
                              "timestamp": frame.timestamp, "frame_index": frame.index,
                              "text": dets.data["text"][i], "text_latin": dets.data["text_latin"][i],
                              "format": dets.data["format"][i]}
                if self.options.snapshots:
                    track.snapshot = self._plate_jpeg(frame.image, dets.data["corners"][i])
        return self._close(frame.timestamp)

    def finish(self) -> list[Event]:
        return self._close(None)

    # ------------------------------------------------------------------ helpers
    def _close(self, now: float | None) -> list[Event]:
        done = [tid for tid, t in self._tracks.items()
                if now is None or now - t.last_seen > self.options.track_timeout_s]
        events = []
        for tid in done:
            event = self._event(tid, self._tracks.pop(tid))
            if event is not None:
                events.append(event)
        return events

    def _event(self, tid: int, track: _Track) -> Event | None:
        vote = track.votes.result()
        if vote is None and track.frames < self.options.min_frames_unreadable:
            return None
        best = track.best
        data: dict[str, Any] = {"track_id": tid, "label": "plate", "readable": vote is not None,
                                "text": None, "text_latin": None, "format": None,
                                "country": None, "confidence": None, "char_confidences": [],
                                "reads": len(track.votes), "frames": track.frames,
                                "first_seen": round(track.first_seen, 3),
                                "last_seen": round(track.last_seen, 3),
                                "bbox": best.get("bbox"), "corners": best.get("corners")}
        if vote is not None:
            text, fmt_name = _native(vote.text_latin, vote.format)
            if text is None:  # the per-position vote broke a format rule: keep the best read
                text, fmt_name = best["text"], best["format"]
                vote_latin = best["text_latin"]
            else:
                vote_latin = vote.text_latin
            fmt = format_by_name(fmt_name) if fmt_name else None
            data |= {"text": text, "text_latin": vote_latin, "format": fmt_name,
                     "country": None if fmt is None or fmt.country == "*" else fmt.country,
                     "confidence": round(vote.confidence, 4),
                     "char_confidences": [round(float(c), 4) for c in vote.confidences],
                     "votes": vote.reads}
        return Event("plate_read", self.channel_id, best.get("timestamp", track.last_seen),
                     best.get("frame_index", -1), data, snapshot=track.snapshot)

    def _single(self, frame: Frame, dets: Detections, i: int) -> Event:
        conf = [round(float(c), 4) for c in dets.data["char_confidences"][i]]
        data = {"track_id": None, "label": "plate", "readable": True,
                "text": dets.data["text"][i], "text_latin": dets.data["text_latin"][i],
                "format": dets.data["format"][i], "country": dets.data["country"][i],
                "confidence": round(float(np.mean(conf)), 4) if conf else None,
                "char_confidences": conf, "reads": 1, "frames": 1,
                "bbox": dets.xyxy[i].round(1).tolist(),
                "corners": dets.data["corners"][i].round(1).tolist()}
        snapshot = self._plate_jpeg(frame.image, dets.data["corners"][i]) \
            if self.options.snapshots else None
        return Event("plate_read", self.channel_id, frame.timestamp, frame.index, data,
                     snapshot=snapshot)

    def _plate_jpeg(self, image: np.ndarray, corners: np.ndarray) -> bytes | None:
        c = expand(np.asarray(corners, np.float32)[None], *self.options.margin)
        w, h = edge_lengths(c)
        crop = warp(image, c, one_line_sizes(w / np.maximum(h, 1e-6), 64, 1.0, 8.0))[0]
        ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
        return jpeg.tobytes() if ok else None


def _native(latin: str, fmt_name: str | None) -> tuple[str | None, str | None]:
    """Native-script text of a voted Latin string, if it is still a valid plate of its format."""
    fmt = format_by_name(fmt_name) if fmt_name else None
    if fmt is None:
        return None, None
    hit = fmt.match_exact(latin)
    return (fmt.native_text(latin, hit[0]), fmt.name) if hit else (None, None)
