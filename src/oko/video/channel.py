"""One camera channel: its decode thread, and what happens to its frames after inference
(class filter, tracking, zones and lines, events, recording, preview).

Decoding runs on the channel's own thread; everything after inference runs on the shared
inference thread in frame order, so a channel's tracker and analytics see its frames in
sequence. A failure while handling one frame is caught here, logged with the channel id,
counted and reported as a ``channel_error`` event: other channels never notice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oko.analytics import Analytics, LineConfig, ZoneConfig
from oko.analytics.draw import draw_zones_and_lines
from oko.core.detections import Detections
from oko.core.events import Event, detection_records
from oko.core.frame import Frame
from oko.models import DEFAULT_DETECTOR
from oko.track import TrackerConfig, create_tracker
from oko.video.annotate import BoxAnnotator, blend_overlay
from oko.video.batcher import FrameBuffer, InferenceWorker
from oko.video.live import LiveSource, SourceConfig, SourceState
from oko.video.stats import ChannelStats
from oko.video.writer import VideoWriter

log = logging.getLogger(__name__)


class DetectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str = Field(DEFAULT_DETECTOR, description="Zoo name or path of the detector.")
    conf_threshold: float | None = Field(None, ge=0, le=1, description="Override the manifest's.")
    iou_threshold: float | None = Field(None, ge=0, le=1, description="Override the manifest's.")
    classes: list[str] | None = Field(None, description="Labels kept (None: all).")

    def worker_key(self) -> str:
        """Channels with equal keys share one model and one batched inference path."""
        return f"{self.model}|{self.conf_threshold}|{self.iou_threshold}"


class ModuleSettings(BaseModel):
    """A product module other than plain detection (faces, plates, ...) and its options."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="Module name (see `oko analyze --help`).")
    options: dict[str, Any] = Field(default_factory=dict, description="The module's options.")


class RecordConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: Path = Field(description="Annotated MP4 to write (tracks, zones, lines, counters).")


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Channel id (letters, digits, _.-).")
    source: SourceConfig = Field(description="Where frames come from (a URI string is enough).")
    fps_cap: float | None = Field(
        None, gt=0, description="Process at most this many frames/s (sets source.fps_cap).")
    detect: DetectSettings = Field(default_factory=DetectSettings)
    module: ModuleSettings | None = Field(
        None, description="Run this module instead of plain detection (faces, plates, ...).")
    tracker: TrackerConfig | None = Field(
        default_factory=lambda: create_default_tracker_config(),
        description="Tracker settings; null disables tracking (and zones/lines).")
    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list)
    detection_events: bool = Field(
        False, description="Also emit one 'detections' event per frame with objects.")
    snapshots: bool = Field(False, description="Attach a JPEG crop of the object to events.")
    record: RecordConfig | None = None
    buffer_frames: int = Field(16, ge=1, le=1024, description="Frames queued before inference.")
    max_frames: int | None = Field(
        None, ge=1, description="Stop after this many decoded frames (trials, benchmarks).")

    def worker_key(self) -> str:
        """Channels with equal keys share one loaded module and one batched inference path."""
        if self.module is None:
            return "detect|" + self.detect.worker_key()
        return self.module.name + "|" + json.dumps(self.module.options, sort_keys=True, default=str)

    @field_validator("source", mode="before")
    @classmethod
    def _uri_shorthand(cls, value: Any) -> Any:
        return {"uri": str(value)} if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _cap_at_the_source(self) -> ChannelConfig:
        # The source drops frames above the cap before they are queued or decoded further.
        if self.fps_cap is not None and self.source.fps_cap is None:
            return self.model_copy(update={
                "source": self.source.model_copy(update={"fps_cap": self.fps_cap})})
        return self


def create_default_tracker_config() -> TrackerConfig:
    from oko.track import parse_tracker_config

    return parse_tracker_config("ocsort")


class Channel:
    """A running channel. Create with its config, the worker of its model and an emitter."""

    def __init__(self, config: ChannelConfig, worker: InferenceWorker, labels: Sequence[str],
                 emit: Callable[[Event], None]) -> None:
        self.config = config
        self.id = config.id
        self.worker = worker
        self.labels = list(labels)
        self._emit = emit
        self.stats = ChannelStats()
        self.tracker = create_tracker(config.tracker) if config.tracker is not None else None
        self._keep_ids = (np.flatnonzero(np.isin(self.labels, config.detect.classes))
                          if config.detect.classes is not None else None)
        self.analytics: Analytics | None = None  # built on the first frame (needs its size)
        self.reporter = worker.module.reporter(self.id)
        self.source = LiveSource(config.source, channel_id=self.id, on_state=self._on_state)
        self._buffer: FrameBuffer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._decode_done = threading.Event()
        self.finished = threading.Event()
        self._writer: VideoWriter | None = None
        self._annotator = BoxAnnotator(self.labels)
        self._last: tuple[Frame, Detections] | None = None
        self._queued = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._buffer = self.worker.attach(self.id, self.config.buffer_frames,
                                          drop_oldest=self.source.is_live, handler=self._handle)
        self._thread = threading.Thread(target=self._decode_loop, name=f"oko-decode-{self.id}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop decoding, drop queued frames, close the recording."""
        self._stopping.set()
        self.source.stop()
        self.worker.detach(self.id)
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self._close_writer()
        self._finish_reporter()
        self.finished.set()

    def _finish_reporter(self) -> None:
        """Send the module's pending per-track events once, when the channel ends."""
        with self._lock:
            reporter, self.reporter = self.reporter, None
        if reporter is None:
            return
        try:
            events = reporter.finish()
        except Exception as exc:
            log.exception("channel %s: finishing the module's tracks failed", self.id)
            self._error("finish", exc, frame_index=-1, timestamp=0.0)
            return
        for event in events:
            self._send(event)

    @property
    def state(self) -> str:
        return self.source.state.value

    @property
    def dropped(self) -> int:
        return self._buffer.dropped if self._buffer is not None else 0

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "state": self.state, "source": self.config.source.uri,
                               "model": self.worker.name}
        out |= self.stats.snapshot()
        out["frames_dropped"] = self.dropped
        out["detections_per_label"] = self.stats.per_label(self.labels)
        out["reconnects"] = getattr(self.source.stats, "reconnects", 0)
        out["corrupt_frames"] = getattr(self.source.stats, "corrupt", 0)
        if self.analytics is not None:
            out["analytics"] = self.analytics.snapshot()
        return out

    # ------------------------------------------------------------------ decode thread
    def _decode_loop(self) -> None:
        try:
            for frame in self.source:
                if self._stopping.is_set():
                    break
                if self.config.max_frames is not None and frame.index >= self.config.max_frames:
                    self.source.stop()
                    break
                self.stats.frame_decoded()
                if not self._buffer.put(frame):
                    break
                self._queued += 1
        except Exception as exc:  # a source bug must not take the node down
            log.exception("channel %s: decoding failed", self.id)
            self._error("decode", exc, frame_index=-1, timestamp=0.0)
        finally:
            self._decode_done.set()
            self._check_finished()

    # ------------------------------------------------------------------ inference thread
    def _handle(self, frame: Frame, dets: Detections) -> None:
        try:
            self._process(frame, dets)
        except Exception as exc:
            log.exception("channel %s: frame %d failed", self.id, frame.index)
            self._error("process", exc, frame.index, frame.timestamp)
        finally:
            self.stats.frame_processed((time.monotonic() - frame.received) * 1000.0)
            self._check_finished()

    def _process(self, frame: Frame, dets: Detections) -> None:
        if self._keep_ids is not None:
            dets = dets[np.isin(dets.class_id, self._keep_ids)]
        events: list[Event] = []
        if self.tracker is not None:
            dets = self.tracker.update(dets, frame.timestamp)
            if self.analytics is None and (self.config.zones or self.config.lines):
                self.analytics = Analytics(self.config.zones, self.config.lines,
                                           (frame.width, frame.height), labels=self.labels)
            if self.analytics is not None:
                events = self.analytics.update(dets, frame.timestamp, frame.index, self.id,
                                               self.labels)
        reporter = self.reporter  # cleared by _finish_reporter when the channel ends
        if reporter is not None:
            events.extend(reporter.update(frame, dets))
            dets = reporter.annotate(dets)
        self.stats.count_objects(dets)
        if self.config.detection_events and len(dets):
            events.append(Event("detections", self.id, frame.timestamp, frame.index,
                                {"objects": detection_records(dets, self.labels)}))
        if self.config.snapshots and events:
            events = [self._with_snapshot(e, frame, dets) for e in events]
        for event in events:
            self._send(event)
        with self._lock:
            self._last = (frame, dets)
            if self.config.record is not None and not self._stopping.is_set():
                self._record(frame, dets)

    def _with_snapshot(self, event: Event, frame: Frame, dets: Detections) -> Event:
        track_id = event.data.get("track_id")
        if track_id is None or dets.track_id is None:
            return event
        rows = np.flatnonzero(dets.track_id == track_id)
        if not len(rows):
            return event
        x1, y1, x2, y2 = np.round(dets.xyxy[rows[0]]).astype(int)
        crop = frame.image[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)]
        if crop.size == 0:
            return event
        ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            return event
        return Event(event.type, event.channel_id, event.timestamp, event.frame_index,
                     event.data, event.wall_time, event.id, jpeg.tobytes())

    def _send(self, event: Event) -> None:
        with self.stats.lock:
            self.stats.events += 1
        self._emit(event)

    def _error(self, stage: str, exc: BaseException, frame_index: int, timestamp: float) -> None:
        with self.stats.lock:
            self.stats.errors += 1
        self._emit(Event("channel_error", self.id, timestamp, frame_index,
                         {"stage": stage, "error": f"{type(exc).__name__}: {exc}"[:500]}))

    def _on_state(self, channel_id: str, old: SourceState, new: SourceState, reason: str) -> None:
        log.info("channel %s: %s -> %s (%s)", channel_id, old.value, new.value, reason)
        self._emit(Event("channel_state", channel_id, 0.0, -1,
                         {"from": old.value, "to": new.value, "reason": reason}))

    # ------------------------------------------------------------------ output
    def annotate(self, frame: Frame, dets: Detections) -> np.ndarray:
        image = self._annotator.annotate(blend_overlay(frame.image, frame.overlay), dets)
        if self.analytics is not None:
            image = draw_zones_and_lines(image, self.analytics)
        return image

    def _record(self, frame: Frame, dets: Detections) -> None:
        if self._writer is None:
            path = self.config.record.path
            path.parent.mkdir(parents=True, exist_ok=True)
            fps = self.source.fps or 25.0
            if self.config.fps_cap is not None:
                fps = min(fps, self.config.fps_cap)
            self._writer = VideoWriter(path, fps, frame.width, frame.height)
        self._writer.write(self.annotate(frame, dets))

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def preview_jpeg(self, quality: int = 80) -> bytes | None:
        """The latest processed frame, annotated, as JPEG (for the MJPEG preview)."""
        with self._lock:
            last = self._last
        if last is None:
            return None
        ok, jpeg = cv2.imencode(".jpg", self.annotate(*last), [cv2.IMWRITE_JPEG_QUALITY, quality])
        return jpeg.tobytes() if ok else None

    def _check_finished(self) -> None:
        """A file channel is finished once decoding ended and every queued frame is handled."""
        if not self._decode_done.is_set() or self.finished.is_set():
            return
        with self.stats.lock:
            handled = self.stats.processed.total
        if handled + self.dropped >= self._queued:
            with self._lock:
                self._close_writer()
            self._finish_reporter()
            self.finished.set()
