"""Runtime throughput: aggregate fps of 1, 4 and 8 file channels through detection +
OC-SORT tracking + a counting line, with cross-channel batching on and off.

    .venv/bin/python benchmarks/bench_runtime.py [--frames 60] [--model nanodet-coco]

Every channel decodes its own copy of the bundled sample on its own thread; all share one
model. Ratios (batched / unbatched) are taken in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import os
import time

from rich.console import Console
from rich.table import Table

from oko.config import parse_config
from oko.demo import DEMO_LINE, SAMPLE_VIDEO
from oko.video.runtime import Runtime


def run_once(channels: int, batch: int, frames: int, model: str) -> tuple[float, float]:
    cfg = parse_config({
        "api": {"enabled": False},
        "batch": {"max_size": batch, "max_wait_ms": 10.0 if batch > 1 else 0.0},
        "channels": [{"id": f"c{i}", "source": str(SAMPLE_VIDEO), "max_frames": frames,
                      "detect": {"model": model}, "lines": [DEMO_LINE]}
                     for i in range(channels)],
    }, "bench")
    runtime = Runtime(cfg.engine, cfg.batch, cfg.sinks)
    runtime._worker_for(cfg.channels[0].detect)  # load (and warm up) before the clock starts
    start = time.perf_counter()
    try:
        for ch in cfg.channels:
            runtime.add_channel(ch)
        runtime.wait()
        seconds = time.perf_counter() - start
        snap = runtime.snapshot()
    finally:
        runtime.stop()
    processed = sum(c["frames_processed"] for c in snap["channels"])
    return processed / seconds, snap["inference"][0]["mean_batch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per channel")
    parser.add_argument("--model", default="nanodet-coco")
    parser.add_argument("--channels", default="1,4,8")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    table = Table(title=f"oko runtime: {args.model}, detection + OC-SORT + line, "
                        f"{args.frames} frames/channel, {os.cpu_count()} CPU cores")
    for col in ("channels", "unbatched fps", f"batched (<= {args.batch}) fps", "mean batch",
                "batched / unbatched"):
        table.add_column(col, justify="right")
    for n in (int(c) for c in args.channels.split(",")):
        single, _ = run_once(n, 1, args.frames, args.model)
        batched, mean_batch = run_once(n, args.batch, args.frames, args.model)
        table.add_row(str(n), f"{single:.1f}", f"{batched:.1f}", f"{mean_batch:.2f}",
                      f"{batched / single:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
