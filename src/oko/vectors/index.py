"""One search front for a float32 embedding matrix: exact or a faiss index, picked by size.

``kind`` is ``exact`` (batched matmul, :mod:`oko.vectors.exact`), a faiss kind
(:mod:`oko.vectors.faiss_index`), or ``auto``: exact while the matrix is under
``auto_index_bytes`` (1 GiB: two million 128-d vectors or half a million 512-d ones, which
one exact query scans in about 0.1 s on a small CPU), the ``binary`` index beyond when faiss
is installed. Both answer inner products of the stored rows (cosine for unit vectors).
"""

from __future__ import annotations

import logging

import numpy as np

from oko.core.errors import ConfigError
from oko.vectors.exact import ExactSearch

log = logging.getLogger(__name__)

AUTO_INDEX_BYTES = 1 << 30
INDEX_CHOICES = ("auto", "exact", "binary", "ivf-sq8", "ivf-flat", "hnsw")


def pick_kind(matrix: np.ndarray, kind: str = "auto",
              auto_index_bytes: int = AUTO_INDEX_BYTES) -> str:
    if kind not in INDEX_CHOICES:
        raise ConfigError(f"unknown vector index {kind!r}", f"choose one of {INDEX_CHOICES}")
    if kind != "auto":
        return kind
    if matrix.nbytes <= auto_index_bytes:
        return "exact"
    try:
        from oko.vectors.faiss_index import import_faiss

        import_faiss()
        return "binary"
    except ConfigError:  # optional dependency missing
        log.warning("%d vectors searched exactly: faiss is not installed "
                    "(pip install 'oko[faiss]')", len(matrix))
        return "exact"


class VectorIndex:
    """Top-k inner-product search over the rows of ``matrix`` (float32 (n, d))."""

    def __init__(self, matrix: np.ndarray, kind: str = "auto",
                 auto_index_bytes: int = AUTO_INDEX_BYTES) -> None:
        self.matrix = np.ascontiguousarray(matrix, np.float32)
        self.kind = pick_kind(self.matrix, kind, auto_index_bytes)
        if self.kind == "exact" or len(self.matrix) == 0:
            self.engine: ExactSearch | object = ExactSearch(self.matrix)
        else:
            from oko.vectors.faiss_index import FaissIndex

            self.engine = FaissIndex(self.matrix, self.kind)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores (q, k) float32 best first and row ids (q, k) int64, -1 past the end."""
        return self.engine.search(queries, k)  # type: ignore[attr-defined]
