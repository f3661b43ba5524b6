"""`oko bench`: where the time goes for one detector, and how close the pipeline gets to
the raw engine.

Reported per frame at batch 1: decode, preprocess, inference and postprocess ms; the
end-to-end pipeline fps (decode on its own thread, as in `oko analyze`); the raw engine
fps (the same preprocessed tensor run back to back); and their ratio. Ratios are taken in
one run on one machine, so they compare; absolute numbers vary between machines.
"""

from __future__ import annotations

import itertools
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
    frames: int
    input_size: str
    decode_ms: float
    pre_ms: float
    infer_ms: float
    post_ms: float
    raw_engine_fps: float
    pipeline_fps: float

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


def _median_fps(seconds: list[float]) -> float:
    return 1.0 / float(np.median(seconds))


def bench_detector(model: str, engine: EngineConfig | str | dict, source: str | Path,
                   frames: int = 100) -> BenchReport:
    detector = load_detector(model, engine)
    images, decode_ms = _decode_frames(source, frames)

    # Stage times through the detector at batch 1 (after warm-up).
    for img in images[:WARMUP]:
        detector([img])
    timings: dict[str, float] = {}
    for img in images:
        detector([img], timings)
    n = len(images)

    # Raw engine: one preprocessed tensor, run back to back.
    inputs, _ = detector.adapter.preprocess(images[:1])
    raw: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        detector.engine.run(inputs)
        raw.append(time.perf_counter() - t0)

    # Pipeline: decode thread + pre + infer + post, wall clock per frame.
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
    return BenchReport(
        model=m.name, engine=detector.engine.describe(), frames=n,
        input_size=f"{m.input.width}x{m.input.height}", decode_ms=decode_ms,
        pre_ms=timings["pre"] / n, infer_ms=timings["infer"] / n, post_ms=timings["post"] / n,
        raw_engine_fps=_median_fps(raw), pipeline_fps=_median_fps(per_frame))


def print_report(r: BenchReport, console: Console) -> None:
    table = Table(title=f"oko bench: {r.model} ({r.input_size}) on {r.engine}, batch 1, "
                        f"{r.frames} frames, {platform.processor() or platform.machine()}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("decode ms/frame (own thread in the pipeline)", f"{r.decode_ms:.2f}")
    table.add_row("preprocess ms/frame", f"{r.pre_ms:.2f}")
    table.add_row("inference ms/frame", f"{r.infer_ms:.2f}")
    table.add_row("postprocess ms/frame", f"{r.post_ms:.2f}")
    table.add_row("raw engine fps", f"{r.raw_engine_fps:.1f}")
    table.add_row("pipeline fps (decode+pre+infer+post)", f"{r.pipeline_fps:.1f}")
    table.add_row("[bold]pipeline / raw engine[/]", f"[bold]{r.ratio:.3f}[/]")
    console.print(table)
