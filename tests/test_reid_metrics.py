"""Market-1501 ranking metrics on a hand-made set worked out by hand, a cross-check
against a straightforward per-query loop (torchreid's eval_market1501), parsing of the
dataset layout, and `oko reid eval` end to end on tiny generated JPEGs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from oko.core.errors import ConfigError, ModelNotFoundError, SourceError
from oko.reid.market import parse_name, read_market
from oko.reid.metrics import cosine_distance, evaluate_ranking

# Gallery: index -> (person id, camera)
#   g0 (1, c1)   g1 (1, c2)   g2 (2, c2)   g3 (0, c3) distractor
#   g4 (-1, c1) junk          g5 (2, c1)   g6 (1, c3)   g7 (3, c1)
G_PIDS = np.array([1, 1, 2, 0, -1, 2, 1, 3])
G_CAMS = np.array([1, 2, 2, 3, 1, 1, 3, 1])
# Queries: q0 (1, c1), q1 (2, c2), q2 (3, c1), q3 (1, c3)
Q_PIDS = np.array([1, 2, 3, 1])
Q_CAMS = np.array([1, 2, 1, 3])
#              g0    g1    g2    g3    g4    g5    g6    g7
DIST = np.array([
    [0.10, 0.40, 0.50, 0.30, 0.20, 0.70, 0.60, 0.80],  # q0
    [0.30, 0.40, 0.05, 0.50, 0.08, 0.10, 0.60, 0.70],  # q1
    [0.50, 0.40, 0.30, 0.20, 0.60, 0.70, 0.80, 0.10],  # q2
    [0.50, 0.60, 0.30, 0.40, 0.55, 0.35, 0.10, 0.20],  # q3
])
# q0 (1, c1): sorted g0 g4 g3 g1 g2 g6 g5 g7. g0 is the same person from the same camera:
#   left out; g4 is junk: left out. Kept: g3(distractor, a miss) g1(hit) g2 g6(hit) g5 g7.
#   Hits at ranks 2 and 4: first hit at rank 2; AP = (1/2 + 2/4) / 2 = 1/2.
# q1 (2, c2): sorted g2 g4 g5 ... g2 same person same camera: out; g4 junk: out.
#   Kept: g5(hit) g0 g1 g3 g6 g7. First hit at rank 1; AP = 1.
# q2 (3, c1): the only id-3 image, g7, is from camera 1 too: no valid match -> skipped.
# q3 (1, c3): sorted g6 g7 g2 g5 g3 g0 g4 g1. g6 same camera: out; g4 junk: out.
#   Kept: g7 g2 g5 g3(distractor) g0(hit) g1(hit). Hits at ranks 5 and 6;
#   AP = (1/5 + 2/6) / 2 = 4/15.
# Over the 3 evaluated queries: first hits at ranks 2, 1, 5 ->
#   rank-1 = 1/3, rank-2 = 2/3, rank-4 = 2/3, rank-5 = 3/3;
#   mAP = (1/2 + 1 + 4/15) / 3 = 53/90.


def test_hand_made_set() -> None:
    r = evaluate_ranking(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=8)
    assert (r.num_query, r.num_valid, r.num_skipped) == (4, 3, 1)
    assert r.rank1 == pytest.approx(1 / 3)
    assert r.rank(2) == pytest.approx(2 / 3)
    assert r.rank(4) == pytest.approx(2 / 3)
    assert r.rank5 == pytest.approx(1.0)
    assert r.mAP == pytest.approx(53 / 90)
    np.testing.assert_allclose(r.cmc, [1 / 3, 2 / 3, 2 / 3, 2 / 3, 1, 1, 1, 1])


def test_hand_made_set_chunking_and_max_rank_do_not_matter() -> None:
    a = evaluate_ranking(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=8)
    b = evaluate_ranking(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=3, chunk=1)
    assert b.mAP == pytest.approx(a.mAP)
    np.testing.assert_allclose(b.cmc, a.cmc[:3])
    assert b.rank5 == b.rank(3)  # rank-5 falls back to the last rank computed


def test_junk_and_exclusions_change_the_answer() -> None:
    # If junk g4 were a normal negative (id 9), it would push hits down by one rank where
    # it sorts before them: q0 hits at ranks 3 and 5, q1 at rank 2, q3 at 5 and 7.
    g_pids = G_PIDS.copy()
    g_pids[4] = 9
    r = evaluate_ranking(DIST, Q_PIDS, g_pids, Q_CAMS, G_CAMS)
    assert r.mAP == pytest.approx(((1 / 3 + 2 / 5) / 2 + 1 / 2 + (1 / 5 + 2 / 7) / 2) / 3)
    assert r.rank1 == 0.0
    # Distractors are negatives: relabelling g3 as junk lifts q0's first hit to rank 1.
    g_pids = G_PIDS.copy()
    g_pids[3] = -1
    r = evaluate_ranking(DIST, Q_PIDS, g_pids, Q_CAMS, G_CAMS)
    assert r.rank1 == pytest.approx(2 / 3)


def test_no_valid_query_and_identityless_queries() -> None:
    r = evaluate_ranking(DIST[2:3], Q_PIDS[2:3], G_PIDS, Q_CAMS[2:3], G_CAMS)
    assert (r.num_valid, r.num_skipped, r.mAP) == (0, 1, 0.0)
    assert r.rank1 == 0.0
    # A distractor or junk query has no identity to find, even though g3 has id 0.
    r = evaluate_ranking(DIST[:2], np.array([0, -1]), G_PIDS, np.array([1, 2]), G_CAMS)
    assert (r.num_valid, r.num_skipped) == (0, 2)


def test_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="does not match"):
        evaluate_ranking(DIST, Q_PIDS[:3], G_PIDS, Q_CAMS, G_CAMS)


def _reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """torchreid's eval_market1501, with junk -1 removed as its Market loader does."""
    g_keep = g_pids != -1
    distmat, g_pids, g_camids = distmat[:, g_keep], g_pids[g_keep], g_camids[g_keep]
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, None]).astype(np.int32)
    all_cmc, all_ap = [], []
    for i in range(len(q_pids)):
        order = indices[i]
        remove = (g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i])
        raw = matches[i][~remove]
        if not raw.any():
            continue
        cmc = raw.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        tmp = raw.cumsum() / (np.arange(len(raw)) + 1.0) * raw
        all_ap.append(tmp.sum() / raw.sum())
    return np.mean(all_cmc, axis=0), float(np.mean(all_ap)), len(all_ap)


def test_matches_reference_loop_on_random_data() -> None:
    rng = np.random.default_rng(7)
    nq, ng = 60, 400
    q_pids = rng.integers(1, 30, nq)
    g_pids = rng.integers(-1, 30, ng)
    q_cams = rng.integers(1, 7, nq)
    g_cams = rng.integers(1, 7, ng)
    dist = rng.random((nq, ng))
    cmc, m_ap, n = _reference(dist, q_pids, g_pids, q_cams, g_cams, 20)
    r = evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams, max_rank=20, chunk=7)
    assert r.num_valid == n
    np.testing.assert_allclose(r.cmc, cmc)
    assert r.mAP == pytest.approx(m_ap)


def test_cosine_distance() -> None:
    q = np.array([[1.0, 0.0], [0.0, 2.0]])
    g = np.array([[3.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(cosine_distance(q, g),
                               [[0, 1 - 2 ** -0.5], [1, 1 - 2 ** -0.5]], atol=1e-6)


# --- dataset layout ---------------------------------------------------------------------

def _jpeg(path: Path, bgr: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((32, 16, 3), np.uint8)
    img[:16] = bgr
    img[16:] = (bgr[2], bgr[1], bgr[0])
    assert cv2.imwrite(str(path), img)


def _dataset(root: Path) -> Path:
    # Person 1 wears red-over-blue, person 2 green-over-magenta.
    red, green = (30, 30, 220), (40, 200, 40)
    _jpeg(root / "query" / "0001_c1s1_000151_01.jpg", red)
    _jpeg(root / "query" / "0002_c2s1_000301_00.jpg", green)
    g = root / "bounding_box_test"
    _jpeg(g / "0001_c1s1_000160_01.jpg", red)  # same camera: left out
    _jpeg(g / "0001_c3s2_004521_02.jpg", red)
    _jpeg(g / "0002_c1s1_000200_00.jpg", green)
    _jpeg(g / "0000_c4s3_012345_07.jpg", (128, 128, 128))  # distractor
    _jpeg(g / "-1_c2s1_000999_03.jpg", red)  # junk
    (g / "Thumbs.db").write_bytes(b"not an image")
    return root


def test_parse_name() -> None:
    im = parse_name("/x/0002_c1s1_000451_03.jpg")
    assert (im.pid, im.camid, im.seq, im.frame, im.box) == (2, 1, 1, 451, 3)
    assert parse_name("-1_c6s2_118618_04.jpg").pid == -1
    assert parse_name("0000_c3s1_000000_00.jpg").pid == 0
    for bad in ("0002_c1_000451_03.jpg", "2_c1s1_000451_03.jpg", "0002_c0s1_000451_03.jpg",
                "person.jpg"):
        with pytest.raises(ConfigError, match=bad.replace(".", r"\.")):
            parse_name(bad)


def test_read_market(tmp_path: Path) -> None:
    data = read_market(_dataset(tmp_path))
    assert len(data.query) == 2 and len(data.gallery) == 5  # Thumbs.db ignored
    assert sorted(data.gallery.pids.tolist()) == [-1, 0, 1, 1, 2]
    assert data.query.camids.tolist() == [1, 2]
    assert all(p.exists() for p in data.gallery.paths)


def test_read_market_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="dataset folder not found"):
        read_market(tmp_path / "nope")
    (tmp_path / "query").mkdir()
    with pytest.raises(SourceError, match="query: no .jpg images"):
        read_market(tmp_path)
    _jpeg(tmp_path / "query" / "0001_c1s1_000151_01.jpg", (0, 0, 255))
    with pytest.raises(SourceError, match="bounding_box_test: folder not found"):
        read_market(tmp_path)
    _jpeg(tmp_path / "bounding_box_test" / "holiday photo.jpg", (0, 0, 255))
    with pytest.raises(ConfigError, match="holiday photo.jpg: not a Market-1501 file name"):
        read_market(tmp_path)


def test_cli_eval(tmp_path: Path) -> None:
    from oko.reid.cli import app

    root = _dataset(tmp_path)
    result = CliRunner().invoke(app, ["eval", str(root), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["rank1"] == 1.0 and out["rank5"] == 1.0 and out["mAP"] == 1.0
    assert (out["queries"], out["queries_evaluated"], out["queries_skipped"]) == (2, 2, 0)
    assert (out["gallery"], out["gallery_junk"], out["gallery_distractors"]) == (5, 1, 1)
    table = CliRunner().invoke(app, ["eval", str(root)])
    assert table.exit_code == 0 and "rank1" in table.output and "mAP" in table.output


def test_cli_eval_errors(tmp_path: Path) -> None:
    from oko.reid.cli import app

    root = _dataset(tmp_path)
    result = CliRunner().invoke(app, ["eval", str(root), "--model", "osnet.onnx"])
    assert isinstance(result.exception, ModelNotFoundError)  # checked before any image
    assert "osnet.onnx" in str(result.exception)
    (root / "query" / "0003_c1s1_000001_00.jpg").write_bytes(b"broken")
    result = CliRunner().invoke(app, ["eval", str(root)])
    assert isinstance(result.exception, SourceError)
    assert "0003_c1s1_000001_00.jpg: cannot read image" in str(result.exception)
