"""Cross-camera check on one real video: its left and right halves become two cameras.

A fixed camera's frame is cut into two non-overlapping views; each half runs as its own
channel through the runtime with the ``reid`` module (one identity service for both).
People who walk from one half into the other should get the same global id.

Reference identities come from tracking the *full* frame (detector + OC-SORT): there a
person crossing the middle is one continuous track, which is a much easier problem than
matching two separate views. Each half-channel track is mapped to the full-frame track
its best view overlaps most (IoU >= 0.5 after shifting right-half boxes back). Imperfect
reference tracks (identity switches in crowds) make the reported figures noisy, not
optimistic in any particular direction.

Figures: ``crossings`` = reference people seen on both channels; ``matched`` = of those,
how many have a left and a right track sharing a global id; ``false_matches`` =
``person_reidentified`` events joining tracks of two different reference people.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from oko.core.geometry import box_iou

LEFT, RIGHT = "left", "right"


def split_video(src: Path, out_dir: Path, max_frames: int | None = None) -> tuple[Path, Path, int]:
    """Write the left and right halves of ``src`` as two MP4 files; returns their paths and
    the x offset of the right half."""
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise FileNotFoundError(f"{src}: cannot open video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    half = w // 2
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / f"{LEFT}.mp4", out_dir / f"{RIGHT}.mp4"
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
    writers = [cv2.VideoWriter(str(paths[0]), fourcc, fps, (half, h)),
               cv2.VideoWriter(str(paths[1]), fourcc, fps, (w - half, h))]
    n = 0
    while max_frames is None or n < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        writers[0].write(np.ascontiguousarray(frame[:, :half]))
        writers[1].write(np.ascontiguousarray(frame[:, half:]))
        n += 1
    cap.release()
    for wr in writers:
        wr.release()
    return paths[0], paths[1], half


def reference_tracks(src: Path, max_frames: int | None = None, model: str | None = None
                     ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per frame index: full-frame person boxes (n, 4) and their OC-SORT track ids (n,)."""
    from oko.modules import create_module
    from oko.video import open_source, run_module
    from oko.video.runner import track_results

    options: dict[str, Any] = {"classes": ["person"]}
    if model:
        options["model"] = model
    module = create_module("detect", options)
    out = {}
    with open_source(str(src)) as source:
        for r in track_results(run_module(source, module, max_frames=max_frames), module):
            d = r.detections
            keep = d.track_id >= 0 if d.track_id is not None else np.zeros(len(d), bool)
            out[r.frame.index] = (d.xyxy[keep], d.track_id[keep])
    return out


def run_channels(left: Path, right: Path, module_options: dict[str, Any], events_path: Path,
                 timeout_s: float = 1800, max_frames: int | None = None) -> list[dict[str, Any]]:
    """Both halves as two channels of one runtime (one reid worker); the events they sent."""
    from oko.config import parse_config
    from oko.video.runtime import Runtime

    cfg = parse_config({
        "api": {"enabled": False}, "sinks": [{"kind": "jsonl", "path": str(events_path)}],
        "channels": [{"id": cid, "source": str(path), "max_frames": max_frames,
                      "module": {"name": "reid", "options": module_options}}
                     for cid, path in ((LEFT, left), (RIGHT, right))],
    }, "split-eval")
    runtime = Runtime(cfg.engine, cfg.batch, cfg.sinks, node="split-eval")
    try:
        for channel in cfg.channels:
            runtime.add_channel(channel)
        if not runtime.wait(timeout_s=timeout_s):
            raise TimeoutError(f"channels did not finish in {timeout_s} s")
    finally:
        runtime.stop()
    return [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]


@dataclass
class SplitReport:
    tracks: int = 0                     # decided half-channel tracks
    unmapped: int = 0                   # tracks no reference track overlaps
    crossings: int = 0                  # reference people seen on both channels
    matched: int = 0                    # ... of whom a left and a right track share a gid
    reidentified: int = 0               # person_reidentified events
    false_matches: int = 0              # ... joining two different reference people
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def matched_fraction(self) -> float:
        return self.matched / self.crossings if self.crossings else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"tracks": self.tracks, "unmapped": self.unmapped, "crossings": self.crossings,
                "matched": self.matched, "matched_fraction": round(self.matched_fraction, 3),
                "reidentified": self.reidentified, "false_matches": self.false_matches}


def _person_events(events: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from (e for e in events if e["type"] in ("person_appeared", "person_reidentified"))


def score(events: list[dict[str, Any]], reference: dict[int, tuple[np.ndarray, np.ndarray]],
          right_offset: int, min_iou: float = 0.5) -> SplitReport:
    report = SplitReport()
    ref_of: dict[tuple[str, int], int] = {}
    gid_of: dict[tuple[str, int], int] = {}
    for e in _person_events(events):
        ch, data = e["channel_id"], e["data"]
        key = (ch, int(data["track_id"]))
        report.tracks += 1
        gid_of[key] = int(data["global_id"])
        box = np.asarray(data["bbox"], np.float32).reshape(1, 4)
        if ch == RIGHT:
            box = box + np.float32([right_offset, 0, right_offset, 0])
        ref_boxes, ref_ids = reference.get(int(e["frame_index"]), (np.zeros((0, 4)), []))
        if len(ref_boxes):
            ious = box_iou(box, ref_boxes.astype(np.float32))[0]
            best = int(ious.argmax())
            if ious[best] >= min_iou:
                ref_of[key] = int(ref_ids[best])
                continue
        report.unmapped += 1
    by_ref: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for (ch, _tid), ref in ref_of.items():
        by_ref[ref][ch].add(gid_of[(ch, _tid)])
    for ref, chans in by_ref.items():
        if LEFT in chans and RIGHT in chans:
            report.crossings += 1
            ok = bool(chans[LEFT] & chans[RIGHT])
            report.matched += ok
            report.details.append({"reference": ref, "left": sorted(chans[LEFT]),
                                   "right": sorted(chans[RIGHT]), "matched": ok})
    for e in _person_events(events):
        if e["type"] != "person_reidentified":
            continue
        report.reidentified += 1
        a = (e["data"]["from"]["channel"], int(e["data"]["from"]["track_id"]))
        b = (e["data"]["to"]["channel"], int(e["data"]["to"]["track_id"]))
        if a in ref_of and b in ref_of and ref_of[a] != ref_of[b]:
            report.false_matches += 1
    return report
