"""The face gallery: people with several embeddings each, in one SQLite file.

Embeddings are float32 blobs next to the person, a quality score, where they came from and
the sha256 of the source image (to catch duplicate enrolment). The file also records which
embedding model made the vectors (name, dimension, file sha256): vectors of another model
are meaningless here, so opening a gallery with a different model is refused.

For search the whole gallery is read once into one contiguous float32 matrix, with the
person of each row beside it (:meth:`Gallery.load`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from oko.core.errors import OkoError

FORMAT = "oko-face-gallery"
VERSION = "1"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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


class GalleryError(OkoError):
    """A gallery file is missing, corrupt, or does not fit the request."""


class GalleryModelMismatch(GalleryError):
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


class Gallery:
    """An open gallery file. Use :meth:`open` or :meth:`create`; close it (or ``with``)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, meta: dict[str, str]) -> None:
        self.path = path
        self._conn = conn
        self._meta = meta

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, readonly: bool = False) -> Gallery:
        path = Path(path)
        if not path.is_file():
            raise GalleryError(f"{path}: no face gallery here",
                               "create one with `oko faces enroll NAME IMAGE...`")
        uri = f"file:{path.resolve()}?mode={'ro' if readonly else 'rw'}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            meta = (dict(conn.execute("SELECT key, value FROM meta").fetchall())
                    if "meta" in tables else {})
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{path}: not a readable oko face gallery ({exc})",
                               "the file is corrupt or something else; restore a backup or "
                               "enroll into a new file") from exc
        if meta.get("format") != FORMAT:
            conn.close()
            raise GalleryError(f"{path}: an SQLite file, but not an oko face gallery")
        if meta.get("version") != VERSION:
            conn.close()
            raise GalleryError(f"{path}: gallery format version {meta.get('version')!r}, this "
                               f"oko reads version {VERSION}")
        conn.execute("PRAGMA foreign_keys = ON")
        return cls(path, conn, meta)

    @classmethod
    def create(cls, path: str | Path, model_id: str, model_name: str, dim: int) -> Gallery:
        path = Path(path)
        if path.exists():
            raise GalleryError(f"{path}: already exists")
        if not path.parent.is_dir():
            raise GalleryError(f"{path}: folder {path.parent} does not exist")
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        meta = {"format": FORMAT, "version": VERSION, "model_id": model_id,
                "model_name": model_name, "dim": str(int(dim)), "created": f"{time.time():.3f}"}
        with conn:
            conn.executescript(_SCHEMA)
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        conn.execute("PRAGMA foreign_keys = ON")
        return cls(path, conn, meta)

    @classmethod
    def open_or_create(cls, path: str | Path, model_id: str, model_name: str, dim: int) -> Gallery:
        """Open ``path`` (checking the model) or create it for this model."""
        if Path(path).exists():
            gallery = cls.open(path)
            gallery.check_model(model_id, model_name, dim)
            return gallery
        return cls.create(path, model_id, model_name, dim)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ facts
    @property
    def model_id(self) -> str:
        return self._meta.get("model_id", "")

    @property
    def model_name(self) -> str:
        return self._meta.get("model_name", "")

    @property
    def dim(self) -> int:
        return int(self._meta.get("dim", 0))

    @property
    def threshold(self) -> float | None:
        """A match threshold calibrated for this gallery (`oko faces eval --save`), if any."""
        value = self._meta.get("threshold")
        return float(value) if value is not None else None

    def check_model(self, model_id: str, model_name: str, dim: int) -> None:
        if model_id != self.model_id:
            raise GalleryModelMismatch(
                f"{self.path}: gallery was built with embedding model {self.model_name!r} "
                f"({self.dim}-d, id {self.model_id}); this run uses {model_name!r} ({dim}-d, id "
                f"{model_id})", f"use --embedder {self.model_name} (the same file), or enroll "
                "everyone again into a new gallery with this model")

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """SQLite errors after opening (a file damaged in the middle) become GalleryErrors."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path}: cannot {what} ({exc})",
                               "the file is corrupt; restore a backup") from exc

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

    def __len__(self) -> int:
        with self._guard("count embeddings"):
            return int(self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def version_stamp(self) -> tuple[int, int]:
        """(count, largest id) of the embeddings: changes whenever rows are added/removed."""
        with self._guard("read"):
            count, top = self._conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM embeddings").fetchone()
        return int(count), int(top)

    def load(self, batch: int = 16384) -> GalleryMatrix:
        """Every embedding in one contiguous float32 matrix (filled in place, in batches)."""
        d = self.dim
        with self._guard("read embeddings"):
            n = len(self)
            names_by_id = dict(self._conn.execute("SELECT id, name FROM people").fetchall())
            matrix = np.empty((n, d), np.float32)
            person_ids = np.empty(n, np.int64)
            emb_ids = np.empty(n, np.int64)
            cursor = self._conn.execute(
                "SELECT id, person_id, vector FROM embeddings ORDER BY id")
            filled = 0
            while rows := cursor.fetchmany(batch):
                blobs = b"".join(r[2] for r in rows)
                if len(blobs) != len(rows) * d * 4:
                    bad = next(r[0] for r in rows if len(r[2]) != d * 4)
                    raise GalleryError(f"{self.path}: embedding {bad} is not {d} float32 values",
                                       "the file is corrupt; restore a backup")
                if filled + len(rows) > n:
                    raise GalleryError(f"{self.path}: embeddings changed while reading")
                matrix[filled:filled + len(rows)] = np.frombuffer(blobs, np.float32).reshape(-1, d)
                person_ids[filled:filled + len(rows)] = [r[1] for r in rows]
                emb_ids[filled:filled + len(rows)] = [r[0] for r in rows]
                filled += len(rows)
        matrix, person_ids, emb_ids = matrix[:filled], person_ids[:filled], emb_ids[:filled]
        if not np.isfinite(matrix).all():
            raise GalleryError(f"{self.path}: embeddings contain NaN or infinity (corrupt)")
        order = sorted(names_by_id)
        index_of = {pid: i for i, pid in enumerate(order)}
        missing = set(np.unique(person_ids).tolist()) - set(index_of)
        if missing:
            raise GalleryError(f"{self.path}: embeddings of unknown people {sorted(missing)[:5]}")
        lookup = np.zeros(max(order, default=0) + 1, np.int32)
        lookup[order] = np.arange(len(order), dtype=np.int32)
        return GalleryMatrix(np.ascontiguousarray(matrix), lookup[person_ids],
                             [names_by_id[i] for i in order], emb_ids)
