"""Who is this? Embeddings against a loaded gallery: best person, similarity, decision.

A person's similarity is that of their best-matching embedding. ``index`` picks the search:
``exact`` (batched matmul, :mod:`oko.faces.search`), a faiss kind (:mod:`oko.faces.index`),
or ``auto``: exact while the matrix is under ``auto_index_bytes`` (1 GiB: two million SFace
vectors or half a million 512-d ones, which one exact query scans in about 0.1 s on a small
CPU), the ``binary`` index beyond when faiss is installed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from oko.core.errors import ConfigError
from oko.faces.gallery import GalleryMatrix
from oko.faces.search import ExactSearch, group_top_k

log = logging.getLogger(__name__)

AUTO_INDEX_BYTES = 1 << 30


@dataclass(frozen=True)
class Matches:
    """Top-k people per query: names ('' where none), similarities, and the decision."""

    names: list[list[str]]
    similarity: np.ndarray   # float32 (q, k), best first
    threshold: float

    @property
    def best(self) -> list[str | None]:
        """The recognised person per query, None where the best is below the threshold."""
        return [row[0] if row and row[0] and s >= self.threshold else None
                for row, s in zip(self.names, self.similarity[:, 0], strict=True)]


class GalleryMatcher:
    def __init__(self, gallery: GalleryMatrix, threshold: float, index: str = "auto",
                 auto_index_bytes: int = AUTO_INDEX_BYTES) -> None:
        self.gallery = gallery
        self.threshold = float(threshold)
        n = len(gallery.matrix)
        kind = index
        if index == "auto":
            kind = "exact"
            if gallery.matrix.nbytes > auto_index_bytes:
                try:
                    from oko.faces.index import import_faiss

                    import_faiss()
                    kind = "binary"
                except ConfigError:  # optional dependency missing
                    log.warning("gallery of %d embeddings searched exactly: faiss is not "
                                "installed (pip install 'oko[faiss]')", n)
        self.kind = kind
        self.max_per_person = gallery.max_per_person  # once: a bincount over every row
        if kind == "exact" or n == 0:
            self.search_engine = ExactSearch(gallery.matrix)
        else:
            from oko.faces.index import FaissIndex

            self.search_engine = FaissIndex(gallery.matrix, kind)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.gallery.matrix)

    def match(self, embeddings: np.ndarray, k: int = 1) -> Matches:
        embeddings = np.asarray(embeddings, np.float32)
        q = len(embeddings)
        if q == 0 or len(self) == 0:
            return Matches([[""] * k for _ in range(q)], np.full((q, k), -np.inf, np.float32),
                           self.threshold)
        # The k-th distinct person is within the top (k - 1) * P + 1 rows (P embeddings each).
        rows = (k - 1) * self.max_per_person + 1
        scores, ids = self.search_engine.search(embeddings, rows)
        sims, labels, _ = group_top_k(scores, ids, self.gallery.person, k)
        names = [[self.gallery.names[i] if i >= 0 else "" for i in row] for row in labels]
        return Matches(names, sims, self.threshold)
