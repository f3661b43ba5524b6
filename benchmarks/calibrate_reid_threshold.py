"""Within-camera calibration of a ReID match threshold, with no identity labels.

On one fixed camera the tracker gives identities for free: the views of one track from
the first third of its life and from the last third are the same person seen at other
moments (other pose, other place in the frame), views of two tracks are (mostly)
different people. Each third's best views (box quality >= 0.35, >= 32 px high, up to four)
are cut out with the silhouette model and averaged into one embedding, as the reid module
does per track. For a few thresholds it prints the share of same-track pairs accepted and
of different-track pairs accepted (false). The reid module's default for the stripe
baseline, 0.80, was chosen from this on the bundled sample (61 % same / 8.8 % different
accepted, 18 tracks); it was not tuned on the cross-camera split evaluation.

    python benchmarks/calibrate_reid_threshold.py [VIDEO] [--embedder stripes|PATH]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import cv2
import numpy as np

from oko.demo import SAMPLE_VIDEO
from oko.reid.crops import box_quality, crop_box
from oko.reid.embed import load_person_embedder
from oko.reid.silhouette import load_masker
from oko.reid.split_eval import reference_tracks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(SAMPLE_VIDEO))
    parser.add_argument("--embedder", default="stripes")
    args = parser.parse_args()
    ref = reference_tracks(args.video)
    cap = cv2.VideoCapture(args.video)
    frames, views = {}, defaultdict(list)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames[len(frames)] = frame
    for fi, (boxes, ids) in ref.items():
        if fi not in frames:
            continue
        h, w = frames[fi].shape[:2]
        for b, t, q in zip(boxes, ids, box_quality(boxes, w, h), strict=True):
            if q >= 0.35 and b[3] - b[1] >= 32:
                views[int(t)].append((fi, b))
    masker, embedder = load_masker(), load_person_embedder(args.embedder)

    def describe(sel: list) -> np.ndarray:
        sel = sel[:: max(1, len(sel) // 4)][:4]
        crops = [crop_box(frames[fi], b) for fi, b in sel]
        v = embedder(crops, masker(crops)).mean(axis=0)
        return v / np.linalg.norm(v)

    early, late = [], []
    for vs in views.values():
        if len(vs) >= 20:
            third = len(vs) // 3
            early.append(describe(vs[:third]))
            late.append(describe(vs[-third:]))
    sims = np.stack(early) @ np.stack(late).T
    same, diff = np.diag(sims), sims[~np.eye(len(sims), dtype=bool)]
    print(f"{args.embedder} on {args.video}: {len(sims)} tracks")
    print("| threshold | same track accepted | different tracks accepted |")
    print("|---|---|---|")
    for thr in (0.5, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        print(f"| {thr:.2f} | {np.mean(same >= thr):.2f} | {np.mean(diff >= thr):.3f} |")


if __name__ == "__main__":
    main()
