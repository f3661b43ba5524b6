"""Road cleanup: an image of the scene with moving and parked traffic removed.

Each sampled frame goes through a COCO detector; the boxes (or instance masks, for a
segmentation model) of the chosen classes, dilated by a margin for shadows and box
inaccuracy, are masked out. The background is the per-pixel temporal median of the
*unmasked* samples only, so a spot that traffic covers in most frames (dense traffic, a
parked car) still gets the road surface from the few frames where it was free; a plain
temporal median would keep a ghost of whatever covered it more than half the time. Pixels
with fewer than ``min_samples`` free samples (covered in every frame) are filled from their
surroundings with ``cv2.inpaint`` (Telea) and reported.

Median, not a histogram mode: exact on few samples (a spot free in 10 of 150 frames), no
256-bin histogram per pixel and channel (a 1080p histogram is 3 GiB in uint16). Samples
are kept as a list of frames plus validity masks, at most ``max_samples`` of them (when a
stream of unknown length overflows that, every other sample is dropped and the stride
doubles), and the median is taken in row tiles: masked samples are replaced by a
sentinel above 255, each tile is sorted along time, and the middle of the ``n`` valid
samples is picked per pixel, so memory beyond the samples is bounded by the tile size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from oko.core.errors import ConfigError, SourceError

DEFAULT_CLASSES = ("car", "truck", "bus", "motorcycle", "bicycle", "person")
TARGET_SAMPLES = 150  # default stride aims at about this many sampled frames
MAX_SAMPLES = 200
_SENTINEL = 256  # above any uint8 value: masked samples sort last
_TILE_ELEMENTS = 1 << 24  # per median tile: samples x rows x width x channels


class DetectorLike(Protocol):
    labels: Sequence[str]

    def __call__(self, images: Sequence[np.ndarray]) -> list[Any]: ...


@dataclass
class CleanResult:
    """The cleaned BGR image and how well each pixel was observed.

    Attributes:
        image: uint8 (H, W, 3) background with the objects removed.
        never_seen_fraction: share of pixels with fewer than ``min_samples`` free samples,
            filled by inpainting.
        frames_used: sampled frames that contribute (after any decimation).
        coverage_count: int32 (H, W) free (unmasked) samples per pixel.
        frames_read: frames read from the input.
        stride: final sampling stride in frames read.
        objects_masked: detections masked over the kept samples.
    """

    image: np.ndarray
    never_seen_fraction: float
    frames_used: int
    coverage_count: np.ndarray
    frames_read: int = 0
    stride: int = 1
    objects_masked: int = 0


def resolve_classes(labels: Sequence[str], classes: Iterable[str]) -> list[int]:
    """Class ids of ``classes`` in the detector's labels; ConfigError naming any unknown one."""
    names = [c.strip() for c in classes if c.strip()]
    if not names:
        raise ConfigError("no classes to remove", "give e.g. --classes car,truck,bus,person")
    index = {label: i for i, label in enumerate(labels)}
    bad = [c for c in names if c not in index]
    if bad:
        raise ConfigError(f"unknown class {', '.join(repr(b) for b in bad)} for this detector",
                          f"choose from: {', '.join(labels)}")
    return sorted({index[c] for c in names})


def default_stride(frame_count: int | None, max_frames: int | None = None,
                   target: int = TARGET_SAMPLES) -> int:
    """Stride giving about ``target`` samples of the frames that will be read (1 if unknown)."""
    counts = [n for n in (frame_count, max_frames) if n]
    if not counts:
        return 1
    return max(1, math.ceil(min(counts) / target))


def object_mask(dets: Any, class_ids: Sequence[int], shape: tuple[int, int],
                margin: float = 0.15, min_margin: int = 4) -> tuple[np.ndarray, int]:
    """Bool (H, W) mask of the chosen objects, each grown by ``margin`` of its size.

    Boxes are grown by ``margin`` x width/height (at least ``min_margin`` px) on every side,
    and twice that downwards, where shadows fall under a camera that looks down the road.
    An instance mask, when the model gives one, is dilated by the same margin instead.
    """
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    xyxy = np.asarray(dets.xyxy, np.float32).reshape(-1, 4)
    if len(xyxy) == 0:
        return mask.astype(bool), 0
    cls = dets.class_id
    keep = np.isin(cls, class_ids) if cls is not None else np.ones(len(xyxy), bool)
    inst = getattr(dets, "mask", None)
    for i in np.flatnonzero(keep):
        x1, y1, x2, y2 = xyxy[i]
        mx = max(min_margin, margin * (x2 - x1))
        my = max(min_margin, margin * (y2 - y1))
        if inst is not None:
            k = 2 * int(math.ceil(max(mx, my))) + 1
            grown = cv2.dilate(inst[i].astype(np.uint8), np.ones((k, k), np.uint8))
            mask |= grown
            continue
        c1, r1 = max(0, int(math.floor(x1 - mx))), max(0, int(math.floor(y1 - my)))
        c2, r2 = min(w, int(math.ceil(x2 + mx))), min(h, int(math.ceil(y2 + 2 * my)))
        mask[r1:r2, c1:c2] = 1
    return mask.astype(bool), int(keep.sum())


def masked_median(frames: Sequence[np.ndarray], valid: Sequence[np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median of the valid samples: (uint8 (H, W, C) median, int32 (H, W) count).

    Pixels with no valid sample get 0 (the caller inpaints them). Even counts take the
    rounded mean of the two middle values.
    """
    k = len(frames)
    h, w = frames[0].shape[:2]
    c = frames[0].shape[2] if frames[0].ndim == 3 else 1
    out = np.zeros((h, w, c), np.uint8)
    count = np.zeros((h, w), np.int32)
    rows = max(1, _TILE_ELEMENTS // max(1, k * w * c))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        tile = np.stack([f[r0:r1].reshape(r1 - r0, w, c) for f in frames], axis=-1)
        ok = np.stack([v[r0:r1] for v in valid], axis=-1)  # (h, w, k)
        x = tile.astype(np.uint16)  # (h, w, c, k): time last, contiguous for the sort
        x[np.broadcast_to(~ok[:, :, None, :], x.shape)] = _SENTINEL
        x.sort(axis=-1)
        n = ok.sum(axis=-1, dtype=np.int32)
        lo = np.clip((n - 1) // 2, 0, k - 1)[:, :, None, None]
        hi = np.clip(n // 2, 0, k - 1)[:, :, None, None]
        lo = np.broadcast_to(lo, (*x.shape[:3], 1))
        hi = np.broadcast_to(hi, (*x.shape[:3], 1))
        a = np.take_along_axis(x, lo, axis=-1)[..., 0]
        b = np.take_along_axis(x, hi, axis=-1)[..., 0]
        med = (a + b + 1) // 2
        med[n == 0] = 0
        out[r0:r1] = med.astype(np.uint8)
        count[r0:r1] = n
    return (out if frames[0].ndim == 3 else out[..., 0]), count


def clean_background(frames_iter: Iterable[np.ndarray], detector: DetectorLike,
                     classes: Iterable[str] = DEFAULT_CLASSES, *, stride: int | None = None,
                     frame_count: int | None = None, max_frames: int | None = None,
                     max_samples: int = MAX_SAMPLES, margin: float = 0.15,
                     min_samples: int = 1, batch: int = 8, inpaint_radius: float = 5.0,
                     progress: Callable[[int], None] | None = None) -> CleanResult:
    """Background of ``frames_iter`` (BGR uint8 images) with ``classes`` removed.

    Args:
        frames_iter: frames in order; read until exhausted or ``max_frames``.
        detector: ``detector(list_of_bgr) -> list[Detections]`` with ``.labels``.
        classes: label names to remove (ConfigError naming any the detector lacks).
        stride: use every ``stride``-th frame; None picks one for about 150 samples from
            ``frame_count``/``max_frames`` (1 when both are unknown).
        max_samples: samples kept at most; beyond it every other one is dropped and the
            stride doubles (memory is about max_samples x H x W x 4 bytes).
        margin: boxes grow by this fraction of their size (twice that downwards).
        min_samples: pixels with fewer free samples are inpainted (1: only never-seen ones).
        progress: called with the number of frames read after each detector batch.
    """
    class_ids = resolve_classes(detector.labels, classes)
    if stride is None:
        stride = default_stride(frame_count, max_frames)
    if stride < 1 or max_samples < 2 or min_samples < 1:
        raise ConfigError("stride and min_samples must be >= 1, max_samples >= 2")
    samples: list[np.ndarray] = []
    valid: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    shape: tuple[int, ...] | None = None
    read = masked = 0

    def flush() -> None:
        nonlocal masked
        if not pending:
            return
        for image, dets in zip(pending, detector(pending), strict=True):
            m, n = object_mask(dets, class_ids, image.shape[:2], margin)
            masked += n
            samples.append(image)
            valid.append(~m)
        pending.clear()
        if progress is not None:
            progress(read)

    for image in frames_iter:
        if max_frames is not None and read >= max_frames:
            break
        index = read
        read += 1
        if index % stride:
            continue
        if shape is None:
            shape = image.shape
        elif image.shape != shape:
            raise SourceError(f"frame {index} is {image.shape[1]}x{image.shape[0]}, "
                              f"earlier frames {shape[1]}x{shape[0]}: size changed mid-video")
        pending.append(image)
        if len(pending) >= batch:
            flush()
        if len(samples) + len(pending) > max_samples:
            flush()
            del samples[1::2], valid[1::2]
            stride *= 2
    flush()
    if not samples:
        raise SourceError("no frames to clean")
    background, count = masked_median(samples, valid)
    holes = count < min_samples
    if holes.any():
        background = cv2.inpaint(background, holes.astype(np.uint8), inpaint_radius,
                                 cv2.INPAINT_TELEA)
    return CleanResult(image=background, never_seen_fraction=float(holes.mean()),
                       frames_used=len(samples), coverage_count=count, frames_read=read,
                       stride=stride, objects_masked=masked)


def plain_median(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel temporal median of all frames, no masking (the baseline with ghosts)."""
    return masked_median(frames, [np.ones(f.shape[:2], bool) for f in frames])[0]
