"""Run one module over one source: decode ahead on a thread, batch, process, yield results."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from oko.core.detections import Detections
from oko.core.events import Event
from oko.core.frame import Frame
from oko.modules.base import Module
from oko.video.prefetch import prefetch
from oko.video.sources import Source


@dataclass(frozen=True, slots=True)
class FrameResult:
    frame: Frame
    detections: Detections
    events: tuple[Event, ...] = ()


def run_module(source: Source, module: Module, max_frames: int | None = None,
               batch_size: int = 1) -> Iterator[FrameResult]:
    """Process up to ``max_frames`` frames of ``source`` in batches of ``batch_size``."""
    frames = iter(source) if max_frames is None else itertools.islice(source, max_frames)
    batch: list[Frame] = []
    for frame in prefetch(frames, depth=max(4, 2 * batch_size)):
        batch.append(frame)
        if len(batch) >= batch_size:
            yield from _process(module, batch)
            batch = []
    if batch:
        yield from _process(module, batch)


def track_results(results: Iterator[FrameResult], module: Module, channel_id: str = "analyze",
                  tracker: str | dict | None = "ocsort") -> Iterator[FrameResult]:
    """Results with track ids, and the module's per-track events, as a channel has them:
    tracker, then the module's reporter (its ``finish`` events come with the last frame)."""
    from oko.track import create_tracker

    tracker_obj = create_tracker(tracker)
    reporter = module.reporter(channel_id)
    last: FrameResult | None = None
    for result in results:
        if last is not None:
            yield last
        dets = tracker_obj.update(result.detections, result.frame.timestamp)
        events: list[Event] = []
        if reporter is not None:
            events = reporter.update(result.frame, dets)
            dets = reporter.annotate(dets)
        last = FrameResult(result.frame, dets, tuple(events))
    if last is not None:
        tail = tuple(reporter.finish()) if reporter is not None else ()
        yield FrameResult(last.frame, last.detections, last.events + tail)


def _process(module: Module, batch: list[Frame]) -> Iterator[FrameResult]:
    for frame, dets in zip(batch, module.process(batch), strict=True):
        yield FrameResult(frame, dets)
