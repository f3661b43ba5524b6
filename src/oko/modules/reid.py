"""The ``reid`` module: people across cameras.

Per frame it detects people (COCO detector, or a YOLO-seg model whose masks are then the
silhouettes). Per track (the runtime's tracker gives the ids) the reporter keeps the
``best_k`` best views (:mod:`oko.reid.crops`); once the track has had ``decide_after``
good frames, or ends, it cuts the person out of each view (:mod:`oko.reid.silhouette`),
embeds the views, averages them into one appearance vector and asks the node's identity
service (:mod:`oko.reid.identity`, shared by all channels of this module) whether this is
someone another camera saw: ``person_reidentified`` if so, ``person_appeared`` with a new
global id if not. Both events carry the embedding (float16, base64) so a central server
can match across nodes, and the best view as JPEG. Frames then carry ``global_id`` for
decided tracks. With ``gallery``, decided tracks are also written to a track store for
``oko reid search``.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from oko.core.detections import Detections
from oko.core.errors import ConfigError
from oko.core.events import Event
from oko.core.frame import Frame
from oko.models import DEFAULT_DETECTOR, load_detector
from oko.modules.base import (Module, ModuleOptions, TrackReporter, label_id,
                              spread_timings)
from oko.reid.colours import clothing_colours
from oko.reid.crops import BestViews, View, box_quality, crop_box, sharpness
from oko.reid.embed import STRIPES, PersonEmbedder, load_person_embedder
from oko.reid.identity import IdentityConfig, IdentityService, TrackRecord, Transition
from oko.reid.silhouette import (DEFAULT_MASK_MODEL, PersonMasker, load_masker,
                                 masks_from_detections)

log = logging.getLogger(__name__)

# Join similarity for an ONNX ReID model whose manifest states no decode.match_threshold.
ONNX_FALLBACK_THRESHOLD = 0.5


class ReidOptions(ModuleOptions):
    model: str = Field(DEFAULT_DETECTOR, description="Person detector (zoo name or path; a "
                       "YOLO-seg model also gives the silhouettes).")
    engine: str | dict[str, Any] | None = Field(None, description="Engine for all models.")
    conf_threshold: float | None = Field(None, ge=0, le=1, description="Detector score.")
    iou_threshold: float | None = Field(None, ge=0, le=1, description="Detector NMS IoU.")
    person_label: str = Field("person", description="The detector's label for people.")
    embedder: str = Field(STRIPES, description="'stripes' (no weights, a baseline) or a ReID "
                          "ONNX model (family reid).")
    masks: Literal["auto", "detector", "model", "none"] = Field(
        "auto", description="Silhouette source: auto = the detector's masks if it has them, "
        "else the mask model.")
    mask_model: str = Field(DEFAULT_MASK_MODEL, description="Person-segmentation model.")
    best_k: int = Field(4, ge=1, le=16, description="Views per track that are embedded.")
    decide_after: int = Field(10, ge=1, description="Good frames before a track is matched.")
    min_quality: float = Field(0.35, ge=0, le=1, description="A view is good from here.")
    min_height: int = Field(32, ge=2, description="Boxes lower than this (px) are not views.")
    min_frames: int = Field(3, ge=1, description="Shorter tracks are not reported.")
    track_timeout_s: float = Field(1.5, gt=0, description="A track unseen this long ended.")
    threshold: float | None = Field(None, ge=-1, le=1, description="Join similarity; None: "
                                    "the embedder's default.")
    window_s: float = Field(300.0, gt=0, description="How far back to match (no topology).")
    overlap_s: float = Field(1.0, ge=0, description="Tolerated overlap of two cameras' tracks.")
    transitions: list[Transition] | None = Field(None, description="Camera topology: "
                                                 "[{from, to, min_s, max_s}, ...].")
    colours: bool = Field(True, description="Upper/lower clothing colours on events.")
    gallery: str | None = Field(None, description="Track store file for `oko reid search`.")
    snapshots: bool = Field(True, description="Attach the best view as JPEG to events.")


class ReidModule(Module):
    name = "reid"
    options_class = ReidOptions
    wants_tracks = True

    def __init__(self, options: ReidOptions) -> None:
        super().__init__(options)
        o = options
        self.detector = load_detector(o.model, o.engine, o.conf_threshold, o.iou_threshold)
        self._person = label_id(self.detector.labels, o.person_label, "reid",
                                self.detector.manifest.name)
        self.embedder: PersonEmbedder = load_person_embedder(o.embedder, o.engine)
        self.masker: PersonMasker | None = None
        seg = self.detector.manifest.task.value == "segment"
        if o.masks == "detector" and not seg:
            raise ConfigError(f"module reid: masks=detector, but {o.model!r} gives no masks",
                              "use a YOLO-seg model, or masks=model")
        if o.masks == "model" or (o.masks == "auto" and not seg):
            self.masker = load_masker(o.mask_model, o.engine)
        self.use_detector_masks = o.masks in ("detector", "auto") and seg
        default = self.embedder.default_threshold
        self.identity = IdentityService(
            IdentityConfig(threshold=o.threshold, window_s=o.window_s, overlap_s=o.overlap_s,
                           transitions=o.transitions),
            default if default is not None else ONNX_FALLBACK_THRESHOLD)
        self.store = None
        if o.gallery:
            from oko.reid.store import TrackStore

            self.store = TrackStore.open_or_create(o.gallery, self.embedder.model_id,
                                                   self.embedder.name, self.embedder.dim)
        self._store_lock = threading.Lock()

    @property
    def labels(self) -> Sequence[str]:
        return self.detector.labels

    @property
    def model_name(self) -> str:
        parts = [self.detector.manifest.name, self.embedder.name]
        if self.masker is not None:
            parts.insert(1, self.masker.name)
        return "+".join(parts)

    @property
    def max_batch(self) -> int | None:
        return self.detector.max_batch

    def process(self, frames: Sequence[Frame]) -> list[Detections]:
        timings: dict[str, float] = {}
        found = self.detector([f.image for f in frames], timings)
        spread_timings(frames, timings)
        return [d[d.class_id == self._person] for d in found]

    def reporter(self, channel_id: str) -> TrackReporter:
        return ReidReporter(channel_id, self)

    # ------------------------------------------------------------------ per track
    def describe(self, views: list[View]) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """One unit appearance vector from a track's views, and their silhouettes."""
        crops = [v.crop for v in views]
        if self.masker is not None:
            masks = self.masker(crops)
        else:
            masks = [v.mask for v in views]
        vectors = self.embedder(crops, masks)
        mean = vectors.mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32), masks

    def remember(self, record: TrackRecord, attributes: dict[str, Any],
                 crop_jpeg: bytes | None) -> None:
        if self.store is None:
            return
        with self._store_lock:
            self.store.add(record.embedding, record.global_id, record.channel, record.track_id,
                           record.first_seen, record.last_seen, attributes, crop_jpeg)


def encode_embedding(vector: np.ndarray) -> str:
    """float16 little-endian bytes, base64: 1 KB for a 512-d vector."""
    return base64.b64encode(np.asarray(vector, "<f2").tobytes()).decode("ascii")


def decode_embedding(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<f2").astype(np.float32)


@dataclass
class _Track:
    first_seen: float
    last_seen: float
    frames: int = 0
    views: BestViews = field(default_factory=BestViews)
    decided: bool = False


class ReidReporter(TrackReporter):
    def __init__(self, channel_id: str, module: ReidModule) -> None:
        self.channel_id = channel_id
        self.module = module
        self.options: ReidOptions = module.options  # type: ignore[assignment]
        self._tracks: dict[int, _Track] = {}

    def update(self, frame: Frame, dets: Detections) -> list[Event]:
        events: list[Event] = []
        if dets.track_id is not None and len(dets):
            self._collect(frame, dets)
            for tid in np.unique(dets.track_id[dets.track_id >= 0]).tolist():
                t = self._tracks[tid]
                if t.decided:
                    self.module.identity.seen(self.channel_id, tid, frame.timestamp)
                elif t.views.good_frames >= self.options.decide_after:
                    events.extend(self._decide(tid, t))
        return events + self._close(frame.timestamp)

    def finish(self) -> list[Event]:
        return self._close(None)

    def annotate(self, dets: Detections) -> Detections:
        if dets.track_id is None or not len(dets):
            return dets
        ids = np.array([self.module.identity.global_id(self.channel_id, int(t)) or -1
                        if t >= 0 else -1 for t in dets.track_id], np.int64)
        return dets.with_data(global_id=ids)

    def _collect(self, frame: Frame, dets: Detections) -> None:
        o = self.options
        quality = box_quality(dets.xyxy, frame.width, frame.height)
        frame_masks = dets.mask if self.module.use_detector_masks else None
        heights = dets.xyxy[:, 3] - dets.xyxy[:, 1]
        for i in np.flatnonzero(dets.track_id >= 0):
            tid = int(dets.track_id[i])
            t = self._tracks.get(tid)
            if t is None:
                t = self._tracks[tid] = _Track(frame.timestamp, frame.timestamp,
                                               views=BestViews(o.best_k))
            t.last_seen = frame.timestamp
            t.frames += 1
            if heights[i] < o.min_height or quality[i] < o.min_quality:
                continue
            t.views.good_frames += 1
            if quality[i] <= t.views.worst_kept():  # cannot enter whatever its sharpness
                continue
            crop = crop_box(frame.image, dets.xyxy[i])
            score = float(quality[i]) * (0.5 + 0.5 * sharpness(crop))
            if score <= t.views.worst_kept():
                continue
            mask = None
            if frame_masks is not None:
                mask = masks_from_detections(frame_masks[i:i + 1], dets.xyxy[i:i + 1])[0]
            t.views.offer(View(score, crop.copy(), mask, frame.timestamp, frame.index,
                               [round(float(v), 1) for v in dets.xyxy[i]]))

    def _decide(self, tid: int, t: _Track) -> list[Event]:
        t.decided = True
        views = t.views.views
        if not views:
            return []
        embedding, masks = self.module.describe(views)
        best = views[0]
        attributes: dict[str, Any] = {}
        if self.options.colours:
            attributes = clothing_colours([best.crop], [masks[0]])[0]
        record = TrackRecord(self.channel_id, tid, t.first_seen, t.last_seen, embedding)
        decision = self.module.identity.assign(record)
        jpeg = _jpeg(best.crop) if self.options.snapshots else None
        self.module.remember(record, attributes, jpeg)
        data: dict[str, Any] = {
            "global_id": decision.global_id, "track_id": tid, "first_seen": round(t.first_seen, 3),
            "bbox": [round(float(v), 1) for v in best.box], "attributes": attributes,
            "embedding_model": self.module.embedder.model_id,
            "embedding": encode_embedding(embedding), "embedding_dtype": "float16"}
        if decision.new:
            kind = "person_appeared"
        else:
            kind = "person_reidentified"
            m = decision.matched
            assert m is not None
            data["similarity"] = round(float(decision.similarity or 0.0), 4)
            data["from"] = {"channel": m.channel, "track_id": m.track_id,
                            "time": round(m.last_seen, 3)}
            data["to"] = {"channel": self.channel_id, "track_id": tid,
                          "time": round(t.first_seen, 3)}
        return [Event(kind, self.channel_id, best.timestamp, best.frame_index, data,
                      snapshot=jpeg)]

    def _close(self, now: float | None) -> list[Event]:
        events: list[Event] = []
        for tid in [tid for tid, t in self._tracks.items()
                    if now is None or now - t.last_seen > self.options.track_timeout_s]:
            t = self._tracks.pop(tid)
            if not t.decided and t.frames >= self.options.min_frames:
                events.extend(self._decide(tid, t))
        return events


def _jpeg(crop: np.ndarray) -> bytes | None:
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return jpeg.tobytes() if ok else None
