"""`oko demo`: count people crossing a line in the bundled sample video.

The demo is an ordinary pipeline config (one file channel, detection, OC-SORT tracking, a
counting line, annotated recording, a JSONL sink) run by the same runtime as `oko run`,
with a progress bar and a summary at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from oko.config import PipelineConfig, parse_config
from oko.video.runtime import Runtime
from oko.video.sources import open_source

SAMPLE_VIDEO = Path(__file__).resolve().parent / "data" / "samples" / "vtest.mp4"

# A vertical line across the walkway of the sample; people walking left/right cross it.
DEMO_LINE = {"name": "walkway", "start": [0.5, 0.22], "end": [0.5, 0.62], "normalized": True,
             "classes": ["person"]}


def demo_config(out_dir: Path, source: str | Path = SAMPLE_VIDEO, model: str | None = None,
                engine: str | None = None, max_frames: int | None = None,
                line: dict[str, Any] | None = None) -> PipelineConfig:
    detect: dict[str, Any] = {} if model is None else {"model": model}
    channel: dict[str, Any] = {
        "id": "demo", "source": {"uri": str(source)}, "detect": detect,
        "tracker": {"kind": "ocsort"}, "lines": [line or DEMO_LINE],
        "detection_events": True, "record": {"path": str(out_dir / "annotated.mp4")},
    }
    if max_frames is not None:
        channel["max_frames"] = max_frames
    return parse_config({
        "node": "demo", "engine": None if engine is None else {"kind": engine},
        "api": {"enabled": False},
        "batch": {"max_size": 1, "max_wait_ms": 0},
        "sinks": [{"kind": "jsonl", "path": str(out_dir / "events.jsonl")}],
        "channels": [channel],
    }, "demo config")


@dataclass
class DemoResult:
    video: Path
    events: Path
    snapshot: dict[str, Any]
    seconds: float

    @property
    def channel(self) -> dict[str, Any]:
        return self.snapshot["channels"][0]

    @property
    def fps(self) -> float:
        return self.channel["frames_processed"] / self.seconds if self.seconds > 0 else 0.0


def run_demo(out_dir: Path, source: str | Path = SAMPLE_VIDEO, model: str | None = None,
             engine: str | None = None, max_frames: int | None = None,
             show_progress: bool = True) -> DemoResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "events.jsonl").unlink(missing_ok=True)
    config = demo_config(out_dir, source, model, engine, max_frames)
    runtime = Runtime(config.engine, config.batch, config.sinks, node=config.node)
    start = time.perf_counter()
    try:
        channel = runtime.add_channel(config.channels[0])
        with open_source(source) as probe:
            total = probe.frame_count
        if max_frames is not None:
            total = min(total or max_frames, max_frames)
        with Progress(TextColumn("[bold]demo"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn(),
                      disable=not show_progress) as progress:
            task = progress.add_task("demo", total=total, fps=0.0)
            while not runtime.wait(timeout_s=0.25):
                done = channel.stats.processed.total
                progress.update(task, completed=done,
                                fps=done / max(time.perf_counter() - start, 1e-9))
            progress.update(task, completed=channel.stats.processed.total)
    finally:
        runtime.stop()
    seconds = time.perf_counter() - start
    return DemoResult(out_dir / "annotated.mp4", out_dir / "events.jsonl", runtime.snapshot(),
                      seconds)
