"""Embeddings persisted in one SQLite file, stamped with the model that made them.

The base of the face gallery (:mod:`oko.faces.gallery`) and the ReID track store
(:mod:`oko.reid.store`). A subclass names its format, schema and the table holding the
float32 vector blobs; this class opens and creates files, checks format and version,
refuses vectors of another embedding model (a gallery remembers model name, dimension and
file hash: vectors of two models do not live in the same space), turns SQLite errors
into clear ones and reads every vector into one contiguous float32 matrix.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from oko.core.errors import OkoError


class VectorFileError(OkoError):
    """A vector file is missing, corrupt, or does not fit the request."""


class ModelMismatchError(VectorFileError):
    """The file was built with another embedding model."""


class VectorFile:
    """An open file. Use :meth:`open`, :meth:`create` or :meth:`open_or_create`."""

    FORMAT: ClassVar[str]
    VERSION: ClassVar[str] = "1"
    SCHEMA: ClassVar[str]               # CREATE TABLE statements besides ``meta``
    VECTOR_TABLE: ClassVar[str]         # table with ``id`` and ``vector`` columns
    WHAT: ClassVar[str]                 # "face gallery", for messages
    CREATE_HINT: ClassVar[str] = ""     # how a user makes one
    error: ClassVar[type[VectorFileError]] = VectorFileError
    mismatch: ClassVar[type[VectorFileError]] = ModelMismatchError

    def __init__(self, path: Path, conn: sqlite3.Connection, meta: dict[str, str]) -> None:
        self.path = path
        self._conn = conn
        self._meta = meta

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, readonly: bool = False) -> Self:
        path = Path(path)
        if not path.is_file():
            raise cls.error(f"{path}: no {cls.WHAT} here", cls.CREATE_HINT or None)
        uri = f"file:{path.resolve()}?mode={'ro' if readonly else 'rw'}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            meta = (dict(conn.execute("SELECT key, value FROM meta").fetchall())
                    if "meta" in tables else {})
        except sqlite3.DatabaseError as exc:
            raise cls.error(f"{path}: not a readable oko {cls.WHAT} ({exc})",
                            "the file is corrupt or something else; restore a backup or "
                            "start a new file") from exc
        if meta.get("format") != cls.FORMAT:
            conn.close()
            raise cls.error(f"{path}: an SQLite file, but not an oko {cls.WHAT}")
        if meta.get("version") != cls.VERSION:
            conn.close()
            raise cls.error(f"{path}: {cls.WHAT} format version {meta.get('version')!r}, "
                            f"this oko reads version {cls.VERSION}")
        conn.execute("PRAGMA foreign_keys = ON")
        return cls(path, conn, meta)

    @classmethod
    def create(cls, path: str | Path, model_id: str, model_name: str, dim: int) -> Self:
        path = Path(path)
        if path.exists():
            raise cls.error(f"{path}: already exists")
        if not path.parent.is_dir():
            raise cls.error(f"{path}: folder {path.parent} does not exist")
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        meta = {"format": cls.FORMAT, "version": cls.VERSION, "model_id": model_id,
                "model_name": model_name, "dim": str(int(dim)), "created": f"{time.time():.3f}"}
        with conn:
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.executescript(cls.SCHEMA)
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        conn.execute("PRAGMA foreign_keys = ON")
        return cls(path, conn, meta)

    @classmethod
    def open_or_create(cls, path: str | Path, model_id: str, model_name: str, dim: int) -> Self:
        """Open ``path`` (checking the model) or create it for this model."""
        if Path(path).exists():
            opened = cls.open(path)
            opened.check_model(model_id, model_name, dim)
            return opened
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

    def mismatch_hint(self) -> str:
        return f"use the model {self.model_name!r} (the same file), or start a new file"

    def check_model(self, model_id: str, model_name: str, dim: int) -> None:
        if model_id != self.model_id:
            raise self.mismatch(
                f"{self.path}: {self.WHAT} was built with embedding model {self.model_name!r} "
                f"({self.dim}-d, id {self.model_id}); this run uses {model_name!r} ({dim}-d, id "
                f"{model_id})", self.mismatch_hint())

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """SQLite errors after opening (a file damaged in the middle) become clear errors."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise self.error(f"{self.path}: cannot {what} ({exc})",
                             "the file is corrupt; restore a backup") from exc

    def __len__(self) -> int:
        with self._guard("count embeddings"):
            return int(self._conn.execute(
                f"SELECT COUNT(*) FROM {self.VECTOR_TABLE}").fetchone()[0])

    def version_stamp(self) -> tuple[int, int]:
        """(count, largest id) of the vectors: changes whenever rows are added/removed."""
        with self._guard("read"):
            count, top = self._conn.execute(
                f"SELECT COUNT(*), COALESCE(MAX(id), 0) FROM {self.VECTOR_TABLE}").fetchone()
        return int(count), int(top)

    def read_vectors(self, columns: str = "", batch: int = 16384
                     ) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
        """Every vector in one contiguous float32 matrix (filled in place, in batches), the
        row ids, and the extra ``columns`` (SQL list) of each row, in id order."""
        d = self.dim
        extra = f", {columns}" if columns else ""
        with self._guard("read embeddings"):
            n = len(self)
            matrix = np.empty((n, d), np.float32)
            ids = np.empty(n, np.int64)
            others: list[tuple] = []
            cursor = self._conn.execute(
                f"SELECT id, vector{extra} FROM {self.VECTOR_TABLE} ORDER BY id")
            filled = 0
            while rows := cursor.fetchmany(batch):
                blobs = b"".join(r[1] for r in rows)
                if len(blobs) != len(rows) * d * 4:
                    bad = next(r[0] for r in rows if len(r[1]) != d * 4)
                    raise self.error(f"{self.path}: embedding {bad} is not {d} float32 values",
                                     "the file is corrupt; restore a backup")
                if filled + len(rows) > n:
                    raise self.error(f"{self.path}: embeddings changed while reading")
                matrix[filled:filled + len(rows)] = np.frombuffer(blobs, np.float32).reshape(-1, d)
                ids[filled:filled + len(rows)] = [r[0] for r in rows]
                others.extend(r[2:] for r in rows)
                filled += len(rows)
        matrix, ids = matrix[:filled], ids[:filled]
        if not np.isfinite(matrix).all():
            raise self.error(f"{self.path}: embeddings contain NaN or infinity (corrupt)")
        return np.ascontiguousarray(matrix), ids, others
