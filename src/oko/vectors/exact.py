"""Exact nearest-neighbour search by inner product: one float32 matmul per chunk + top-k.

For normalised vectors the inner product is the cosine similarity. The gallery matrix is
scanned in chunks so the score block stays within ``chunk_bytes`` whatever the number of
queries; each block comes from one BLAS ``sgemm`` (no float64, no copy of the matrix:
``matrix[a:b].T`` is a transposed view BLAS reads as is) written into a reused buffer.

Keeping the k best per query must not cost more than the matmul. A full ``argpartition``
of every block would (it touches each score several times), so only the first, small
chunk is partitioned; after that each query has a running k-th best score, and a block
needs only one vectorised comparison against it: the few scores above it are merged into
the running top-k. A block where many scores pass (a matrix sorted by similarity, say)
falls back to ``argpartition`` for that block, so the result is exact in every case.
"""

from __future__ import annotations

import numpy as np

DEFAULT_CHUNK_BYTES = 64 << 20


def _merge(best_s: np.ndarray, best_i: np.ndarray, rows: np.ndarray, scores: np.ndarray,
           ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The k best per row of the running (q, k) arrays plus candidates (row, score, id)."""
    q, k = best_s.shape
    all_rows = np.concatenate([np.repeat(np.arange(q), k), rows])
    all_s = np.concatenate([best_s.ravel(), scores])
    all_i = np.concatenate([best_i.ravel(), ids])
    order = np.lexsort((-all_s, all_rows))  # by row, then best score first
    sorted_rows = all_rows[order]
    first = np.searchsorted(sorted_rows, np.arange(q))
    keep = order[(np.arange(len(order)) - first[sorted_rows]) < k]  # k per row, row order
    return all_s[keep].reshape(q, k), all_i[keep].reshape(q, k)


class ExactSearch:
    """Top-k inner-product search over the rows of a float32 (n, d) matrix."""

    def __init__(self, matrix: np.ndarray, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        if matrix.dtype != np.float32 or matrix.ndim != 2:
            raise ValueError(f"matrix must be float32 (n, d), got {matrix.dtype} {matrix.shape}")
        self.matrix = np.ascontiguousarray(matrix)
        self.chunk_bytes = chunk_bytes

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores (q, k) float32 best first, and row ids (q, k) int64 (-1 past the end)."""
        queries = np.ascontiguousarray(np.asarray(queries, np.float32).reshape(-1, self.dim))
        n, q = len(self.matrix), len(queries)
        k = max(1, int(k))
        best_s = np.full((q, k), -np.inf, np.float32)
        best_i = np.full((q, k), -1, np.int64)
        if n == 0 or q == 0:
            return best_s, best_i
        step = max(k, self.chunk_bytes // (4 * q))
        # The first block sets the thresholds: big enough that the next block has few
        # scores above them (about q * k * next / first), small enough to partition cheaply.
        first = min(step, max(4 * k, step // 8))
        buf = np.empty(q * min(step, n), np.float32)
        dense_limit = max(8 * q * k, (q * step) // 16)
        start = 0
        while start < n:
            end = min(n, start + (first if start == 0 else step))
            block = buf[:q * (end - start)].reshape(q, end - start)
            np.matmul(queries, self.matrix[start:end].T, out=block)
            hits = np.flatnonzero(block > best_s[:, -1:])
            if len(hits) > dense_limit or start == 0:
                kk = min(k, end - start)
                part = np.argpartition(block, -kk, axis=1)[:, -kk:]
                rows = np.repeat(np.arange(q), kk)
                scores = np.take_along_axis(block, part, axis=1).ravel()
                ids = part.ravel().astype(np.int64) + start
            else:
                rows, cols = np.divmod(hits, end - start)
                scores, ids = block.ravel()[hits], cols.astype(np.int64) + start
            if len(rows):
                best_s, best_i = _merge(best_s, best_i, rows, scores, ids)
            start = end
        return best_s, best_i


def group_top_k(scores: np.ndarray, ids: np.ndarray, labels: np.ndarray,
                k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query, the k best distinct labels (a person's best embedding stands for them).

    ``scores``/``ids`` are a row-id top-k'' sorted best first; returns scores (q, k),
    labels (q, k) (-1 where fewer) and the row id of each label's best match.
    """
    q = len(scores)
    out_s = np.full((q, k), -np.inf, np.float32)
    out_l = np.full((q, k), -1, np.int64)
    out_i = np.full((q, k), -1, np.int64)
    valid = ids >= 0
    lab = np.where(valid, labels[np.where(valid, ids, 0)], -1)
    for r in range(q):  # k'' is small; one np.unique per query
        row_labels = lab[r][valid[r]]
        _, first = np.unique(row_labels, return_index=True)
        first = np.sort(first)[:k]
        out_s[r, :len(first)] = scores[r][valid[r]][first]
        out_l[r, :len(first)] = row_labels[first]
        out_i[r, :len(first)] = ids[r][valid[r]][first]
    return out_s, out_l, out_i
