"""The face gallery: people with several embeddings each, in one SQLite file.

Embeddings are float32 blobs next to the person, a quality score, where they came from and
the sha256 of the source image (to catch duplicate enrolment). The file also records which
embedding model made the vectors (name, dimension, file sha256): vectors of another model
are meaningless here, so opening a gallery with a different model is refused.

For search the whole gallery is read once into one contiguous float32 matrix, with the
person of each row beside it (:meth:`Gallery.load`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from oko.vectors.store import ModelMismatchError, VectorFile, VectorFileError

FORMAT = "oko-face-gallery"
VERSION = "1"

_SCHEMA = """
CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    quality REAL,
    source TEXT,
    image_sha256 TEXT,
    created REAL NOT NULL
);
CREATE INDEX embeddings_person ON embeddings(person_id);
CREATE INDEX embeddings_image ON embeddings(image_sha256);
"""


class GalleryError(VectorFileError):
    """A gallery file is missing, corrupt, or does not fit the request."""


class GalleryModelMismatch(GalleryError, ModelMismatchError):
    """The gallery was built with another embedding model."""


@dataclass(frozen=True)
class PersonInfo:
    name: str
    embeddings: int
    created: float


@dataclass(frozen=True)
class GalleryMatrix:
    """The gallery as search needs it: one row per embedding."""

    matrix: np.ndarray          # float32 (n, d), C-contiguous
    person: np.ndarray          # int32 (n,): index into ``names``
    names: list[str]
    embedding_ids: np.ndarray   # int64 (n,): row ids in the file

    @property
    def max_per_person(self) -> int:
        return int(np.bincount(self.person).max()) if len(self.person) else 0


@dataclass(frozen=True)
class EnrollResult:
    added: int
    duplicates: list[str]  # sources already enrolled for this person (skipped)


class Gallery(VectorFile):
    """An open gallery file. Use :meth:`open` or :meth:`create`; close it (or ``with``)."""

    FORMAT = FORMAT
    VERSION = VERSION
    SCHEMA = _SCHEMA
    VECTOR_TABLE = "embeddings"
    WHAT = "face gallery"
    CREATE_HINT = "create one with `oko faces enroll NAME IMAGE...`"
    error = GalleryError
    mismatch = GalleryModelMismatch

    def mismatch_hint(self) -> str:
        return (f"use --embedder {self.model_name} (the same file), or enroll everyone "
                "again into a new gallery with this model")

    @property
    def threshold(self) -> float | None:
        """A match threshold calibrated for this gallery (`oko faces eval --save`), if any."""
        value = self._meta.get("threshold")
        return float(value) if value is not None else None

    # ------------------------------------------------------------------ changes
    def enroll(self, name: str, vectors: np.ndarray, qualities: Sequence[float],
               sources: Sequence[str], image_hashes: Sequence[str]) -> EnrollResult:
        """Add embeddings to ``name`` (created if new). An image already enrolled for this
        person is skipped; one enrolled for someone else is refused."""
        name = name.strip()
        if not name:
            raise GalleryError("a person's name must not be empty")
        vectors = np.asarray(vectors, np.float32).reshape(len(sources), -1)
        if vectors.shape[1] != self.dim:
            raise GalleryModelMismatch(f"{self.path}: embeddings are {vectors.shape[1]}-d, "
                                       f"the gallery holds {self.dim}-d")
        if not np.isfinite(vectors).all():
            raise GalleryError(f"embeddings for {name!r} contain NaN or infinity")
        now = time.time()
        with self._guard("enroll"), self._conn:
            duplicates, rows, seen = [], [], set()
            for vec, quality, source, digest in zip(vectors, qualities, sources, image_hashes,
                                                    strict=True):
                if digest in seen:  # the same photo twice in one call
                    duplicates.append(source)
                    continue
                seen.add(digest)
                owner = self._conn.execute(
                    "SELECT p.name FROM embeddings e JOIN people p ON p.id = e.person_id "
                    "WHERE e.image_sha256 = ? LIMIT 1", (digest,)).fetchone()
                if owner is not None and owner[0] != name:
                    raise GalleryError(f"{source}: this image is already enrolled as "
                                       f"{owner[0]!r}", f"remove it first with `oko faces "
                                       f"remove {owner[0]!r}` if it is not them")
                if owner is not None:
                    duplicates.append(source)
                    continue
                rows.append((vec.tobytes(), float(quality), source, digest, now))
            if rows:
                self._conn.execute("INSERT OR IGNORE INTO people (name, created) VALUES (?, ?)",
                                   (name, now))
                (person_id,) = self._conn.execute("SELECT id FROM people WHERE name = ?",
                                                  (name,)).fetchone()
                self._conn.executemany(
                    "INSERT INTO embeddings (person_id, vector, quality, source, image_sha256, "
                    "created) VALUES (?, ?, ?, ?, ?, ?)", [(person_id, *r) for r in rows])
        return EnrollResult(len(rows), duplicates)

    def remove(self, name: str) -> int:
        """Delete a person and their embeddings; returns how many embeddings went."""
        with self._guard("remove"), self._conn:
            row = self._conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise GalleryError(f"{self.path}: no person named {name!r}",
                                   "see `oko faces list`")
            (count,) = self._conn.execute("SELECT COUNT(*) FROM embeddings WHERE person_id = ?",
                                          row).fetchone()
            self._conn.execute("DELETE FROM embeddings WHERE person_id = ?", row)
            self._conn.execute("DELETE FROM people WHERE id = ?", row)
        return int(count)

    def set_threshold(self, value: float) -> None:
        with self._guard("save the threshold"), self._conn:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('threshold', ?)",
                               (f"{float(value):.6f}",))
        self._meta["threshold"] = f"{float(value):.6f}"

    # ------------------------------------------------------------------ reading
    def people(self) -> list[PersonInfo]:
        with self._guard("list people"):
            rows = self._conn.execute(
                "SELECT p.name, COUNT(e.id), p.created FROM people p LEFT JOIN embeddings e "
                "ON e.person_id = p.id GROUP BY p.id ORDER BY p.name").fetchall()
        return [PersonInfo(n, int(c), float(t)) for n, c, t in rows]

    def load(self, batch: int = 16384) -> GalleryMatrix:
        """Every embedding in one contiguous float32 matrix, the person of each row beside it."""
        matrix, emb_ids, rows = self.read_vectors("person_id", batch)
        with self._guard("read people"):
            names_by_id = dict(self._conn.execute("SELECT id, name FROM people").fetchall())
        person_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        order = sorted(names_by_id)
        index_of = {pid: i for i, pid in enumerate(order)}
        missing = set(np.unique(person_ids).tolist()) - set(index_of)
        if missing:
            raise GalleryError(f"{self.path}: embeddings of unknown people {sorted(missing)[:5]}")
        lookup = np.zeros(max(order, default=0) + 1, np.int32)
        lookup[order] = np.arange(len(order), dtype=np.int32)
        return GalleryMatrix(matrix, lookup[person_ids], [names_by_id[i] for i in order], emb_ids)
