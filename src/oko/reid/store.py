"""Person tracks kept for search: one embedding per track, with where and when it was seen.

The ``reid`` module appends every decided track (``gallery`` option); ``oko reid search``
finds the tracks most similar to a photo. The file is an :class:`oko.vectors.store.
VectorFile` (one SQLite file, stamped with the embedding model: a store made with one
model refuses embeddings of another), searched with the same index as the face gallery.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from oko.vectors.index import VectorIndex
from oko.vectors.store import ModelMismatchError, VectorFile, VectorFileError

FORMAT = "oko-reid-tracks"

_SCHEMA = """
CREATE TABLE tracks (
    id INTEGER PRIMARY KEY,
    global_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    wall_time REAL NOT NULL,
    attributes TEXT NOT NULL,
    vector BLOB NOT NULL,
    crop BLOB
);
CREATE INDEX tracks_global ON tracks(global_id);
CREATE INDEX tracks_time ON tracks(wall_time);
"""


class TrackStoreError(VectorFileError):
    """A track store is missing, corrupt, or does not fit the request."""


class TrackStoreModelMismatch(TrackStoreError, ModelMismatchError):
    """The store was built with another embedding model."""


@dataclass(frozen=True)
class StoredTrack:
    row: int
    global_id: int
    channel: str
    track_id: int
    first_seen: float
    last_seen: float
    wall_time: float
    attributes: dict[str, Any]


@dataclass(frozen=True)
class TrackHit:
    similarity: float
    track: StoredTrack


class TrackStore(VectorFile):
    FORMAT = FORMAT
    SCHEMA = _SCHEMA
    VECTOR_TABLE = "tracks"
    WHAT = "ReID track store"
    CREATE_HINT = "run the reid module with the option gallery=PATH to fill one"
    error = TrackStoreError
    mismatch = TrackStoreModelMismatch

    def mismatch_hint(self) -> str:
        return (f"search with --model {self.model_name} (the same embedder), or write this "
                "model's tracks into a new store")

    def add(self, vector: np.ndarray, global_id: int, channel: str, track_id: int,
            first_seen: float, last_seen: float, attributes: dict[str, Any] | None = None,
            crop_jpeg: bytes | None = None) -> int:
        vector = np.asarray(vector, np.float32).ravel()
        if len(vector) != self.dim:
            raise TrackStoreModelMismatch(f"{self.path}: a {len(vector)}-d embedding for a "
                                          f"store of {self.dim}-d ones")
        with self._guard("add a track"), self._conn:
            cur = self._conn.execute(
                "INSERT INTO tracks (global_id, channel, track_id, first_seen, last_seen, "
                "wall_time, attributes, vector, crop) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (int(global_id), channel, int(track_id), float(first_seen), float(last_seen),
                 time.time(), json.dumps(attributes or {}), vector.tobytes(), crop_jpeg))
        return int(cur.lastrowid or 0)

    def crop(self, row: int) -> bytes | None:
        with self._guard("read a crop"):
            found = self._conn.execute("SELECT crop FROM tracks WHERE id = ?", (row,)).fetchone()
        return None if found is None else found[0]

    def load(self) -> tuple[np.ndarray, list[StoredTrack]]:
        matrix, ids, rows = self.read_vectors(
            "global_id, channel, track_id, first_seen, last_seen, wall_time, attributes")
        tracks = [StoredTrack(int(i), int(g), c, int(t), float(f), float(last), float(w),
                              json.loads(a))
                  for i, (g, c, t, f, last, w, a) in zip(ids.tolist(), rows, strict=True)]
        return matrix, tracks

    def search(self, queries: np.ndarray, k: int = 10, index: str = "auto"
               ) -> list[list[TrackHit]]:
        """The ``k`` most similar stored tracks per query, best first."""
        matrix, tracks = self.load()
        if not tracks:
            return [[] for _ in range(len(queries))]
        scores, ids = VectorIndex(matrix, index).search(queries, k)
        return [[TrackHit(float(s), tracks[i]) for s, i in zip(srow, irow, strict=True) if i >= 0]
                for srow, irow in zip(scores.tolist(), ids.tolist(), strict=True)]
