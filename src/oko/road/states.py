"""Windowed averages and state changes with hysteresis for per-frame road figures.

A figure that flickers around a threshold must not send an event per frame: a new state
is announced only after it has held for ``hold_s`` seconds (stream time), and two-level
states (snow on at ``on``, off below ``off``) need the value to cross the far threshold.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class WindowAverage:
    """Mean of each numeric figure over the last ``window_s`` seconds."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._items: deque[tuple[float, dict[str, float]]] = deque()
        self._sums: dict[str, float] = {}

    def add(self, t: float, figures: dict[str, float]) -> dict[str, float]:
        self._items.append((t, figures))
        for k, v in figures.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        while self._items and t - self._items[0][0] > self.window_s:
            _, old = self._items.popleft()
            for k, v in old.items():
                self._sums[k] -= v
        n = len(self._items)
        return {k: round(v / n, 4) for k, v in self._sums.items()}


class HeldState:
    """A discrete state that changes only after the new value held for ``hold_s``."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.state: Any = None
        self._candidate: Any = None
        self._since = 0.0

    def update(self, t: float, value: Any) -> tuple[Any, Any] | None:
        """(previous, new) when the state changes at ``t``; the first value sets it."""
        if self.state is None:
            self.state = value
            return None
        if value == self.state:
            self._candidate = None
            return None
        if value != self._candidate:
            self._candidate, self._since = value, t
        if t - self._since >= self.hold_s:
            previous, self.state, self._candidate = self.state, value, None
            return previous, value
        return None


def two_level(current: bool | None, value: float, on: float, off: float) -> bool:
    """Hysteresis: on from ``on``, back off only below ``off``."""
    if current:
        return value >= off
    return value >= on
