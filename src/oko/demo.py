"""`oko demo`: detect people and vehicles in the bundled sample video.

Writes an annotated MP4 and an events JSONL file into an output folder, with a progress
bar, and returns a summary for the CLI to print.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from oko.analyze import AnalyzeSummary
from oko.core.events import Event, detection_records
from oko.modules import create_module
from oko.sinks import JsonlSink
from oko.video import BoxAnnotator, VideoWriter, open_source, run_module

SAMPLE_VIDEO = Path(__file__).resolve().parent / "data" / "samples" / "vtest.mp4"


@dataclass
class DemoResult:
    video: Path
    events: Path
    summary: AnalyzeSummary
    seconds: float
    events_written: int

    @property
    def fps(self) -> float:
        return self.summary.frames / self.seconds if self.seconds > 0 else 0.0


def run_demo(out_dir: Path, source: str | Path = SAMPLE_VIDEO, model: str | None = None,
             engine: str = "onnxruntime", max_frames: int | None = None,
             show_progress: bool = True) -> DemoResult:
    options = {"engine": engine} | ({"model": model} if model else {})
    module = create_module("detect", options)
    labels = list(module.labels)
    out_dir.mkdir(parents=True, exist_ok=True)
    video_path, events_path = out_dir / "annotated.mp4", out_dir / "events.jsonl"
    events_path.unlink(missing_ok=True)
    summary = AnalyzeSummary()
    annotator = BoxAnnotator(labels)
    with open_source(source, channel_id="demo") as src, JsonlSink(events_path) as sink:
        total = src.frame_count if max_frames is None else min(max_frames, src.frame_count or max_frames)
        writer = None
        start = time.perf_counter()
        with Progress(TextColumn("[bold]detect"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn(),
                      disable=not show_progress, transient=False) as progress:
            task = progress.add_task("demo", total=total, fps=0.0)
            for result in run_module(src, module, max_frames=max_frames):
                frame = result.frame
                if writer is None:
                    writer = VideoWriter(video_path, getattr(src, "fps", None) or 10.0,
                                         frame.width, frame.height)
                writer.write(annotator.annotate(frame.image, result.detections))
                if len(result.detections):
                    sink.send(Event("detections", frame.channel_id, frame.timestamp, frame.index,
                                    {"objects": detection_records(result.detections, labels)}))
                summary.add(result, labels)
                elapsed = time.perf_counter() - start
                progress.update(task, advance=1, fps=summary.frames / max(elapsed, 1e-9))
        seconds = time.perf_counter() - start
        if writer is not None:
            writer.close()
        summary.record_source(src)
        events_written = sink.count
    return DemoResult(video_path, events_path, summary, seconds, events_written)
