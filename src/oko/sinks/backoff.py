"""Exponential backoff with jitter, capped: how long a sink waits before trying again."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial_s * 2**n`` capped at ``max_s``, with "equal jitter".

    Each delay is drawn uniformly from ``[d/2, d]`` where ``d`` is the capped exponential
    step, so many edge nodes that lost the same receiver do not retry in lockstep, and a
    delay is never shorter than half the step. :meth:`reset` after a success.
    """

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError(f"backoff needs 0 < initial_s <= max_s, got {initial_s}, {max_s}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.attempts = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt (and count this failure)."""
        step = min(self.max_s, self.initial_s * 2.0 ** min(self.attempts, 62))
        self.attempts += 1
        return step / 2 + self._rng.uniform(0.0, step / 2)

    def reset(self) -> None:
        self.attempts = 0
