"""Market-1501 ranking metrics: CMC (rank-k) and mAP, vectorised over queries.

The protocol is the benchmark's own (Zheng et al. 2015; the same as torchreid's
``eval_market1501``):

* for each query, gallery items showing the *same person from the same camera* are left
  out (they are "junk" for that query: too easy, often the same tracklet);
* gallery items with person id ``-1`` (junk detections) are left out for every query;
* distractors (id ``0``, ``0000`` in file names) stay in the gallery as negatives;
* a query with no valid match left in the gallery is skipped and counted; CMC and mAP
  are averaged over the remaining queries;
* AP is the area under the precision/recall curve sampled at each correct match:
  ``mean over matches of (matches so far) / (rank of this match)``, ranks counted among
  the items kept for that query. CMC at k is 1 when the first correct match is within
  the top k kept items.

Queries whose own id is ``-1`` or ``0`` have no identity to find and are skipped too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

JUNK_PID = -1
DISTRACTOR_PID = 0


@dataclass(frozen=True)
class RankingReport:
    """CMC curve and mAP over the queries that have at least one valid match."""

    cmc: np.ndarray  # (max_rank,) float64, cmc[k-1] = rank-k accuracy
    mAP: float  # noqa: N815 - the established name
    num_query: int  # all queries given
    num_valid: int  # queries that count
    num_skipped: int  # queries with no valid gallery match (or no identity)

    def rank(self, k: int) -> float:
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank {k} outside 1..{len(self.cmc)}")
        return float(self.cmc[k - 1])

    @property
    def rank1(self) -> float:
        return self.rank(1)

    @property
    def rank5(self) -> float:
        return self.rank(min(5, len(self.cmc)))


def evaluate_ranking(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                     q_camids: np.ndarray, g_camids: np.ndarray, max_rank: int = 50,
                     chunk: int = 256) -> RankingReport:
    """Market-1501 CMC and mAP from a (num_query, num_gallery) distance matrix.

    Smaller distance = more similar. Ties are broken by gallery order (stable sort).
    Queries are processed ``chunk`` at a time so that Market-size matrices stay small in
    memory. ``cmc`` is all zeros and ``mAP`` is 0 when no query counts.
    """
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids).ravel(), np.asarray(g_pids).ravel()
    q_camids, g_camids = np.asarray(q_camids).ravel(), np.asarray(g_camids).ravel()
    nq, ng = distmat.shape if distmat.ndim == 2 else (-1, -1)
    if distmat.ndim != 2 or len(q_pids) != nq or len(q_camids) != nq or len(g_pids) != ng \
            or len(g_camids) != ng:
        raise ValueError(f"distmat {distmat.shape} does not match {len(q_pids)} query ids, "
                         f"{len(q_camids)} query cameras, {len(g_pids)} gallery ids, "
                         f"{len(g_camids)} gallery cameras")
    if max_rank < 1:
        raise ValueError("max_rank must be >= 1")

    cmc_hits = np.zeros(max_rank, dtype=np.int64)
    ap_sum = 0.0
    num_valid = 0
    for start in range(0, nq, chunk):
        d = distmat[start:start + chunk]
        qp = q_pids[start:start + chunk, None]
        qc = q_camids[start:start + chunk, None]
        order = np.argsort(d, axis=1, kind="stable")
        gp, gc = g_pids[order], g_camids[order]
        keep = (gp != JUNK_PID) & ~((gp == qp) & (gc == qc))
        match = (gp == qp) & keep
        num_rel = match.sum(axis=1)
        ok = (num_rel > 0) & (qp[:, 0] != JUNK_PID) & (qp[:, 0] != DISTRACTOR_PID)
        if not ok.any():
            continue
        keep, match, num_rel = keep[ok], match[ok], num_rel[ok]
        kept_rank = np.cumsum(keep, axis=1)  # 1-based rank among kept items (at kept items)
        hits_so_far = np.cumsum(match, axis=1)
        precision_at_hits = np.where(match, hits_so_far / np.maximum(kept_rank, 1), 0.0)
        ap_sum += float((precision_at_hits.sum(axis=1) / num_rel).sum())
        first = kept_rank[np.arange(len(match)), np.argmax(match, axis=1)]  # 1-based
        cmc_hits += np.bincount(np.minimum(first, max_rank + 1) - 1,
                                minlength=max_rank + 1)[:max_rank]
        num_valid += int(ok.sum())

    if num_valid == 0:
        return RankingReport(np.zeros(max_rank), 0.0, nq, 0, nq)
    cmc = np.cumsum(cmc_hits) / num_valid
    return RankingReport(cmc, ap_sum / num_valid, nq, num_valid, nq - num_valid)


def cosine_distance(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """``1 - cosine similarity`` between rows (inputs need not be normalised)."""
    q = np.asarray(query, dtype=np.float32)
    g = np.asarray(gallery, dtype=np.float32)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    return 1.0 - q @ g.T
