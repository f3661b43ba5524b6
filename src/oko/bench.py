"""`oko bench`: where the time goes for one detector, and how close the pipeline gets to
the raw engine.

Reported per frame at batch 1: decode, preprocess, inference and postprocess ms; the
end-to-end pipeline fps (decode on its own thread, as in `oko analyze`); the raw engine
fps (the same preprocessed tensor run back to back); and their ratio. Ratios are taken in
one run on one machine, so they compare; absolute numbers vary between machines.
"""

from __future__ import annotations

import itertools
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from oko.engines import EngineConfig
from oko.models import load_detector
from oko.modules.detect import DetectModule, DetectOptions
from oko.video import open_source, run_module

WARMUP = 5


@dataclass
class BenchReport:
    model: str
    engine: str
    threads: str
    frames: int
    input_size: str
    decode_ms: float
    pre_ms: float
    infer_ms: float
    post_ms: float
    raw_engine_fps: float
    detector_fps: float
    pipeline_fps: float

    @property
    def detector_ratio(self) -> float:
        return self.detector_fps / self.raw_engine_fps

    @property
    def ratio(self) -> float:
        return self.pipeline_fps / self.raw_engine_fps


def _decode_frames(source: str | Path, n: int) -> tuple[list[np.ndarray], float]:
    """n frames (looping the source if short) and decode ms per frame."""
    images: list[np.ndarray] = []
    start = time.perf_counter()
    while len(images) < n:
        with open_source(source) as src:
            before = len(images)
            images.extend(f.image for f in itertools.islice(src, n - len(images)))
            if len(images) == before:
                break
    return images, (time.perf_counter() - start) * 1000 / max(len(images), 1)


def _fps(seconds: list[float]) -> float:
    """Frames per second from per-frame wall times (median: robust to a stray stall)."""
    return 1.0 / float(np.median(seconds))


def bench_detector(model: str, engine: EngineConfig | str | dict, source: str | Path,
                   frames: int = 100) -> BenchReport:
    detector = load_detector(model, engine)
    images, decode_ms = _decode_frames(source, frames)
    n = len(images)
    for img in images[:WARMUP]:
        detector([img])

    # Raw engine: one preprocessed tensor, run back to back.
    inputs, _ = detector.adapter.preprocess(images[:1])
    raw: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        detector.engine.run(inputs)
        raw.append(time.perf_counter() - t0)

    # Detector on decoded frames in memory: pre + infer + post, timed per stage.
    timings: dict[str, float] = {}
    per_image: list[float] = []
    for img in images:
        t0 = time.perf_counter()
        detector([img], timings)
        per_image.append(time.perf_counter() - t0)

    # Pipeline: decoding on its own thread feeding the detector, as `oko analyze` runs.
    module = DetectModule(DetectOptions(model=model), detector=detector)
    per_frame: list[float] = []
    with open_source(source) as src:
        last = time.perf_counter()
        for i, _ in enumerate(run_module(src, module, max_frames=n + WARMUP)):
            now = time.perf_counter()
            if i >= WARMUP:
                per_frame.append(now - last)
            last = now
    m = detector.manifest
    threads = getattr(detector.engine.config, "threads", None)
    return BenchReport(
        model=m.name, engine=detector.engine.describe(),
        threads="all cores" if threads is None else str(threads), frames=n,
        input_size=f"{m.input.width}x{m.input.height}", decode_ms=decode_ms,
        pre_ms=timings["pre"] / n, infer_ms=timings["infer"] / n, post_ms=timings["post"] / n,
        raw_engine_fps=_fps(raw), detector_fps=_fps(per_image), pipeline_fps=_fps(per_frame))


def print_reports(reports: list[BenchReport], console: Console) -> None:
    first = reports[0]
    table = Table(title=f"oko bench: {first.model} ({first.input_size}) on {first.engine}, "
                        f"batch 1, {first.frames} frames, {os.cpu_count()} CPU cores "
                        f"({platform.machine()})")
    table.add_column("measure")
    for r in reports:
        table.add_column(f"engine threads: {r.threads}", justify="right")
    rows = [
        ("decode ms/frame", "decode_ms", "{:.2f}"),
        ("preprocess ms/frame", "pre_ms", "{:.2f}"),
        ("inference ms/frame", "infer_ms", "{:.2f}"),
        ("postprocess ms/frame", "post_ms", "{:.2f}"),
        ("raw engine fps", "raw_engine_fps", "{:.1f}"),
        ("detector fps (pre+infer+post)", "detector_fps", "{:.1f}"),
        ("pipeline fps (decode thread+pre+infer+post)", "pipeline_fps", "{:.1f}"),
        ("detector / raw engine", "detector_ratio", "{:.3f}"),
        ("[bold]pipeline / raw engine[/]", "ratio", "[bold]{:.3f}[/]"),
    ]
    for title, attr, fmt in rows:
        table.add_row(title, *(fmt.format(getattr(r, attr)) for r in reports))
    console.print(table)
