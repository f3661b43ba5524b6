"""Constant-velocity Kalman filters over all tracks at once (struct of arrays).

The state of T tracks is one float64 array ``x`` of shape ``(T, 5, 4)``: for each of the
four measured box coordinates (the columns), five rows

    VALUE, VELOCITY, VAR (value variance), COV (value-velocity covariance), VAR_VEL

so ``mean(x)`` is the usual ``(T, 8)`` state (4 values then 4 velocities, a view) and
``x[:, VAR:]`` the covariances. Why not ``(T, 8, 8)`` covariance matrices: the transition
couples each coordinate only with its own velocity, the measurement picks the values, and
the initial, process and measurement covariances are diagonal. Under these conditions
the covariance stays block-diagonal, one symmetric 2x2 block per coordinate, and the
filter equations become exact element-wise formulas (prediction is even linear in ``x``:
one ``(5, 5)`` matrix product for all tracks). :func:`dense_covariance` rebuilds the full
matrices; the tests compare against a textbook dense filter.

Two box encodings:

* :class:`XYSRKalman`: centre x, centre y, area s, aspect ratio r = w / h, with the
  noise values of SORT and OC-SORT. The ratio has no velocity (its velocity variance
  stays 0), which is exactly the 7-dimensional filter of the reference code.
* :class:`XYAHKalman`: centre x, centre y, aspect ratio a = w / h, height h, with the
  height-relative noise of DeepSORT and ByteTrack.

Time: one step is one frame at the rate the noise values were tuned for (30 fps in the
trackers' configs). ``predict(x, step)`` takes any step, e.g. 2.0 after a dropped frame
or 0.5 at 60 fps, per track if need be; process noise grows in proportion to the step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

VALUE, VELOCITY, VAR, COV, VAR_VEL = range(5)

# xyxy @ _TO_CWH = (centre x, centre y, w, h); (cx, cy, w, h) @ _FROM_CWH = xyxy.
_TO_CWH = np.array([[0.5, 0, -1, 0], [0, 0.5, 0, -1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]])
_FROM_CWH = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]])


def transition(step: float) -> np.ndarray:
    """The (5, 5) matrix mapping each coordinate's five rows through ``x' = F x``,
    ``P' = F P F'`` with ``F = [[1, step], [0, 1]]`` (process noise added separately)."""
    return np.array([
        [1.0, step, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 2.0 * step, step * step],
        [0.0, 0.0, 0.0, 1.0, step],
        [0.0, 0.0, 0.0, 0.0, 1.0],
    ])


_STEP1 = transition(1.0)


def mean(x: np.ndarray) -> np.ndarray:
    """The ``(T, 8)`` state means (values, then velocities), a view of ``x``."""
    return x[:, :2].reshape(len(x), 8)


def dense_covariance(x: np.ndarray) -> np.ndarray:
    """The full ``(T, 8, 8)`` covariance matrices."""
    out = np.zeros((len(x), 8, 8))
    i = np.arange(4)
    out[:, i, i] = x[:, VAR]
    out[:, i, i + 4] = x[:, COV]
    out[:, i + 4, i] = x[:, COV]
    out[:, i + 4, i + 4] = x[:, VAR_VEL]
    return out


class BoxKalman(ABC):
    """Box encoding and noise model of a batched constant-velocity filter."""

    @abstractmethod
    def encode(self, xyxy: np.ndarray) -> np.ndarray:
        """Measurements ``(n, 4)`` of xyxy boxes."""

    @abstractmethod
    def decode(self, x: np.ndarray) -> np.ndarray:
        """xyxy boxes ``(n, 4)`` of states ``(n, 5, 4)``."""

    @abstractmethod
    def initial_variance(self, z: np.ndarray) -> np.ndarray:
        """Value and velocity variances ``(n, 2, 4)`` of tracks started at ``z``."""

    @abstractmethod
    def process_noise(self, x: np.ndarray) -> np.ndarray:
        """Noise added per step, broadcastable to ``(n, 5, 4)`` (zero on rows 0, 1, 3)."""

    @abstractmethod
    def measurement_noise(self, x: np.ndarray) -> np.ndarray:
        """Measurement variances, broadcastable to ``(n, 4)``."""

    def initiate(self, xyxy: np.ndarray) -> np.ndarray:
        """States ``(n, 5, 4)`` at the boxes, velocity zero."""
        z = self.encode(xyxy)
        x = np.zeros((len(z), 5, 4))
        x[:, VALUE] = z
        x[:, (VAR, VAR_VEL)] = self.initial_variance(z)
        return x

    def predict(self, x: np.ndarray, step: float | np.ndarray = 1.0) -> np.ndarray:
        """States advanced by ``step`` frames (a number, or one per row); a new array."""
        q = self.process_noise(x)
        if isinstance(step, np.ndarray):
            # Per-row steps: the rows of F x written out, since F differs per row.
            s = step[:, None]
            out = x.copy()
            out[:, VALUE] += s * x[:, VELOCITY]
            out[:, VAR] += s * (2.0 * x[:, COV] + s * x[:, VAR_VEL])
            out[:, COV] += s * x[:, VAR_VEL]
            out += s[:, None] * q
            return out
        out = (_STEP1 if step == 1.0 else transition(step)) @ x
        out += q if step == 1.0 else step * q
        return out

    def update(self, x: np.ndarray, xyxy: np.ndarray) -> None:
        """Correct states with measured boxes (one per row), in place."""
        self.update_encoded(x, self.encode(xyxy))

    def update_encoded(self, x: np.ndarray, z: np.ndarray) -> None:
        """Correct states with measurements ``z`` (n, 4) already encoded, in place."""
        r = self.measurement_noise(x)
        r = r[:, None] if r.ndim == 1 else r.T
        # Work on a quantity-major copy (5, 4, n): its rows are contiguous, which makes
        # these small element-wise operations cheaper than on strided (n, 4) views.
        q = x.transpose(1, 2, 0).copy()
        inv_s = 1.0 / (q[VAR] + r)
        y = (z.T - q[VALUE]) * inv_s                 # innovation / S
        q[VALUE] += q[VAR] * y                       # + K y, K = P H' / S
        q[VELOCITY] += q[COV] * y
        q[VAR_VEL] -= q[COV] * q[COV] * inv_s        # P - K H P, block by block
        r_s = r * inv_s
        q[VAR] *= r_s
        q[COV] *= r_s
        x[...] = q.transpose(2, 0, 1)


class XYSRKalman(BoxKalman):
    """SORT / OC-SORT filter: state (x, y, s, r) with noise in pixels, as the reference.

    Reference values: R = diag(1, 1, 10, 10); P0 = 10 on the box, 1e4 on velocities;
    Q = 1 on the box, 0.01 on x/y velocities, 1e-4 on the area velocity. The ratio has no
    velocity, so its velocity variances are 0 and prediction never changes it.
    """

    _R = np.array([1.0, 1.0, 10.0, 10.0])
    _P0 = np.array([[10.0, 10.0, 10.0, 10.0], [1e4, 1e4, 1e4, 0.0]])
    _Q = np.zeros((5, 4))
    _Q[VAR] = 1.0
    _Q[VAR_VEL] = np.array([1e-2, 1e-2, 1e-4, 0.0])

    def encode(self, xyxy: np.ndarray) -> np.ndarray:
        z = xyxy @ _TO_CWH
        area = z[:, 2] * z[:, 3]
        z[:, 3] = z[:, 2] / (z[:, 3] + 1e-6)
        z[:, 2] = area
        return z

    def decode(self, x: np.ndarray) -> np.ndarray:
        cwh = x[:, VALUE].copy()
        # Area and ratio stay positive (see predict); the floor only guards degenerate input.
        w = np.sqrt(np.maximum(cwh[:, 2] * cwh[:, 3], 1e-12))
        cwh[:, 3] = cwh[:, 2] / w
        cwh[:, 2] = w
        return cwh @ _FROM_CWH

    def initial_variance(self, z: np.ndarray) -> np.ndarray:
        return self._P0

    def process_noise(self, x: np.ndarray) -> np.ndarray:
        return self._Q

    def measurement_noise(self, x: np.ndarray) -> np.ndarray:
        return self._R

    def predict(self, x: np.ndarray, step: float | np.ndarray = 1.0) -> np.ndarray:
        out = super().predict(x, step)
        # An area that would shrink to zero or below stops shrinking instead (as SORT).
        shrunk = out[:, VALUE, 2] <= 0
        if shrunk.any():
            out[shrunk, VALUE, 2] = x[shrunk, VALUE, 2]
            out[shrunk, VELOCITY, 2] = 0.0
        return out


class XYAHKalman(BoxKalman):
    """DeepSORT / ByteTrack filter: state (x, y, a, h), noise proportional to the height.

    Standard deviations are ``std_position * h`` (x 2 at the start) on x, y, h and
    ``std_velocity * h`` (x 10 at the start) on their velocities; the aspect ratio has
    small fixed ones, as in the reference.
    """

    std_position = 1.0 / 20
    std_velocity = 1.0 / 160
    _ON_XYH = np.array([1.0, 1.0, 0.0, 1.0])  # the terms that scale with h
    # Variances are (h^2 * weight + fixed), rows as in the state array.
    _W0 = np.stack([_ON_XYH * (2 * std_position) ** 2, _ON_XYH * (10 * std_velocity) ** 2])
    _F0 = np.array([[0.0, 0.0, 1e-2 ** 2, 0.0], [0.0, 0.0, 1e-5 ** 2, 0.0]])
    _WQ = np.zeros((5, 4))
    _WQ[VAR] = _ON_XYH * std_position ** 2
    _WQ[VAR_VEL] = _ON_XYH * std_velocity ** 2
    _FQ = np.zeros((5, 4))
    _FQ[VAR, 2] = 1e-2 ** 2
    _FQ[VAR_VEL, 2] = 1e-5 ** 2
    _WR = _ON_XYH * std_position ** 2
    _FR = np.array([0.0, 0.0, 1e-1 ** 2, 0.0])

    def encode(self, xyxy: np.ndarray) -> np.ndarray:
        z = xyxy @ _TO_CWH
        z[:, 2] /= np.maximum(z[:, 3], 1e-6)
        return z

    def decode(self, x: np.ndarray) -> np.ndarray:
        cwh = x[:, VALUE].copy()
        cwh[:, 2] *= cwh[:, 3]
        return cwh @ _FROM_CWH

    def initial_variance(self, z: np.ndarray) -> np.ndarray:
        h2 = z[:, 3] * z[:, 3]
        return h2[:, None, None] * self._W0 + self._F0

    def process_noise(self, x: np.ndarray) -> np.ndarray:
        h = x[:, VALUE, 3]
        return (h * h)[:, None, None] * self._WQ + self._FQ

    def measurement_noise(self, x: np.ndarray) -> np.ndarray:
        h = x[:, VALUE, 3]
        return (h * h)[:, None] * self._WR + self._FR
