"""Tracker-only speed: oko's OC-SORT and ByteTrack against roboflow `trackers`.

Every tracker gets the same synthetic sequence (tests/mot_synth.py, about 20 objects and
18 detections per frame), with its input detections built before the clock starts, so
the numbers are the trackers' own per-frame cost. Each tracker runs the whole sequence
``--repeats`` times from a reset state; the best run counts (least disturbed by other
processes). Ratios are measured in the same run, so they travel between machines better
than the absolute frames per second.

    .venv/bin/python benchmarks/bench_trackers.py [--frames 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mot_synth import SynthConfig, make_sequence

from oko.core import Detections
from oko.track import create_tracker


def _best_time(run: Callable[[], None], repeats: int) -> float:
    run()  # warm-up: imports, caches, first allocations
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _oko(kind: str, frames: list[Detections], fps: float) -> Callable[[], None]:
    tracker = create_tracker(kind)
    times = [i / fps for i in range(len(frames))]

    def run() -> None:
        tracker.reset()
        update = tracker.update
        for dets, t in zip(frames, times, strict=True):
            update(dets, t)
    return run


def _reference(name: str, frames: list[Any]) -> Callable[[], None]:
    import trackers
    tracker = getattr(trackers, name)()

    def run() -> None:
        tracker.reset()
        update = tracker.update
        for dets in frames:
            update(dets)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-reference", action="store_true",
                        help="time oko's trackers only (no `trackers` package needed)")
    args = parser.parse_args()

    seq = make_sequence(args.seed, SynthConfig(frames=args.frames))
    per_frame = seq.frame_dets()
    oko_frames = [Detections(xyxy=b, confidence=s, class_id=np.zeros(len(s), np.int32))
                  for b, s in per_frame]
    n_dets = np.mean([len(s) for _, s in per_frame])
    n_gt = len(seq.gt) / seq.frames
    print(f"sequence: {seq.frames} frames, {n_gt:.1f} objects and {n_dets:.1f} detections "
          f"per frame (seed {args.seed}); best of {args.repeats} runs\n")

    runs: dict[str, Callable[[], None]] = {
        "oko OC-SORT": _oko("ocsort", oko_frames, seq.config.fps),
        "oko ByteTrack": _oko("bytetrack", oko_frames, seq.config.fps),
    }
    if not args.no_reference:
        import supervision as sv
        sv_frames = [sv.Detections(xyxy=b, confidence=s, class_id=np.zeros(len(s), int))
                     for b, s in per_frame]
        for label, name in (("trackers OC-SORT", "OCSORTTracker"),
                            ("trackers ByteTrack", "ByteTrackTracker"),
                            ("trackers SORT", "SORTTracker")):
            runs[label] = _reference(name, sv_frames)

    fps: dict[str, float] = {}
    print(f"{'tracker':<20} {'frames/s':>10} {'ms/frame':>9}")
    for label, run in runs.items():
        seconds = _best_time(run, args.repeats)
        fps[label] = seq.frames / seconds
        print(f"{label:<20} {fps[label]:>10,.0f} {1000 * seconds / seq.frames:>9.3f}")

    if not args.no_reference:
        print()
        for algo in ("OC-SORT", "ByteTrack"):
            ratio = fps[f"oko {algo}"] / fps[f"trackers {algo}"]
            print(f"oko / trackers {algo:<10} {ratio:6.1f}x")
        ratio = fps["oko OC-SORT"] / fps["trackers SORT"]
        print(f"oko OC-SORT / trackers SORT {ratio:4.1f}x")


if __name__ == "__main__":
    main()
