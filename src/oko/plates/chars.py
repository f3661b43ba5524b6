"""Reading plates with a per-character detector (a YOLO whose classes are characters).

Many plate readers ported to edge boxes detect each character as an object; the text is
then the characters in reading order. :func:`order_characters` finds that order for one-
and two-line plates: a two-line plate shows a gap in the characters' vertical positions
much larger than the jitter inside a line (more than ``line_gap`` of a character's
height); the top line is read first, each line left to right.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oko.models.detector import Detector
from oko.plates.alphabet import N_SYMBOLS, symbol_of
from oko.plates.reader import CharRead, PlateReader


def order_characters(xyxy: np.ndarray, line_gap: float = 0.6) -> tuple[np.ndarray, int]:
    """(reading order as row indices, number of lines) of character boxes on a plate."""
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, np.int64), 1
    cx = 0.5 * (boxes[:, 0] + boxes[:, 2])
    cy = 0.5 * (boxes[:, 1] + boxes[:, 3])
    height = float(np.median(boxes[:, 3] - boxes[:, 1]))
    by_y = np.argsort(cy, kind="stable")
    gaps = np.diff(cy[by_y])
    if n >= 2 and gaps.max() > line_gap * height:
        cut = int(gaps.argmax()) + 1
        top, bottom = by_y[:cut], by_y[cut:]
        order = np.concatenate([top[np.argsort(cx[top], kind="stable")],
                                bottom[np.argsort(cx[bottom], kind="stable")]])
        return order.astype(np.int64), 2
    return np.argsort(cx, kind="stable").astype(np.int64), 1


class CharDetectorReader(PlateReader):
    """Reads plates with a character detector; its labels are characters (Latin, digits or
    Cyrillic; anything else is ignored). Per-character probabilities are one-hot at the
    detection score: a detector gives no alternatives, so look-alikes are corrected
    through the format's confusion table alone."""

    detects_lines = True

    def __init__(self, detector: Detector, line_gap: float = 0.6) -> None:
        self.detector = detector
        self.line_gap = line_gap
        self._symbol = np.array([symbol_of(str(name)) for name in detector.labels], np.int64)

    def read(self, plates: Sequence[np.ndarray], lines: Sequence[int]) -> list[CharRead]:
        reads = []
        for dets in self.detector(list(plates)):
            sym = self._symbol[dets.class_id] if len(dets) else np.zeros(0, np.int64)
            keep = sym >= 0
            order, n_lines = order_characters(dets.xyxy[keep], self.line_gap)
            sym, conf = sym[keep][order], dets.confidence[keep][order]
            probs = np.zeros((len(sym), N_SYMBOLS), np.float32)
            probs[np.arange(len(sym)), sym] = conf
            reads.append(CharRead(sym, probs, n_lines))
        return reads
