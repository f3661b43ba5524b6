"""From image files to gallery-ready embeddings: one face per photo, the largest.

Used by ``oko faces enroll`` (and ``search``/``eval``, which need the same per-image
result). A photo with no face, or whose largest face is below the quality bar, is reported
with the reason instead of being enrolled: a bad reference embedding would mismatch later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oko.core.errors import OkoError, SourceError
from oko.faces.pipeline import FacePipeline, FaceResult, read_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageFace:
    """The face chosen in one image, or why there is none (``status`` != 'ok')."""

    path: Path
    sha256: str
    status: str                 # ok | no face | low quality | unreadable
    faces: int = 0
    quality: float = 0.0
    embedding: np.ndarray | None = None
    detail: str = ""


def images_in(paths: Iterable[Path]) -> list[Path]:
    """Image files named directly, or found (sorted) in named folders. Missing paths fail."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir()
                              if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            out.append(path)
        else:
            raise SourceError(f"{path}: no such file or folder")
    return out


def people_in(root: Path) -> dict[str, list[Path]]:
    """A folder of folders: each sub-folder is a person, named after it, holding photos."""
    if not root.is_dir():
        raise SourceError(f"{root}: not a folder (give NAME IMAGES..., or a folder of "
                          "folders named after the people)")
    people = {d.name: images_in([d]) for d in sorted(root.iterdir()) if d.is_dir()}
    people = {name: files for name, files in people.items() if files}
    if not people:
        raise OkoError(f"{root}: no sub-folders with images",
                       "lay out ROOT/<person name>/<photos>, or give NAME IMAGES...")
    return people


def choose_face(path: Path, digest: str, result: FaceResult, min_quality: float) -> ImageFace:
    """The largest face of ``result``, or the reason there is none."""
    i = result.largest()
    if i is None:
        return ImageFace(path, digest, "no face")
    q = result.quality
    quality = float(q.score[i])
    if quality < min_quality or not result.embedded[i]:
        weakest = min((("size", q.size[i]), ("sharpness", q.sharpness[i]), ("pose", q.pose[i])),
                      key=lambda kv: kv[1])[0]
        return ImageFace(path, digest, "low quality", len(result), quality,
                         detail=f"quality {quality:.2f} < {min_quality:.2f} (weakest: {weakest})")
    return ImageFace(path, digest, "ok", len(result), quality, result.embeddings[i])


def embed_images(pipeline: FacePipeline, paths: Iterable[Path],
                 min_quality: float) -> list[ImageFace]:
    """One :class:`ImageFace` per path, in order (images are processed one at a time, so a
    folder of large photos does not sit in memory at once)."""
    out = []
    for path in paths:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        try:
            image = read_image(path)
        except SourceError as exc:
            out.append(ImageFace(path, digest, "unreadable", detail=str(exc)))
            continue
        out.append(choose_face(path, digest, pipeline([image])[0], min_quality))
    return out
