"""Stage 2 of `oko port`: calibration and validation images from a folder or a video,
turned into input tensors with the model's own preprocessing."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from oko.core.errors import ConfigError, OkoError
from oko.core.geometry import Letterbox
from oko.models.manifest import InputSpec
from oko.models.preprocess import InputPreprocessor
from oko.video.sources import IMAGE_SUFFIXES, open_source


def sample_images(source: Path, count: int) -> tuple[list[np.ndarray], list[str]]:
    """Up to ``count`` BGR images, evenly spread over a folder's images or a video's frames.

    Returns the images and a name for each (file name or ``video#frame``).
    """
    source = Path(source)
    if not source.exists():
        raise ConfigError(f"calibration data {source}: no such file or folder")
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"calibration data {source}: folder has no images")
        picks = np.unique(np.linspace(0, len(files) - 1, min(count, len(files))).round().astype(int))
        images, names = [], []
        for i in picks.tolist():
            try:
                (frame,) = list(open_source(files[i]))
            except OkoError:
                continue  # an unreadable file among many is skipped
            images.append(frame.image)
            names.append(files[i].name)
        if not images:
            raise ConfigError(f"calibration data {source}: none of its images could be read")
        return images, names
    try:
        src = open_source(source)
    except OkoError as exc:
        raise ConfigError(f"calibration data {exc}") from exc
    with src:
        total = src.frame_count or count
        picks = set(np.linspace(0, max(total - 1, 0), count).round().astype(int).tolist())
        images, names = [], []
        for frame in itertools.islice(src, max(picks) + 1):
            if frame.index in picks:
                images.append(frame.image)
                names.append(f"{source.name}#{frame.index}")
    if not images:
        raise ConfigError(f"calibration data {source}: no frames could be decoded")
    return images, names


def make_tensors(images: list[np.ndarray], spec: InputSpec) -> tuple[np.ndarray, list[Letterbox]]:
    """The batch the model sees for these images (N, ...), and each image's geometry."""
    return InputPreprocessor(spec)(images)


def split(n: int, val_fraction: float = 0.25, min_val: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Indices for calibration and held-out validation, interleaved over the source."""
    n_val = max(min_val, int(round(n * val_fraction))) if n > min_val else max(n // 2, 1)
    val = np.unique(np.linspace(0, n - 1, n_val).round().astype(int))
    calib = np.setdiff1d(np.arange(n), val)
    return (calib if len(calib) else val), val
