"""All zones and lines of one channel, run together on each frame."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from oko.analytics.config import LineConfig, ZoneConfig, parse_configs
from oko.analytics.lines import LineCounter
from oko.analytics.zones import PolygonZone
from oko.core.detections import Detections
from oko.core.events import Event

log = logging.getLogger(__name__)


class Analytics:
    """The zones and lines of one channel; one instance per channel (it holds track state).

    ``zones`` and ``lines`` are configs or plain dicts (validated here; a bad field is a
    ConfigError naming ``zones[i].field``). ``frame_size`` is the channel's
    ``(width, height)`` in pixels; normalised coordinates are converted with it once.
    With ``labels`` given, class names in the configs are checked at construction.
    """

    def __init__(self, zones: Sequence[ZoneConfig | Mapping[str, Any]] = (),
                 lines: Sequence[LineConfig | Mapping[str, Any]] = (),
                 frame_size: tuple[int, int] | None = None, *,
                 labels: Sequence[str] | None = None) -> None:
        if frame_size is not None and (not isinstance(frame_size, Sequence)
                                       or len(frame_size) != 2):
            raise TypeError(f"frame_size must be (width, height), got {frame_size!r}")
        zone_cfgs = parse_configs(ZoneConfig, zones, "zones")
        line_cfgs = parse_configs(LineConfig, lines, "lines")
        self.frame_size = frame_size
        self.labels = labels
        self.zones = [PolygonZone(c, frame_size, labels) for c in zone_cfgs]
        self.lines = [LineCounter(c, frame_size, labels) for c in line_cfgs]
        log.debug("analytics: %d zone(s), %d line(s) on a %s frame", len(self.zones),
                  len(self.lines), frame_size)

    def update(self, dets: Detections, t: float, frame_index: int = 0, channel_id: str = "",
               labels: Sequence[str] | None = None) -> list[Event]:
        """Feed one frame's tracked detections (stream time ``t`` in seconds).

        Returns line crossings (in line order) followed by zone events (in zone order).
        ``labels`` (the model's class names) default to those given at construction.
        """
        labels = self.labels if labels is None else labels
        events: list[Event] = []
        for line in self.lines:
            events.extend(line.update(dets, t, frame_index, channel_id, labels))
        for zone in self.zones:
            events.extend(zone.update(dets, t, frame_index, channel_id, labels))
        return events

    def snapshot(self) -> dict[str, Any]:
        """Counts for status pages and metrics: ``{"lines": [...], "zones": [...]}``.

        A line: ``{"name", "line": [x1, y1, x2, y2], "in", "out", "by_class"}``; a zone:
        ``{"name", "polygon", "occupancy", "occupancy_by_class", "enter", "exit",
        "by_class"}``, all in pixels; ``by_class`` keys are class labels.
        """
        return {"lines": [line.counts() for line in self.lines],
                "zones": [zone.counts() for zone in self.zones]}

    def reset(self) -> None:
        """Forget all track state and zero every count (e.g. after a stream restart)."""
        for line in self.lines:
            line.reset()
        for zone in self.zones:
            zone.reset()


def count_result(counters: Analytics | Iterable[LineCounter]) -> dict[str, Any]:
    """Line totals for the quick check command: ``{"lines": [{"line": [x1, y1, x2, y2],
    "name", "in", "out", "by_class": {label: {"in", "out"}}}]}`` (pixels)."""
    lines = counters.lines if isinstance(counters, Analytics) else list(counters)
    return {"lines": [line.counts() for line in lines]}
