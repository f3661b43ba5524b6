"""Datasets in the Market-1501 layout: ``query/`` and ``bounding_box_test/`` folders of
JPEGs named ``PPPP_cCsS_FFFFFF_NN.jpg``.

``PPPP`` is the person id (``0000`` = distractor, ``-1`` = junk detection), ``C`` the
camera, ``S`` the sequence, ``FFFFFF`` the frame and ``NN`` the box index in that frame.
Files that are not ``.jpg`` (``Thumbs.db`` ships with the benchmark) are ignored; a
``.jpg`` with any other name is an error naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oko.core.errors import ConfigError, SourceError

QUERY_DIR = "query"
GALLERY_DIR = "bounding_box_test"
NAME_RE = re.compile(r"^(-1|\d{4})_c(\d+)s(\d+)_(\d{6})_(\d{2})\.jpg$", re.IGNORECASE)
NAME_FORMAT = "PPPP_cCsS_FFFFFF_NN.jpg (e.g. 0002_c1s1_000451_03.jpg)"


@dataclass(frozen=True)
class MarketImage:
    path: Path
    pid: int  # -1 junk, 0 distractor
    camid: int
    seq: int
    frame: int
    box: int


@dataclass(frozen=True)
class MarketSplit:
    """One folder: images sorted by file name, plus their ids and cameras as arrays."""

    folder: Path
    images: tuple[MarketImage, ...]

    @property
    def pids(self) -> np.ndarray:
        return np.array([im.pid for im in self.images], dtype=np.int64)

    @property
    def camids(self) -> np.ndarray:
        return np.array([im.camid for im in self.images], dtype=np.int64)

    @property
    def paths(self) -> list[Path]:
        return [im.path for im in self.images]

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class MarketDataset:
    root: Path
    query: MarketSplit
    gallery: MarketSplit


def parse_name(path: Path | str) -> MarketImage:
    """Fields of one Market-1501 file name; ConfigError naming the file if it is not one."""
    path = Path(path)
    m = NAME_RE.match(path.name)
    if m is None:
        raise ConfigError(f"{path}: not a Market-1501 file name", f"expected {NAME_FORMAT}")
    pid, cam, seq, frame, box = (int(g) for g in m.groups())
    if cam < 1:
        raise ConfigError(f"{path}: camera number must be >= 1", f"expected {NAME_FORMAT}")
    return MarketImage(path, pid, cam, seq, frame, box)


def read_split(folder: Path | str) -> MarketSplit:
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder}: folder not found",
                          f"a Market-1501 dataset has {QUERY_DIR}/ and {GALLERY_DIR}/")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg" and p.is_file())
    if not files:
        raise SourceError(f"{folder}: no .jpg images")
    return MarketSplit(folder, tuple(parse_name(p) for p in files))


def read_market(root: Path | str) -> MarketDataset:
    """Parse ``root/query`` and ``root/bounding_box_test`` (names only; no pixels read)."""
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"{root}: dataset folder not found")
    query = read_split(root / QUERY_DIR)
    gallery = read_split(root / GALLERY_DIR)
    return MarketDataset(root, query, gallery)


def load_images(paths: list[Path]) -> list[np.ndarray]:
    """BGR uint8 images; SourceError naming the first file that cannot be decoded."""
    import cv2

    out = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None or img.size == 0:
            raise SourceError(f"{p}: cannot read image")
        out.append(img)
    return out
