"""`oko reid search`: a photo of a person against stored tracks or a folder of crops.

The query image is cut to its person: its largest ``person`` detection (default COCO
detector), or the whole image when none is found or ``whole`` is asked. The silhouette and
embedding are those of the reid module, with the store's own embedder, so the vectors are
comparable; a store made with another model than ``model`` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oko.core.errors import ConfigError
from oko.faces.pipeline import read_image
from oko.reid.crops import crop_box
from oko.reid.embed import STRIPES, PersonEmbedder, load_person_embedder
from oko.reid.silhouette import PersonMasker, load_masker

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class SearchResult:
    query: str
    model_id: str
    person_box: list[float] | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "model": self.model_id, "person_box": self.person_box,
                "results": self.rows}


def person_crop(image: np.ndarray, whole: bool = False) -> tuple[np.ndarray, list[float] | None]:
    """The largest detected person, or the whole image."""
    if whole:
        return image, None
    from oko.models import DEFAULT_DETECTOR, load_detector

    detector = load_detector(DEFAULT_DETECTOR)
    dets = detector([image])[0]
    people = dets[dets.class_id == detector.labels.index("person")]
    if not len(people):
        return image, None
    areas = (people.xyxy[:, 2] - people.xyxy[:, 0]) * (people.xyxy[:, 3] - people.xyxy[:, 1])
    box = people.xyxy[int(areas.argmax())]
    return crop_box(image, box), [round(float(v), 1) for v in box]


def _embed(embedder: PersonEmbedder, masker: PersonMasker, crops: list[np.ndarray]
           ) -> np.ndarray:
    return embedder(crops, masker(crops))


def search_gallery(image_path: Path, gallery: Path, model: str | None = None, top: int = 10,
                   whole: bool = False) -> SearchResult:
    image = read_image(image_path)
    if gallery.is_dir():
        return _search_folder(image, image_path, gallery, model or STRIPES, top, whole)
    from oko.reid.store import TrackStore

    with TrackStore.open(gallery, readonly=True) as store:
        embedder = load_person_embedder(model or store.model_name)
        store.check_model(embedder.model_id, embedder.name, embedder.dim)
        crop, box = person_crop(image, whole)
        hits = store.search(_embed(embedder, load_masker(), [crop]), top)[0]
    result = SearchResult(str(image_path), embedder.model_id, box)
    for h in hits:
        t = h.track
        result.rows.append({"similarity": round(h.similarity, 4), "global_id": t.global_id,
                            "channel": t.channel, "track_id": t.track_id,
                            "first_seen": round(t.first_seen, 3),
                            "last_seen": round(t.last_seen, 3), "wall_time": t.wall_time,
                            "attributes": t.attributes, "row": t.row})
    return result


def _search_folder(image: np.ndarray, image_path: Path, folder: Path, model: str, top: int,
                   whole: bool) -> SearchResult:
    from oko.vectors.index import VectorIndex

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) to search")
    embedder = load_person_embedder(model)
    crop, box = person_crop(image, whole)
    masker = load_masker()  # once for the query and the whole folder
    query = _embed(embedder, masker, [crop])
    matrix = _embed(embedder, masker, [read_image(p) for p in files])
    scores, ids = VectorIndex(matrix, "exact").search(query, min(top, len(files)))
    result = SearchResult(str(image_path), embedder.model_id, box)
    for s, i in zip(scores[0].tolist(), ids[0].tolist(), strict=True):
        if i >= 0:
            result.rows.append({"similarity": round(s, 4), "file": files[i].name})
    return result
