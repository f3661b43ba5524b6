"""Frames per second of the weight-free road analytics at 1280x720 on this CPU.

Frames: the bundled street sample, resized to 1280x720 (the deck's resolution), a road
region covering the lower half. Each analytic is timed end to end as the road module runs
it: shrinking the frame to the analysis width (shared by all three in the module, so it is
counted in each line here and once in "all three"), then the analytic. The deck's own CPU
figures for the same jobs: lighting 26 frames/s, snow 7 frames/s.

    python benchmarks/bench_road.py [--frames 200]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from oko.demo import SAMPLE_VIDEO
from oko.road.lighting import glare, lighting
from oko.road.scene import Scene
from oko.road.snow import SnowEstimator

DECK = {"lighting": 26.0, "snow": 7.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    cap = cv2.VideoCapture(str(SAMPLE_VIDEO))
    frames = []
    while len(frames) < args.frames:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR))
    region = [[0, 360], [1280, 360], [1280, 720], [0, 720]]
    roi = Scene.from_frame(frames[0], region).roi
    snow = SnowEstimator()

    def run_all(img: np.ndarray) -> None:
        scene = Scene.from_frame(img, roi=roi)
        lighting(scene), glare(scene), snow(scene)

    jobs = {
        "lighting": lambda img: lighting(Scene.from_frame(img, roi=roi)),
        "glare": lambda img: glare(Scene.from_frame(img, roi=roi)),
        "snow": lambda img: snow(Scene.from_frame(img, roi=roi)),
        "all three (one shared scene)": run_all,
    }
    print(f"{len(frames)} frames of {SAMPLE_VIDEO.name} at 1280x720, one thread of Python")
    print("| analytic | ms/frame | frames/s | deck's CPU figure | ratio |")
    print("|---|---|---|---|---|")
    for name, job in jobs.items():
        for img in frames[:10]:
            job(img)
        started = time.perf_counter()
        for img in frames:
            job(img)
        dt = (time.perf_counter() - started) / len(frames)
        deck = DECK.get(name)
        ratio = f"{1 / dt / deck:.1f}x" if deck else ""
        print(f"| {name} | {dt * 1000:.2f} | {1 / dt:.0f} | {deck or ''} | {ratio} |")


if __name__ == "__main__":
    main()
