"""Person ReID: milliseconds per crop, gallery search, and a two-camera split of one video.

Crops (CPU, ONNX Runtime): person boxes that ``nanodet-coco`` finds in the bundled
``src/oko/data/samples/vtest.mp4`` (every 10th frame, boxes at least 32 px high, the
first ``--crops``), cut out with ``oko.reid.crops.crop_box``. Timed per crop, one crop per
call (batch 1) and all crops in one call (batch 16): the silhouette model
(``person-mask-selfie``), the weight-free ``stripes`` embedder and the random-weight ONNX
ReID network ``tests/data/reid/reid-random`` (its cost is that of its architecture, not of a
trained OSNet/ResNet-50: a real model is slower), both embedders given the masks. Median of
``--runs`` after a warm-up.

Search: ``--gallery-size`` random normal 512-d vectors, normalised (float32; uniform on the
sphere, the hardest case for approximate indexes), searched through
``oko.vectors.index.VectorIndex`` -- the code the face gallery and the ReID track store
use -- with top-10, for 1 and 100 queries at once. Comparisons/s = queries x gallery size /
seconds. Queries are stored vectors plus a little noise (cosine ~0.995 to their source), so
each has a true nearest neighbour; the faiss ``binary`` index (if faiss imports) reports
recall@1 against the exact answer, and its comparisons/s are effective ones (gallery size /
time: it does not compare against every vector).

Split (``--split``, default on): ``oko.reid.split_eval`` on one video cut into a left and a
right half run as two channels of the ``reid`` module; reference identities from tracking
the full frame. Four runs: stripes / reid-random, each without and with a camera topology
(left <-> right within -1..4 s). reid-random has random weights: its figures show what an
uninformative embedding plus the topology gets, not what a trained model does.
The reference tracks have identity switches in crowds, so the figures are approximate.

Timings on a small shared machine are noisy (other processes compete for the cores);
compare numbers taken in the same run.

    .venv/bin/python benchmarks/bench_reid.py [--gallery-size 1000000] [--no-split] \\
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "oko" / "data" / "samples" / "vtest.mp4"
OPENCV_VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
REID_RANDOM = str(ROOT / "tests" / "data" / "reid" / "reid-random")
TOPOLOGY = [{"from": "left", "to": "right", "min_s": -1, "max_s": 4}]


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    """Median wall time of ``runs`` calls after one warm-up, in ms."""
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


# --------------------------------------------------------------------------- crops
def person_crops(count: int, min_height: int = 32) -> list[np.ndarray]:
    import cv2

    from oko.models import load_detector
    from oko.reid.crops import crop_box

    detector = load_detector("nanodet-coco")
    person = detector.labels.index("person")
    cap = cv2.VideoCapture(str(SAMPLE))
    crops: list[np.ndarray] = []
    index = 0
    while len(crops) < count:
        ok, frame = cap.read()
        if not ok:
            break
        index += 1
        if index % 10:
            continue
        dets = detector([frame])[0]
        for box, cls in zip(dets.xyxy, dets.class_id, strict=True):
            if cls == person and box[3] - box[1] >= min_height:
                crops.append(np.ascontiguousarray(crop_box(frame, box)))
    cap.release()
    return crops[:count]


def bench_crops(count: int, runs: int, console: Console) -> dict[str, Any]:
    from oko.reid.embed import load_person_embedder
    from oko.reid.silhouette import load_masker

    crops = person_crops(count)
    n = len(crops)
    console.log(f"crops: {n} person crops from {SAMPLE.name}")
    masker = load_masker()
    masks = masker(crops)
    stages: dict[str, Callable[[list[np.ndarray], list[Any]], Any]] = {
        f"silhouette ({masker.name})": lambda c, m: masker(c)}
    for name in ("stripes", REID_RANDOM):
        emb = load_person_embedder(name)
        label = f"embed {emb.name} ({emb.dim}-d)"
        stages[label] = lambda c, m, emb=emb: emb(c, m)
    rows = []
    for label, fn in stages.items():
        one = median_ms(lambda fn=fn: [fn(crops[i:i + 1], masks[i:i + 1]) for i in range(n)],
                        runs) / n
        batch = median_ms(lambda fn=fn: fn(crops, masks), runs) / n
        rows.append({"stage": label, "ms_per_crop_batch1": one, "ms_per_crop_batched": batch})
        console.log(f"  {label}: {one:.2f} ms/crop one at a time, {batch:.2f} batched")
    heights = [c.shape[0] for c in crops]
    widths = [c.shape[1] for c in crops]
    return {"crops": n, "batch": n, "video": SAMPLE.name, "stages": rows,
            "masks_usable": sum(m is not None for m in masks),
            "crop_height_median": float(np.median(heights)),
            "crop_width_median": float(np.median(widths))}


# --------------------------------------------------------------------------- search
def make_gallery(n: int, dim: int, queries: int, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matrix (n, dim) unit rows, queries near ``queries`` random rows, their rows)."""
    rng = np.random.default_rng(seed)
    matrix = np.empty((n, dim), np.float32)
    for first in range(0, n, 100_000):  # bounded temporaries
        part = rng.standard_normal((min(100_000, n - first), dim), dtype=np.float32)
        matrix[first:first + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    rows = rng.choice(n, queries, replace=False)
    noise = rng.standard_normal((queries, dim), dtype=np.float32)
    q = matrix[rows] + 0.1 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    return matrix, q / np.linalg.norm(q, axis=1, keepdims=True), rows


def bench_search(n: int, dim: int, runs: int, console: Console) -> dict[str, Any]:
    from oko.vectors.index import VectorIndex

    t = time.perf_counter()
    matrix, queries, rows = make_gallery(n, dim, 100)
    console.log(f"search: generated {n:,} x {dim} in {time.perf_counter() - t:.1f} s")
    out: dict[str, Any] = {"gallery_size": n, "dim": dim, "top_k": 10, "methods": []}
    exact = VectorIndex(matrix, "exact")
    _, truth = exact.search(queries, 1)
    out["exact_top1_is_source"] = float(np.mean(truth[:, 0] == rows))
    kinds = [("exact", exact, 0.0)]
    try:
        from oko.vectors.faiss_index import import_faiss

        import_faiss()
        t = time.perf_counter()
        kinds.append(("binary", VectorIndex(matrix, "binary"), time.perf_counter() - t))
    except Exception as exc:  # faiss is optional
        console.log(f"search: no binary index ({exc})")
    for name, index, build_s in kinds:
        _, ids = index.search(queries, 1)
        recall = float(np.mean(ids[:, 0] == truth[:, 0]))
        for nq in (1, 100):
            q = queries[:nq]
            ms = median_ms(lambda index=index, q=q: index.search(q, 10), runs)
            out["methods"].append({"method": name, "queries": nq, "ms": ms,
                                   "cmp_per_s": nq * n / ms * 1e3, "recall_at_1": recall,
                                   "build_s": build_s})
            console.log(f"  {name}, {nq} queries: {ms:.1f} ms, recall@1 {recall:.3f}")
    return out


# --------------------------------------------------------------------------- split
def bench_split(video: Path, max_frames: int | None, console: Console) -> dict[str, Any]:
    from oko.reid import split_eval

    configs = [("stripes", None), ("stripes", TOPOLOGY),
               (REID_RANDOM, None), (REID_RANDOM, TOPOLOGY)]
    out: dict[str, Any] = {"video": str(video), "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-reid-") as tmp:
        left, right, offset = split_eval.split_video(video, Path(tmp), max_frames)
        t = time.perf_counter()
        reference = split_eval.reference_tracks(video, max_frames)
        out["frames"] = len(reference)
        out["reference_s"] = time.perf_counter() - t
        console.log(f"split: {video.name}, {len(reference)} frames, reference tracks in "
                    f"{out['reference_s']:.0f} s")
        for i, (embedder, transitions) in enumerate(configs):
            options: dict[str, Any] = {"embedder": embedder}
            if transitions:
                options["transitions"] = transitions
            t = time.perf_counter()
            events = split_eval.run_channels(left, right, options, Path(tmp) / f"events{i}.jsonl")
            report = split_eval.score(events, reference, offset)
            row = {"embedder": Path(embedder).name, "topology": bool(transitions),
                   "seconds": time.perf_counter() - t, **report.to_dict()}
            out["runs"].append(row)
            console.log(f"  {row['embedder']}, topology {row['topology']}: matched "
                        f"{row['matched']}/{row['crossings']}, false {row['false_matches']}/"
                        f"{row['reidentified']} ({row['seconds']:.0f} s)")
    return out


# --------------------------------------------------------------------------- output
def print_tables(report: dict[str, Any], console: Console) -> None:
    if "crops" in report:
        c = report["crops"]
        t = Table(title=f"ReID stages on CPU, ms per crop: {c['crops']} person crops from "
                        f"{c['video']} (median {c['crop_height_median']:.0f}x"
                        f"{c['crop_width_median']:.0f} px; {c['masks_usable']} usable masks)")
        for col in ("stage", "batch 1", f"batch {c['batch']}"):
            t.add_column(col, justify="left" if col == "stage" else "right")
        for r in c["stages"]:
            t.add_row(r["stage"], f"{r['ms_per_crop_batch1']:.2f}",
                      f"{r['ms_per_crop_batched']:.2f}")
        console.print(t)
    if "search" in report:
        s = report["search"]
        t = Table(title=f"search via oko.vectors.index.VectorIndex (the face gallery's code): "
                        f"{s['gallery_size']:,} x {s['dim']}-d random unit vectors, top-"
                        f"{s['top_k']}")
        for col in ("index", "queries", "ms", "M comparisons/s", "recall@1 (100 q)", "build s"):
            t.add_column(col, justify="left" if col == "index" else "right")
        for m in s["methods"]:
            star = "*" if m["method"] != "exact" else ""
            t.add_row(m["method"], str(m["queries"]), f"{m['ms']:.1f}",
                      f"{m['cmp_per_s'] / 1e6:,.0f}{star}", f"{m['recall_at_1']:.3f}",
                      f"{m['build_s']:.1f}")
        console.print(t)
        console.print(f"* effective (queries x gallery size / time). Exact top-1 is the query's "
                      f"source vector for {s['exact_top1_is_source']:.0%} of queries.")
    if "split" in report:
        s = report["split"]
        t = Table(title=f"cross-camera split of {Path(s['video']).name} ({s['frames']} frames): "
                        "left and right halves as two channels")
        for col in ("embedder", "topology", "matched", "false matches", "tracks", "unmapped",
                    "s"):
            t.add_column(col, justify="left" if col == "embedder" else "right")
        for r in s["runs"]:
            t.add_row(r["embedder"], "left<->right -1..4 s" if r["topology"] else "none",
                      f"{r['matched']}/{r['crossings']} ({r['matched_fraction']:.0%})",
                      f"{r['false_matches']}/{r['reidentified']}", str(r["tracks"]),
                      str(r["unmapped"]), f"{r['seconds']:.0f}")
        console.print(t)
        console.print("matched: reference people seen on both halves whose left and right "
                      "tracks share a global id; false matches: person_reidentified events "
                      "joining two different reference people / all such events.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed repetitions (median)")
    parser.add_argument("--crops", type=int, default=16, help="person crops (the batch size)")
    parser.add_argument("--gallery-size", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--split", action=argparse.BooleanOptionalAction, default=True,
                        help="run the cross-camera split evaluation (slow: minutes)")
    parser.add_argument("--video", type=Path, default=None,
                        help=f"split video (default {OPENCV_VTEST} if present, else the sample)")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--json", help="write all numbers here")
    args = parser.parse_args()
    console = Console(width=150)
    report: dict[str, Any] = {"runs": args.runs}
    report["crops"] = bench_crops(args.crops, args.runs, console)
    report["search"] = bench_search(args.gallery_size, args.dim, args.runs, console)
    if args.split:
        video = args.video or (OPENCV_VTEST if OPENCV_VTEST.exists() else SAMPLE)
        report["split"] = bench_split(video, args.max_frames, console)
    print_tables(report, console)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
