"""The ``faces`` module: detect -> align -> embed -> search (-> attributes) on every frame,
and one decision per track from its best frames (``face_recognized`` / ``face_unknown``).

Per frame the results use the shared detections shape with label ``face``: ``landmarks``
(5 points), ``quality``, and with a gallery ``identity`` (None below the threshold) and
``similarity``; with an attribute model, ``attributes``. Faces below ``min_quality`` are
kept but not embedded, so they carry no identity.

Per track (the runtime's tracker gives the ids) the reporter keeps the ``best_frames``
best-quality embeddings; once it has ``decide_after`` good frames, or the track has not
been seen for ``lost_after_s`` seconds, or the channel ends, it averages them, searches
the gallery once and emits one event. Without a tracker every embedded face is its own
decision.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from oko.core.detections import Detections
from oko.core.events import Event
from oko.core.frame import Frame
from oko.core.timing import StageTimer
from oko.core.errors import ModelNotFoundError
from oko.faces.attributes import DEFAULT_ATTRIBUTE_MODELS, FaceAttributes, box_crops
from oko.faces.detect import DEFAULT_FACE_DETECTOR, load_face_detector
from oko.faces.embed import DEFAULT_EMBEDDER, load_embedder
from oko.faces.gallery import Gallery
from oko.faces.matcher import GalleryMatcher
from oko.faces.pipeline import FacePipeline, FaceResult
from oko.modules.base import Module, ModuleOptions, TrackReporter, spread_timings

log = logging.getLogger(__name__)


class FacesOptions(ModuleOptions):
    model: str = Field(DEFAULT_FACE_DETECTOR, description="Face detector (zoo name or path).")
    embedder: str = Field(DEFAULT_EMBEDDER, description="Face embedding model.")
    engine: str | dict[str, Any] | None = Field(
        None, description="Engine name or config for all models; None: each model's own.")
    conf_threshold: float | None = Field(None, ge=0, le=1, description="Detector score override.")
    gallery: str | None = Field(None, description="Gallery file to recognise people from.")
    threshold: float | None = Field(
        None, ge=-1, le=1, description="Match threshold; None: the gallery's calibrated one, "
        "else the embedding model's.")
    index: Literal["auto", "exact", "binary", "ivf-sq8", "ivf-flat", "hnsw"] = Field(
        "auto", description="Gallery search: exact, a faiss index, or auto by gallery size.")
    min_quality: float = Field(
        0.25, ge=0, le=1, description="Faces below this quality are not embedded.")
    attributes: list[str] | str | None = Field(
        default_factory=lambda: list(DEFAULT_ATTRIBUTE_MODELS),
        description="Multi-head attribute model(s), merged; default gender + age (a default "
        "model that is not installed is skipped with a warning); [] or null: none.")
    attribute_crop: Literal["box", "aligned"] = Field(
        "box", description="What the attribute model sees: a box crop or the aligned crop.")
    attribute_margin: float = Field(
        0.2, ge=0, le=2, description="Box crop margin (fraction): 0.2 = the face box enlarged "
        "1.2x and made square, the crop the default models were measured with.")
    decide_after: int = Field(5, ge=1, description="Good frames after which a track is decided.")
    best_frames: int = Field(5, ge=1, description="Best frames averaged into a decision.")
    lost_after_s: float = Field(
        1.0, gt=0, description="An undecided track unseen this long is decided.")
    unknown_events: bool = Field(True, description="Emit face_unknown events.")
    snapshots: bool = Field(True, description="Attach a JPEG face crop to face_unknown events.")
    reload_s: float = Field(
        10.0, ge=0, description="Check the gallery file for changes this often (0: never); a "
        "changed gallery is re-read on the inference thread (about 3 s per million rows).")


def load_face_attributes(options: FacesOptions) -> FaceAttributes | None:
    """The configured attribute models; a default one that is not installed is skipped."""
    from oko.models.multihead import load_multihead

    names = options.attributes
    names = [] if names is None else [names] if isinstance(names, str) else names
    classifiers = []
    for name in names:
        try:
            classifiers.append(load_multihead(name, options.engine))
        except ModelNotFoundError:
            if name not in DEFAULT_ATTRIBUTE_MODELS:
                raise
            log.warning("face attribute model %r is not installed, its attributes are left "
                        "out (install it: python3.11 tools/convert_human_models.py "
                        "--install-time)", name)
    if not classifiers:
        return None
    return FaceAttributes(classifiers, options.attribute_crop, options.attribute_margin)


class FacesModule(Module):
    name = "faces"
    options_class = FacesOptions

    def __init__(self, options: FacesOptions) -> None:
        super().__init__(options)
        self.detector = load_face_detector(options.model, options.engine, options.conf_threshold)
        self.embedder = load_embedder(options.embedder, options.engine)
        self.pipeline = FacePipeline(self.detector, self.embedder, options.min_quality)
        self.attributes = load_face_attributes(options)
        self._matcher: GalleryMatcher | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = time.monotonic()
        self._reload_lock = threading.Lock()
        if options.gallery is not None:
            self._load_gallery()

    # ------------------------------------------------------------------ gallery
    def _load_gallery(self) -> None:
        path = self.options.gallery
        with Gallery.open(path, readonly=True) as gallery:
            gallery.check_model(self.embedder.model_id, self.embedder.name, self.embedder.dim)
            stamp = gallery.version_stamp()
            loaded = gallery.load()
            threshold = self.options.threshold
            if threshold is None:
                threshold = gallery.threshold if gallery.threshold is not None else (
                    self.embedder.threshold)
        self._matcher = GalleryMatcher(loaded, threshold, self.options.index)
        self._stamp = stamp
        log.info("faces: gallery %s: %d people, %d embeddings, threshold %.3f, %s search", path,
                 len(loaded.names), len(loaded.matrix), threshold, self._matcher.kind)

    def _maybe_reload(self) -> None:
        """Pick up enrolments made while running (checked every ``reload_s`` seconds)."""
        opts = self.options
        if opts.gallery is None or not opts.reload_s or (
                time.monotonic() - self._checked < opts.reload_s):
            return
        self._checked = time.monotonic()
        try:
            with Gallery.open(opts.gallery, readonly=True) as gallery:
                changed = gallery.version_stamp() != self._stamp
            if changed:
                with self._reload_lock:
                    self._load_gallery()
        except Exception:  # a gallery being rewritten must not stop the channel
            log.exception("faces: reloading gallery %s failed; keeping the loaded one",
                          opts.gallery)

    @property
    def matcher(self) -> GalleryMatcher | None:
        return self._matcher

    # ------------------------------------------------------------------ module API
    @property
    def labels(self) -> Sequence[str]:
        return ["face"]

    @property
    def model_name(self) -> str:
        base = f"{self.detector.manifest.name}+{self.embedder.name}"
        return base if self.attributes is None else f"{base}+{self.attributes.name}"

    def process(self, frames: Sequence[Frame]) -> list[Detections]:
        self._maybe_reload()
        timings: dict[str, float] = {}
        results = self.pipeline([f.image for f in frames], timings)
        identities = self._identify(results, timings)
        out = []
        for frame, res, ident in zip(frames, results, identities, strict=True):
            d = res.detections
            data: dict[str, np.ndarray] = {
                "landmarks": np.round(d.keypoints, 1) if d.keypoints is not None
                else np.zeros((0, 5, 2), np.float32),
                "quality": res.quality.score}
            if ident is not None:
                data["identity"], data["similarity"] = ident
            if self.attributes is not None:
                column = np.empty(len(d), object)
                column[:] = self.attributes(frame.image, d.xyxy, res.crops, timings)
                data["attributes"] = column
            out.append(Detections(xyxy=d.xyxy, confidence=d.confidence, class_id=d.class_id,
                                  embedding=res.embeddings, data=data))
        spread_timings(frames, timings)
        return out

    def _identify(self, results: list[FaceResult], timings: dict[str, float]
                  ) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """(identity, similarity) object columns per frame; one search for the whole batch.
        Faces that were not embedded (low quality) get None in both."""
        matcher = self._matcher
        if matcher is None:
            return [None] * len(results)
        with StageTimer(timings, "search"):
            vectors = [r.embeddings[r.embedded] for r in results]
            found = matcher.match(np.concatenate(vectors)) if sum(map(len, vectors)) else None
            out, used = [], 0
            for res, v in zip(results, vectors, strict=True):
                identity = np.full(len(res), None, object)
                similarity = np.full(len(res), None, object)
                if len(v):
                    rows = np.flatnonzero(res.embedded)
                    identity[rows] = found.best[used:used + len(v)]
                    similarity[rows] = [round(float(x), 4)
                                        for x in found.similarity[used:used + len(v), 0]]
                    used += len(v)
                out.append((identity, similarity))
        return out

    def reporter(self, channel_id: str) -> TrackReporter:
        return FaceTrackReporter(channel_id, self)


@dataclass
class _Track:
    """What the reporter remembers of one track until it decides."""

    first_seen: float
    last_seen: float = 0.0
    last_index: int = 0
    frames: int = 0
    good: int = 0
    best: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (quality, embedding)
    snapshot: bytes | None = None
    snapshot_quality: float = -1.0
    attributes: Any = None
    decided: bool = False


class FaceTrackReporter(TrackReporter):
    """One decision per track: ``face_recognized`` or ``face_unknown`` (see module doc)."""

    def __init__(self, channel_id: str, module: FacesModule) -> None:
        self.channel_id = channel_id
        self.module = module
        self.opts: FacesOptions = module.options
        self.tracks: dict[int, _Track] = {}
        self.decisions = 0

    def update(self, frame: Frame, dets: Detections) -> list[Event]:
        if dets.embedding is None or len(dets) == 0:
            return self._expire(frame.timestamp)
        quality = dets.data.get("quality", np.zeros(len(dets), np.float32))
        embedded = np.linalg.norm(dets.embedding, axis=1) > 0.5  # zero rows: not embedded
        if dets.track_id is None:  # no tracker: each embedded face is its own decision
            events = []
            for row in np.flatnonzero(embedded):
                track = _Track(frame.timestamp, frame.timestamp, frame.index, 1, 1,
                               [(float(quality[row]), dets.embedding[row])])
                self._keep_snapshot(track, frame, dets, row, float(quality[row]))
                events.extend(self._decide(None, track, frame.timestamp, frame.index))
            return events
        events = []
        for row, tid in enumerate(dets.track_id.tolist()):
            if tid < 0:  # tentative tracks have no identity yet
                continue
            track = self.tracks.get(tid)
            if track is None:
                track = self.tracks[tid] = _Track(first_seen=frame.timestamp)
            track.last_seen, track.last_index = frame.timestamp, frame.index
            track.frames += 1
            if track.decided or not embedded[row]:
                continue
            q = float(quality[row])
            track.good += 1
            track.best.append((q, dets.embedding[row].copy()))
            track.best.sort(key=lambda item: -item[0])
            del track.best[self.opts.best_frames:]
            if q > track.snapshot_quality:
                self._keep_snapshot(track, frame, dets, row, q)
            if track.good >= self.opts.decide_after:
                events.extend(self._decide(tid, track, frame.timestamp, frame.index))
        return events + self._expire(frame.timestamp)

    def finish(self) -> list[Event]:
        events = []
        for tid, track in sorted(self.tracks.items()):
            if not track.decided and track.best:
                events.extend(self._decide(tid, track, track.last_seen, track.last_index))
        self.tracks.clear()
        return events

    # ------------------------------------------------------------------ helpers
    def _expire(self, now: float) -> list[Event]:
        """Decide tracks not seen for ``lost_after_s`` and forget them."""
        events = []
        for tid in [t for t, tr in self.tracks.items()
                    if now - tr.last_seen > self.opts.lost_after_s]:
            track = self.tracks.pop(tid)
            if not track.decided and track.best:
                events.extend(self._decide(tid, track, track.last_seen, track.last_index))
        return events

    def _keep_snapshot(self, track: _Track, frame: Frame, dets: Detections, row: int,
                       quality: float) -> None:
        track.snapshot_quality = quality
        if "attributes" in dets.data:
            track.attributes = dets.data["attributes"][row]
        if not self.opts.snapshots:
            return
        crop = box_crops(frame.image, dets.xyxy[row:row + 1], margin=0.4)[0]
        ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
        track.snapshot = jpeg.tobytes() if ok else None

    def _decide(self, tid: int | None, track: _Track, timestamp: float,
                index: int) -> list[Event]:
        track.decided = True
        vectors = np.stack([e for _, e in track.best])
        mean = vectors.mean(axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        data: dict[str, Any] = {"track_id": tid, "quality": round(track.best[0][0], 4),
                                "frames": track.frames, "frames_used": len(track.best)}
        if track.attributes is not None:
            data["attributes"] = track.attributes
        matcher = self.module.matcher
        person, similarity = None, None
        if matcher is not None and len(matcher):
            found = matcher.match(mean[None])
            person, similarity = found.best[0], round(float(found.similarity[0, 0]), 4)
            data["similarity"] = similarity
        self.decisions += 1
        if person is not None:
            data["person"] = person
            return [Event("face_recognized", self.channel_id, timestamp, index, data)]
        if not self.opts.unknown_events:
            return []
        if matcher is not None and len(matcher):
            data["nearest"] = found.names[0][0] or None
        return [Event("face_unknown", self.channel_id, timestamp, index, data,
                      snapshot=track.snapshot)]

