"""Search equals brute force; person grouping; faiss index recall; verification metrics."""

import numpy as np
import pytest

from oko.faces.eval import read_pairs, threshold_at_far, verification_report
from oko.faces.gallery import GalleryMatrix
from oko.faces.matcher import GalleryMatcher
from oko.vectors.exact import ExactSearch, group_top_k


def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def brute(matrix, queries, k):
    s = queries.astype(np.float64) @ matrix.T.astype(np.float64)
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, ids, axis=1), ids


@pytest.mark.parametrize("n, q, k, chunk_bytes", [
    (5000, 7, 10, 64 << 20),     # one big block after the first
    (5000, 7, 10, 4096),         # many tiny blocks: the threshold/merge path
    (3000, 1, 1, 2048),
    (50, 3, 80, 1 << 20),        # k larger than the gallery: padded with -1
    (1, 2, 3, 1 << 20),
])
def test_exact_search_equals_brute_force(n, q, k, chunk_bytes):
    rng = np.random.default_rng(n + q + k)
    matrix = unit(rng.standard_normal((n, 16)))
    queries = unit(rng.standard_normal((q, 16)))
    scores, ids = ExactSearch(matrix, chunk_bytes=chunk_bytes).search(queries, k)
    ref_s, ref_i = brute(matrix, queries, min(k, n))
    assert scores.shape == ids.shape == (q, k)
    np.testing.assert_array_equal(ids[:, :min(k, n)], ref_i)
    np.testing.assert_allclose(scores[:, :min(k, n)], ref_s, atol=1e-5)
    assert (ids[:, min(k, n):] == -1).all() and np.isneginf(scores[:, min(k, n):]).all()


def test_exact_search_stays_exact_when_every_block_beats_the_threshold():
    # Rows sorted from least to most similar: each new block is full of better scores,
    # which sends the search down its dense (argpartition) path every time.
    rng = np.random.default_rng(3)
    query = unit(rng.standard_normal((1, 8)))
    matrix = unit(rng.standard_normal((4000, 8)))
    matrix = matrix[np.argsort(matrix @ query[0])]
    _, ids = ExactSearch(matrix, chunk_bytes=1024).search(query, 25)
    np.testing.assert_array_equal(ids[0], np.arange(3999, 3974, -1))


def test_empty_gallery_and_no_queries():
    es = ExactSearch(np.zeros((0, 4), np.float32))
    s, i = es.search(np.ones((2, 4), np.float32), 3)
    assert (i == -1).all() and np.isneginf(s).all()
    s, i = ExactSearch(np.ones((3, 4), np.float32)).search(np.zeros((0, 4), np.float32), 2)
    assert s.shape == (0, 2)
    with pytest.raises(ValueError, match="float32"):
        ExactSearch(np.ones((3, 4)))


def test_people_are_ranked_by_their_best_embedding():
    # Person 0 has three embeddings close to the query, person 1 one, person 2 one far away.
    q = unit([[1, 0, 0]])
    m = unit([[0.99, 0.1, 0], [0.98, 0.2, 0], [0.97, 0.25, 0], [0.9, 0.43, 0], [0, 1, 0]])
    labels = np.array([0, 0, 0, 1, 2])
    gm = GalleryMatrix(m, labels.astype(np.int32), ["ann", "ben", "cid"], np.arange(5))
    matcher = GalleryMatcher(gm, threshold=0.95, index="exact")
    found = matcher.match(q, k=3)
    assert found.names == [["ann", "ben", "cid"]]      # not ann three times
    np.testing.assert_allclose(found.similarity[0], (m @ q[0])[[0, 3, 4]], atol=1e-6)
    assert found.best == ["ann"]
    assert GalleryMatcher(gm, threshold=0.999, index="exact").match(q).best == [None]
    _, lab, rows = group_top_k(*ExactSearch(m).search(q, 5), labels, 2)
    assert lab.tolist() == [[0, 1]] and rows.tolist() == [[0, 3]]


@pytest.mark.slow
def test_faiss_index_finds_the_exact_neighbours_of_noisy_copies():
    pytest.importorskip("faiss")
    from oko.vectors.faiss_index import FaissIndex

    rng = np.random.default_rng(5)
    matrix = unit(rng.standard_normal((20000, 64)))
    targets = rng.choice(len(matrix), 200, replace=False)
    queries = unit(matrix[targets] + 0.08 * rng.standard_normal((200, 64)).astype(np.float32))
    _, exact_i = ExactSearch(matrix).search(queries, 1)
    for kind in ("ivf-sq8", "ivf-flat", "hnsw"):
        index = FaissIndex(matrix, kind)
        scores, ids = index.search(queries, 5)
        recall = float((ids[:, 0] == exact_i[:, 0]).mean())
        assert recall >= 0.99, (kind, recall)
        # Re-ranked scores are the exact inner products of the returned rows.
        np.testing.assert_allclose(scores, np.einsum("qkd,qd->qk", matrix[ids], queries),
                                   atol=1e-5)
        assert (np.diff(scores, axis=1) <= 1e-7).all()
        assert index.memory_bytes() > 0


def test_missing_faiss_is_a_clear_error(monkeypatch):
    import builtins

    from oko.core.errors import ConfigError
    from oko.vectors import faiss_index as index

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ConfigError, match="pip install 'oko\\[faiss\\]'"):
        index.import_faiss()


# ---------------------------------------------------------------- verification metrics

def test_threshold_at_far_and_tar_known_answers():
    impostor = np.arange(1000, dtype=np.float32) / 1000      # 0.000 .. 0.999
    t = threshold_at_far(impostor, 1e-3)                     # one impostor may pass
    assert (impostor >= t).sum() == 1 and t > 0.998
    assert threshold_at_far(impostor, 1e-4) is None          # needs 10,000 impostors
    genuine = np.array([0.9995, 0.99, 0.5, 0.9991], np.float32)
    scores = np.concatenate([genuine, impostor])
    same = np.r_[np.ones(4, bool), np.zeros(1000, bool)]
    rep = verification_report(scores, same, threshold=0.6)
    assert rep.tar_at_far[0].tar == pytest.approx(2 / 4)    # 0.9995 and 0.9991 pass
    assert rep.tar_at_far[1].tar is None
    # At 0.6: 400 impostors (0.6..0.999) wrongly accepted, genuine 0.5 rejected.
    assert rep.accuracy == pytest.approx((1004 - 401) / 1004)
    assert rep.best_accuracy >= rep.accuracy


def test_pairs_file_and_folder_of_folders(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "pairs.txt").write_text("# comment\na.jpg b.jpg 1\nc.jpg, d.jpg, different\n")
    pairs = read_pairs(tmp_path / "pairs.txt")
    assert pairs.same.tolist() == [True, False] and pairs.a[0] == (tmp_path / "a.jpg").resolve()
    (tmp_path / "bad.txt").write_text("a.jpg b.jpg maybe\n")
    from oko.core.errors import ConfigError

    with pytest.raises(ConfigError, match="bad.txt:1"):
        read_pairs(tmp_path / "bad.txt")
    for person, n in (("ann", 2), ("ben", 3)):
        (tmp_path / "people" / person).mkdir(parents=True)
        for i in range(n):
            (tmp_path / "people" / person / f"{i}.jpg").write_bytes(b"x")
    pairs = read_pairs(tmp_path / "people")
    assert len(pairs.same) == 10 and pairs.same.sum() == 1 + 3   # C(5,2); genuine 1 + 3


def test_best_threshold_matches_a_brute_force_sweep():
    rng = np.random.default_rng(7)
    scores = np.round(rng.normal(0, 1, 400), 1)  # many ties
    same = rng.random(400) < 1 / (1 + np.exp(-3 * scores))
    rep = verification_report(scores, same, threshold=0.0)
    cands = np.unique(scores)
    cands = np.r_[cands[0] - 1, (cands[:-1] + cands[1:]) / 2, cands[-1] + 1]
    brute = max(((scores >= t) == same).mean() for t in cands)
    assert rep.best_accuracy == pytest.approx(brute)
    assert ((scores >= rep.best_threshold) == same).mean() == pytest.approx(brute)
