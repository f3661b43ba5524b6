"""A decoded video frame travelling through the pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(slots=True)
class Frame:
    """One decoded image of one channel.

    ``image`` is uint8 HxWx3 in BGR order (OpenCV's). ``timestamp`` is seconds from the
    start of the stream (media time for files, wall-clock offset for live sources).
    ``timings`` collects milliseconds per stage (``decode``, ``pre``, ``infer``, ``post``,
    ...), written by :class:`oko.core.timing.StageTimer`.
    """

    image: np.ndarray
    channel_id: str
    index: int
    timestamp: float
    timings: dict[str, float] = field(default_factory=dict)
    received: float = field(default_factory=time.monotonic)  # when decoded (latency)
    # Frame-level results of a module (road lighting, snow cover, ...), JSON-ready.
    scene: dict[str, Any] = field(default_factory=dict)
    # A BGR image the size of ``image`` blended into annotated output (a class map).
    overlay: np.ndarray | None = None

    def __post_init__(self) -> None:
        img = self.image
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3
                and img.shape[2] == 3):
            shape = getattr(img, "shape", None)
            dtype = getattr(img, "dtype", type(img).__name__)
            raise ValueError(f"Frame.image must be uint8 HxWx3 BGR, got shape={shape} dtype={dtype}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
