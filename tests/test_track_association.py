"""Association functions: IoU, gated assignment, OC-SORT's direction term."""

from __future__ import annotations

import numpy as np

from oko.core.geometry import box_iou
from oko.track.association import (
    direction_consistency,
    iou_matrix,
    linear_assignment,
    row_directions,
)


def test_iou_matrix_matches_core_box_iou() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 500, (7, 4))
    a[:, 2:] = a[:, :2] + rng.uniform(5, 120, (7, 2))
    b = np.concatenate([a[:3] + rng.normal(0, 10, (3, 4)), a[4:5] + 200.0])
    np.testing.assert_allclose(iou_matrix(a, b), box_iou(a, b), atol=1e-6)
    assert iou_matrix(a, b[:0]).shape == (7, 0)


def test_zero_area_boxes_have_zero_iou() -> None:
    iou = iou_matrix(np.array([[0.0, 0, 0, 0]]), np.array([[0.0, 0, 0, 0], [0, 0, 1, 1]]))
    np.testing.assert_array_equal(iou, [[0.0, 0.0]])


def test_assignment_reads_off_unambiguous_pairs() -> None:
    score = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8]])
    rows, cols = linear_assignment(score, score >= 0.3)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (1, 2)]


def test_assignment_maximises_total_score_among_allowed_pairs() -> None:
    # Greedy would give row 0 column 0 (0.9) and leave row 1 with nothing allowed.
    score = np.array([[0.9, 0.8], [0.85, 0.1]])
    rows, cols = linear_assignment(score, score >= 0.3)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_assignment_never_returns_disallowed_pairs() -> None:
    score = np.array([[0.9, 0.95], [0.05, 0.2]])
    allowed = np.array([[True, True], [False, False]])
    rows, cols = linear_assignment(score, allowed)
    assert rows.tolist() == [0] and cols.tolist() == [1]
    rows, cols = linear_assignment(np.zeros((0, 3)), np.zeros((0, 3), bool))
    assert len(rows) == len(cols) == 0


def test_direction_term_rewards_detections_ahead() -> None:
    velocity = np.array([[0.0, 1.0]] * 3 + [[0.0, 0.0]])  # (dy, dx): moving right; unknown
    previous = np.array([[0.0, 0.0, 10.0, 10.0]] * 4)
    dets = np.array([[20.0, 0, 30, 10], [-20.0, 0, -10, 10], [0.0, 20, 10, 30],
                     [20.0, 0, 30, 10]])
    term = direction_consistency(velocity, previous, dets)
    np.testing.assert_allclose(term, [0.5, -0.5, 0.0, 0.0], atol=1e-3)


def test_row_directions_are_unit_dy_dx() -> None:
    src = np.array([[0.0, 0, 2, 2], [0.0, 0, 2, 2]])
    dst = np.array([[3.0, 4, 5, 6], [0.0, 0, 2, 2]])
    np.testing.assert_allclose(row_directions(src, dst), [[0.8, 0.6], [0.0, 0.0]], atol=1e-6)
