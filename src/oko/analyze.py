"""`oko analyze`: run a module over a source and stream results as JSON."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from oko.core.events import detection_records
from oko.video import FrameResult, Source


@dataclass
class AnalyzeSummary:
    frames: int = 0
    corrupt_frames: int = 0
    missing_frames: int = 0
    per_label: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def add(self, result: FrameResult, labels: list[str]) -> None:
        self.frames += 1
        self.per_label.update(result.detections.labels(labels))
        self.events.update(e.type for e in result.events)
        for stage, ms in result.frame.timings.items():
            self.timings_ms[stage] = self.timings_ms.get(stage, 0.0) + ms

    def record_source(self, source: Source) -> None:
        self.corrupt_frames = source.stats.corrupt
        self.missing_frames = source.stats.missing

    def to_dict(self) -> dict:
        n = max(self.frames, 1)
        return {
            "frames": self.frames,
            "corrupt_frames": self.corrupt_frames,
            "missing_frames": self.missing_frames,
            "detections_per_label": dict(self.per_label.most_common()),
            **({"events": dict(self.events.most_common())} if self.events else {}),
            "ms_per_frame": {k: round(v / n, 3) for k, v in self.timings_ms.items()},
        }


def write_json(out: IO[str], source: Source, module_name: str, model_name: str,
               results: Iterator[FrameResult], labels: list[str]) -> AnalyzeSummary:
    """Stream ``{"source", "module", "model", "frames": [...], "summary"}`` to ``out``.

    Frames are written as they are processed, so memory stays flat on long videos.
    """
    summary = AnalyzeSummary()
    head = {"source": source.uri, "module": module_name, "model": model_name}
    out.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "frames": [')
    for result in results:
        record = {"index": result.frame.index, "timestamp": round(result.frame.timestamp, 4),
                  "detections": detection_records(result.detections, labels)}
        if result.frame.scene:
            record["scene"] = result.frame.scene
        if result.events:
            record["events"] = [e.to_dict() for e in result.events]
        out.write(("\n  " if summary.frames == 0 else ",\n  ")
                  + json.dumps(record, ensure_ascii=False))
        summary.add(result, labels)
    summary.record_source(source)
    out.write("\n], \"summary\": " + json.dumps(summary.to_dict(), ensure_ascii=False) + "}\n")
    out.flush()
    return summary
