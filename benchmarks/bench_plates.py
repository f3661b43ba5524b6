"""Plate reading speed on CPU, per stage: detect, rectify, read (and vehicle search).

Runs the ``plates`` module's pipeline over real photos (the Russian set in
../shared/data/plates-ru when present, else tests/data/plates) one image at a time, as a
camera channel would, after a warm-up pass. Reports ms per image for every stage, ms per
plate for rectify and read, plates read per second (end to end), and, when the photos have
labels, the exact-read rate. Each configuration runs ``--repeats`` times; the fastest
repeat counts (least disturbed by other processes). Absolute times vary between
machines; compare configurations measured in the same run.

    .venv/bin/python benchmarks/bench_plates.py [--images DIR] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from oko.core.frame import Frame
from oko.modules import create_module

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIRS = [ROOT.parent / "shared" / "data" / "plates-ru", ROOT / "tests" / "data" / "plates"]
CONFIGS = {
    "frame": {"search": "frame"},
    "frame+vehicles": {"search": "both"},
}
STAGES = ("vehicles", "detect", "rectify", "read")


def load_images(folder: Path) -> tuple[list[tuple[str, object]], dict[str, list[str]]]:
    names = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    images = [(p.name, cv2.imread(str(p))) for p in names]
    labels: dict[str, list[str]] = {}
    if (folder / "labels.json").is_file():
        for entry in json.loads((folder / "labels.json").read_text(encoding="utf-8")):
            labels[entry["file"]] = [p["text"] for p in entry["plates"] if p["text"]]
    return [(n, im) for n, im in images if im is not None], labels


def run_config(options: dict, images, labels, repeats: int, progress: Progress, task) -> dict:
    module = create_module("plates", options)
    module.process([Frame(images[0][1], "bench", 0, 0.0)])        # warm-up
    best: dict | None = None
    for _ in range(repeats):
        timings: dict[str, float] = {}
        plates = readable = exact = 0
        start = time.perf_counter()
        for i, (name, image) in enumerate(images):
            frame = Frame(image, "bench", i, 0.0)
            dets = module.process([frame])[0]
            for stage, ms in frame.timings.items():
                timings[stage] = timings.get(stage, 0.0) + ms
            plates += len(dets)
            readable += int(dets.data["readable"].sum()) if len(dets) else 0
            if name in labels:
                exact += sum(t in list(dets.data["text"]) for t in labels[name])
            progress.advance(task)
        wall = time.perf_counter() - start
        if best is None or wall < best["wall_s"]:
            best = {"wall_s": wall, "timings": timings, "plates": plates, "readable": readable,
                    "exact": exact}
    n = len(images)
    t = best["timings"]
    return {
        "images": n, "plates": best["plates"], "readable": best["readable"],
        "ms_per_image": {s: round(t.get(s, 0.0) / n, 2) for s in STAGES},
        "ms_per_plate": {s: round(t.get(s, 0.0) / max(best["plates"], 1), 2)
                         for s in ("rectify", "read")},
        "total_ms_per_image": round(best["wall_s"] * 1000 / n, 2),
        "plates_per_s": round(best["readable"] / best["wall_s"], 2),
        "exact": best["exact"] if labels else None,
        "labelled": sum(len(v) for v in labels.values()) if labels else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, help="folder of photos (labels.json optional)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    folder = args.images or next((d for d in DEFAULT_DIRS if d.is_dir()), None)
    if folder is None:
        sys.exit("no photos: pass --images DIR")
    images, labels = load_images(folder)
    results = {}
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        for name, options in CONFIGS.items():
            task = progress.add_task(name, total=len(images) * args.repeats)
            results[name] = run_config(options, images, labels, args.repeats, progress, task)
    report = {"folder": str(folder), "images": len(images), "configs": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"plates on {len(images)} photos from {folder.name} (CPU, ms per "
                        f"image unless noted, best of {args.repeats})")
    for col in ("search", "vehicles ms", "detect ms", "rectify ms", "read ms", "total ms",
                "rectify ms/plate", "read ms/plate", "plates/s", "exact"):
        table.add_column(col, justify="right")
    for name, r in results.items():
        m, p = r["ms_per_image"], r["ms_per_plate"]
        exact = f"{r['exact']}/{r['labelled']}" if r["labelled"] else "-"
        table.add_row(name, f"{m['vehicles']:.1f}", f"{m['detect']:.1f}", f"{m['rectify']:.2f}",
                      f"{m['read']:.1f}", f"{r['total_ms_per_image']:.1f}", f"{p['rectify']:.2f}",
                      f"{p['read']:.1f}", f"{r['plates_per_s']:.1f}", exact)
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
