"""Who is this? Embeddings against a loaded gallery: best person, similarity, decision.

A person's similarity is that of their best-matching embedding. ``index`` picks the search
(:class:`oko.vectors.index.VectorIndex`, shared with person re-identification).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oko.faces.gallery import GalleryMatrix
from oko.vectors.exact import group_top_k
from oko.vectors.index import AUTO_INDEX_BYTES, VectorIndex


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
        self.search_engine = VectorIndex(gallery.matrix, index, auto_index_bytes)
        self.kind = self.search_engine.kind
        self.max_per_person = gallery.max_per_person  # once: a bincount over every row

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
