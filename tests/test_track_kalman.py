"""The batched block-diagonal Kalman filters against a textbook dense filter."""

from __future__ import annotations

import numpy as np
import pytest

from oko.track.kalman import (
    VALUE,
    VELOCITY,
    BoxKalman,
    XYAHKalman,
    XYSRKalman,
    dense_covariance,
    mean,
    transition,
)


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 1000, (n, 2))
    wh = rng.uniform(20, 200, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


class _Dense:
    """One textbook Kalman filter per track with full 8x8 matrices (the reference)."""

    def __init__(self, kf: BoxKalman, x0: np.ndarray) -> None:
        self.kf = kf
        self.m = mean(x0).copy()
        self.P = dense_covariance(x0)

    def predict(self, step: float) -> None:
        f = np.eye(8)
        f[np.arange(4), np.arange(4) + 4] = step
        q = self.kf.process_noise(self._x())
        q = np.broadcast_to(q, (len(self.m), 5, 4))
        qd = np.zeros((len(self.m), 8, 8))
        i = np.arange(4)
        qd[:, i, i] = q[:, 2]
        qd[:, i + 4, i + 4] = q[:, 4]
        self.m = self.m @ f.T
        self.P = f @ self.P @ f.T + step * qd

    def update(self, z: np.ndarray) -> None:
        h = np.zeros((4, 8))
        h[np.arange(4), np.arange(4)] = 1.0
        r = np.broadcast_to(self.kf.measurement_noise(self._x()), (len(self.m), 4))
        for k in range(len(self.m)):
            s = h @ self.P[k] @ h.T + np.diag(r[k])
            gain = self.P[k] @ h.T @ np.linalg.inv(s)
            self.m[k] = self.m[k] + gain @ (z[k] - h @ self.m[k])
            self.P[k] = (np.eye(8) - gain @ h) @ self.P[k]

    def _x(self) -> np.ndarray:
        x = np.zeros((len(self.m), 5, 4))
        x[:, VALUE] = self.m[:, :4]
        x[:, VELOCITY] = self.m[:, 4:]
        return x


@pytest.mark.parametrize("kf", [XYSRKalman(), XYAHKalman()], ids=["xysr", "xyah"])
def test_block_filter_matches_dense_filter(kf: BoxKalman) -> None:
    rng = np.random.default_rng(0)
    boxes = _boxes(rng, 6)
    x = kf.initiate(boxes)
    ref = _Dense(kf, x)
    velocity = np.tile(rng.normal(0, 3, (6, 2)), 2)  # boxes move, keep their size
    for step in (1.0, 1.0, 2.0, 0.5, 1.0, 3.0, 1.0):
        x = kf.predict(x, step)
        ref.predict(step)
        boxes = boxes + velocity * step + rng.normal(0, 1, boxes.shape)
        kf.update(x, boxes)
        ref.update(kf.encode(boxes))
        np.testing.assert_allclose(mean(x), ref.m, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(dense_covariance(x), ref.P, rtol=1e-9, atol=1e-9)


def test_per_row_steps_equal_scalar_steps() -> None:
    kf = XYSRKalman()
    rng = np.random.default_rng(1)
    x = kf.predict(kf.initiate(_boxes(rng, 4)))
    kf.update(x, _boxes(rng, 4))
    steps = np.array([1.0, 2.0, 0.5, 3.0])
    both = kf.predict(x, steps)
    for i, s in enumerate(steps):
        np.testing.assert_allclose(both[i], kf.predict(x[i:i + 1], float(s))[0])


def test_transition_is_the_constant_velocity_model() -> None:
    a = transition(2.0)
    # value' = value + 2 v ; var' = var + 4 cov + 4 var_vel ; cov' = cov + 2 var_vel
    np.testing.assert_allclose(a @ np.array([1.0, 3.0, 1.0, 1.0, 1.0]), [7, 3, 9, 3, 1])


@pytest.mark.parametrize("kf", [XYSRKalman(), XYAHKalman()], ids=["xysr", "xyah"])
def test_encode_decode_round_trip(kf: BoxKalman) -> None:
    boxes = _boxes(np.random.default_rng(2), 10)
    np.testing.assert_allclose(kf.decode(kf.initiate(boxes)), boxes, atol=1e-3)


def test_encodings() -> None:
    box = np.array([[10.0, 20.0, 50.0, 100.0]])  # w 40, h 80
    np.testing.assert_allclose(XYSRKalman().encode(box), [[30, 60, 3200, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(XYAHKalman().encode(box), [[30, 60, 0.5, 80]])


def test_shrinking_area_stops_at_zero() -> None:
    kf = XYSRKalman()
    x = kf.initiate(np.array([[0.0, 0.0, 10.0, 10.0]]))
    x[0, VELOCITY, 2] = -150.0  # area 100 would go negative
    out = kf.predict(x)
    assert out[0, VALUE, 2] == 100.0 and out[0, VELOCITY, 2] == 0.0
    assert np.isfinite(kf.decode(out)).all()
