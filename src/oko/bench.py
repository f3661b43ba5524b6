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
from oko.models import Detector, load_detector
from oko.port import fidelity
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


def decode_frames(source: str | Path, n: int) -> tuple[list[np.ndarray], float]:
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
    images, decode_ms = decode_frames(source, frames)
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


@dataclass
class BatchResult:
    batch: int
    pre_ms: float
    infer_ms: float
    post_ms: float
    fps: float


def bench_batches(detector: Detector, images: list[np.ndarray], batches: list[int]
                  ) -> list[BatchResult]:
    """Per-frame stage times and throughput when frames go through in batches."""
    results = []
    for b in batches:
        if detector.max_batch is not None and b > detector.max_batch:
            continue  # a fixed-batch model cannot take it
        chunks = [images[i:i + b] for i in range(0, len(images) - b + 1, b)]
        if not chunks:
            continue
        detector(chunks[0])
        timings: dict[str, float] = {}
        start = time.perf_counter()
        for chunk in chunks:
            detector(chunk, timings)
        n = len(chunks) * b
        seconds = time.perf_counter() - start
        results.append(BatchResult(b, timings["pre"] / n, timings["infer"] / n,
                                   timings["post"] / n, n / seconds))
    return results


def compare_with_original(detector: Detector, images: list[np.ndarray]) -> dict | None:
    """For a model made by `oko port`: speed ratio and fidelity against its FP32 original,
    measured here in the same run (None for models that were not ported)."""
    manifest = detector.manifest
    source = manifest.provenance.get("source")
    if not source or not Path(source).is_file():
        return None
    original = load_detector(manifest.model_copy(update={"file": str(source), "engine": None}),
                             "onnxruntime")
    name = detector.adapter.input.name
    ref_out, cand_out, ref_dets, cand_dets = [], [], [], []
    ref_ms, cand_ms = [], []
    for img in images:
        inputs, geoms = original.adapter.preprocess([img])
        t0 = time.perf_counter()
        r = original.engine.run(inputs)
        t1 = time.perf_counter()
        c = detector.engine.run({name: inputs[original.adapter.input.name]})
        t2 = time.perf_counter()
        c = fidelity.align_outputs(r, c)
        ref_ms.append((t1 - t0) * 1000)
        cand_ms.append((t2 - t1) * 1000)
        ref_out.append(r)
        cand_out.append(c)
        ref_dets.append(original.adapter.postprocess(r, geoms)[0])
        cand_dets.append(original.adapter.postprocess(c, geoms)[0])
    agreement = fidelity.detection_agreement(ref_dets, cand_dets)
    return {
        "original": str(source), "target": manifest.provenance.get("target"),
        "precision": manifest.provenance.get("precision"),
        "original_infer_ms": float(np.median(ref_ms)), "ported_infer_ms": float(np.median(cand_ms)),
        "speed_ratio": float(np.median(ref_ms) / np.median(cand_ms)),
        "detection_agreement": agreement.value, "agreement_details": agreement.details,
        "outputs": [fidelity.as_dict(o) for o in fidelity.compare_outputs(ref_out, cand_out)],
    }


def print_batches(results: list[BatchResult], console: Console, title: str) -> None:
    table = Table(title=title)
    for col in ("batch", "pre ms/frame", "infer ms/frame", "post ms/frame", "frames/s"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(str(r.batch), f"{r.pre_ms:.2f}", f"{r.infer_ms:.2f}", f"{r.post_ms:.2f}",
                      f"{r.fps:.1f}")
    console.print(table)


def print_comparison(cmp: dict, console: Console) -> None:
    table = Table(title=f"ported ({cmp['target']} {cmp['precision']}) vs FP32 original, "
                        "same run, same frames")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("FP32 original infer ms (ONNX Runtime)", f"{cmp['original_infer_ms']:.2f}")
    table.add_row("ported infer ms", f"{cmp['ported_infer_ms']:.2f}")
    table.add_row("[bold]speed ratio (original / ported)[/]", f"[bold]{cmp['speed_ratio']:.2f}x[/]")
    table.add_row("detection agreement (F1 @ IoU 0.5)", f"{cmp['detection_agreement']:.4f}")
    for o in cmp["outputs"]:
        table.add_row(f"output {o['name']} cosine (min)", f"{o['cosine_min']:.5f}")
    console.print(table)
