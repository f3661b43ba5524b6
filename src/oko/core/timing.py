"""Per-stage timing that travels with the data it measured."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from types import TracebackType


class StageTimer:
    """Context manager adding elapsed milliseconds to ``sink[stage]``.

    >>> timings = {}
    >>> with StageTimer(timings, "pre"):
    ...     pass
    """

    __slots__ = ("_sink", "_stage", "_start")

    def __init__(self, sink: MutableMapping[str, float], stage: str) -> None:
        self._sink = sink
        self._stage = stage
        self._start = 0.0

    def __enter__(self) -> StageTimer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        elapsed_ms = (time.perf_counter() - self._start) * 1000.0
        self._sink[self._stage] = self._sink.get(self._stage, 0.0) + elapsed_ms
