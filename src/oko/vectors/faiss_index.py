"""Approximate search with faiss for galleries of millions, re-ranked exactly.

One exact query scans the whole matrix (2 GB for a million 512-d vectors): memory-bound,
about 0.1 s on a small CPU. An index looks at much less:

- ``binary`` (default): sign bits (one per dimension, at least 256) of random projections
  of the centred vectors
  (SimHash: the Hamming distance estimates the angle), scanned exhaustively with popcount
  (a 32nd of float32's memory), then the best ``candidates`` re-ranked exactly.
  It makes no assumption about how the vectors cluster, so it keeps its recall on data
  where cell- and graph-based indexes lose theirs (see benchmarks/bench_faces.py);
- ``ivf-sq8``: an inverted file of ``nlist`` k-means cells of 8-bit scalar-quantised
  vectors, ``nprobe`` cells scanned per query: fast when identities cluster;
- ``ivf-flat``: the same with float32 vectors;
- ``hnsw``: a navigable small-world graph over float32 vectors (slow to build).

Every kind returns candidates whose scores are recomputed from the float32 matrix, so
similarities are exact and only the candidate set is approximate. faiss is an optional
dependency (``pip install 'oko[faiss]'``), imported only here and only when used. faiss
spreads even a single query over OpenMP threads; on a small, busy CPU that costs far more
than it gains (a binary scan: 2.6 ms on one thread, 150 ms on two), so queries of a few
vectors run on one thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Literal

import numpy as np

from oko.core.errors import ConfigError

log = logging.getLogger(__name__)

IndexKind = Literal["binary", "ivf-sq8", "ivf-flat", "hnsw"]
INDEX_KINDS: tuple[str, ...] = ("binary", "ivf-sq8", "ivf-flat", "hnsw")
SMALL_BATCH = 4  # queries up to this many run on one OpenMP thread
_threads_lock = threading.Lock()


def import_faiss() -> ModuleType:
    try:
        import faiss
    except ImportError as exc:
        raise ConfigError("approximate vector search needs faiss, which is not installed",
                          "pip install 'oko[faiss]' (faiss-cpu), or use exact search "
                          "(index: exact)") from exc
    return faiss


@contextmanager
def _omp_threads(faiss: ModuleType, n: int | None) -> Iterator[None]:
    """faiss' OpenMP thread count is process-wide: set it for one call, then restore."""
    if n is None:
        yield
        return
    with _threads_lock:
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(n)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(before)


class FaissIndex:
    """An inner-product index over ``matrix`` rows with exact re-ranking."""

    def __init__(self, matrix: np.ndarray, kind: IndexKind = "binary", nlist: int | None = None,
                 nprobe: int | None = None, bits: int | None = None, candidates: int = 64,
                 hnsw_m: int = 32, ef_search: int = 128, train_size: int = 100_000,
                 seed: int = 0) -> None:
        if kind not in INDEX_KINDS:
            raise ConfigError(f"unknown vector index {kind!r}", f"choose one of {INDEX_KINDS}")
        self.faiss = faiss = import_faiss()
        self.matrix = np.ascontiguousarray(matrix, np.float32)
        self.kind, self.candidates = kind, max(1, candidates)
        n, d = self.matrix.shape
        self.nlist = self.nprobe = self.bits = 0
        rng = np.random.default_rng(seed)
        started = time.perf_counter()
        if kind == "binary":
            # Random hyperplanes through the data's centre, one bit per dimension (at least
            # 256): at 512-d, 256 bits lost recall on correlated identities (0.977 @ 64
            # candidates), 512 did not (1.0; bench_faces.py).
            self.bits = -(-(bits or max(256, d)) // 64) * 64
            self.centre = self.matrix.mean(axis=0) if n else np.zeros(d, np.float32)
            self.planes = rng.standard_normal((d, self.bits)).astype(np.float32)
            self.index = faiss.IndexBinaryFlat(self.bits)
            for start in range(0, n, 65536):  # bounded temporaries
                self.index.add(self._codes(self.matrix[start:start + 65536]))
        elif kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efSearch = ef_search
            self.index.add(self.matrix)
        else:
            # About 4 sqrt(n) cells of a few hundred vectors each.
            self.nlist = nlist or max(1, min(n // 39, int(4 * math.sqrt(n))))
            self.nprobe = nprobe or min(self.nlist, max(16, self.nlist // 8))
            spec = f"IVF{self.nlist},{'SQ8' if kind == 'ivf-sq8' else 'Flat'}"
            self.index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
            sample = self.matrix if n <= train_size else self.matrix[
                np.sort(rng.choice(n, train_size, replace=False))]
            self.index.train(sample)
            self.index.add(self.matrix)
            faiss.extract_index_ivf(self.index).nprobe = self.nprobe
        self.build_seconds = time.perf_counter() - started
        log.info("faiss %s index over %d vectors built in %.1f s", kind, n, self.build_seconds)

    def _codes(self, vectors: np.ndarray) -> np.ndarray:
        return np.packbits((vectors - self.centre) @ self.planes > 0, axis=1)

    def __len__(self) -> int:
        return len(self.matrix)

    def set_nprobe(self, value: int) -> None:
        """Cells scanned (IVF), efSearch (HNSW), or candidates re-ranked (binary)."""
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = value
        elif self.kind == "binary":
            self.candidates = value
        else:
            self.faiss.extract_index_ivf(self.index).nprobe = value
            self.nprobe = value

    def memory_bytes(self) -> int:
        """Bytes the index itself holds (not the float32 matrix kept for re-ranking)."""
        faiss = self.faiss
        if self.kind == "binary":
            return int(self.index.ntotal * self.bits // 8 + self.planes.nbytes)
        return int(faiss.serialize_index(self.index).size)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores (q, k) best first (exact inner products) and row ids (q, k), -1 past the end."""
        d = self.matrix.shape[1]
        queries = np.ascontiguousarray(np.asarray(queries, np.float32).reshape(-1, d))
        k = max(1, int(k))
        wanted = min(len(self.matrix), max(self.candidates, 4 * k)) or 1
        threads = 1 if len(queries) <= SMALL_BATCH else None
        with _omp_threads(self.faiss, threads):
            if self.kind == "binary":
                _, cand = self.index.search(self._codes(queries), wanted)
            else:
                _, cand = self.index.search(queries, wanted)
        valid = cand >= 0
        rows = self.matrix[np.where(valid, cand, 0)]                    # (q, c, d)
        exact = np.einsum("qcd,qd->qc", rows, queries)
        exact = np.where(valid, exact, -np.inf).astype(np.float32)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(exact, order, axis=1)
        ids = np.where(np.isfinite(scores), np.take_along_axis(cand, order, axis=1), -1)
        if scores.shape[1] < k:  # fewer candidates than k: pad like the exact search
            pad = k - scores.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        return scores, ids.astype(np.int64)
