"""MOTChallenge text files: read detections, write tracks, track a detection file.

Format: one box per line, ``frame,id,x,y,w,h,score[,...]`` with 1-based frames, the
top-left corner and size in pixels, and ``id`` -1 for detections. Tracks are written as
``frame,id,x,y,w,h,1,-1,-1,-1`` (the layout MOTChallenge evaluation expects).
``track_mot_file`` is the library side of ``oko track --det DET.txt --out OUT.txt``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from oko.core.detections import Detections
from oko.core.errors import ConfigError, SourceError
from oko.track import BaseTrackerConfig, create_tracker

log = logging.getLogger(__name__)

_MIN_COLUMNS = 7  # frame, id, x, y, w, h, score


def _parse_line(path: Path, lineno: int, line: str) -> list[float]:
    parts = line.split(",")
    if len(parts) < _MIN_COLUMNS:
        raise SourceError(
            f"{path}:{lineno}: expected at least {_MIN_COLUMNS} comma-separated values "
            f"(frame,id,x,y,w,h,score), got {len(parts)}")
    try:
        values = [float(p) for p in parts[:_MIN_COLUMNS]]
    except ValueError as exc:
        raise SourceError(f"{path}:{lineno}: not a number ({exc})") from exc
    frame, _id, _x, _y, w, h, _score = values
    if not all(math.isfinite(v) for v in values):
        raise SourceError(f"{path}:{lineno}: values must be finite, got {line.strip()!r}")
    if frame < 1 or frame != int(frame):
        raise SourceError(f"{path}:{lineno}: frame must be an integer >= 1, got {parts[0]!r}")
    if w <= 0 or h <= 0:
        raise SourceError(f"{path}:{lineno}: box width and height must be positive, "
                          f"got {w:g} x {h:g}")
    return values


def read_mot(path: str | Path) -> dict[int, Detections]:
    """Boxes of a MOTChallenge file by frame number (frames without boxes are absent).

    Each frame's Detections has ``confidence`` (column 7) and ``track_id`` (column 2,
    -1 in detection files). Raises :class:`SourceError` naming the file, and the line
    for malformed content. Blank lines and lines starting with ``#`` are skipped.
    """
    path = Path(path)
    rows: list[list[float]] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                text = line.strip()
                if text and not text.startswith("#"):
                    rows.append(_parse_line(path, lineno, text))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read MOT file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not a text file ({exc.reason})") from exc
    if not rows:
        return {}
    table = np.asarray(rows)
    table = table[np.argsort(table[:, 0], kind="stable")]
    frames = table[:, 0].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
    out = {}
    for start, end in zip(starts, np.r_[starts[1:], len(table)], strict=True):
        part = table[start:end]
        xyxy = part[:, 2:6].copy()
        xyxy[:, 2:] += xyxy[:, :2]
        out[int(frames[start])] = Detections(xyxy=xyxy, confidence=part[:, 6],
                                             track_id=part[:, 1].astype(np.int64))
    return out


def write_mot_tracks(path: str | Path, frames: Iterable[tuple[int, Detections]]) -> int:
    """Write confirmed tracks (``track_id >= 0``) of ``(frame, dets)`` pairs; rows written."""
    path = Path(path)
    count = 0
    try:
        with path.open("w", encoding="utf-8") as fh:
            for frame, dets in frames:
                if dets.track_id is None or len(dets) == 0:
                    continue
                keep = dets.track_id >= 0
                boxes = dets.xyxy[keep].astype(np.float64)
                for tid, (x1, y1, x2, y2) in zip(dets.track_id[keep].tolist(),
                                                  boxes.tolist(), strict=True):
                    fh.write(f"{frame},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                             "1,-1,-1,-1\n")
                    count += 1
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write tracks ({exc.strerror})") from exc
    return count


def track_mot_file(det_path: str | Path, out_path: str | Path,
                   tracker: str | BaseTrackerConfig | dict[str, Any] = "ocsort",
                   fps: float = 30.0) -> dict[str, Any]:
    """Track a MOTChallenge detection file and write the tracks.

    Frame ``k`` is at ``(k - 1) / fps`` seconds; frames missing from the file are fed
    as empty frames, so lost-track limits see the real time. Returns ``frames`` (the
    last frame number), ``tracks`` (distinct ids written), ``boxes`` (rows written) and
    ``time`` (seconds spent in the tracker).
    """
    if not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    trk = create_tracker(tracker)
    by_frame = read_mot(det_path)
    last = max(by_frame, default=0)
    empty = Detections.empty()
    results: list[tuple[int, Detections]] = []
    spent = 0.0
    for frame in range(1, last + 1):
        dets = by_frame.get(frame, empty)
        start = time.perf_counter()
        out = trk.update(dets, (frame - 1) / fps)
        spent += time.perf_counter() - start
        results.append((frame, out))
    boxes = write_mot_tracks(out_path, results)
    ids = {int(i) for _, d in results for i in d.track_id[d.track_id >= 0]}
    stats = {"frames": last, "tracks": len(ids), "boxes": boxes, "time": spent}
    log.info("tracked %s with %s: %d frames, %d tracks, %d boxes in %.3f s",
             det_path, trk.kind, last, len(ids), boxes, spent)
    return stats
