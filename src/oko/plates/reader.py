"""Reading rectified plates: the recogniser interface and the CTC implementation.

A reader turns upright plate images into :class:`CharRead` objects: the symbols read,
left to right and top line first, and per character a probability for each of the 36
plate symbols. Keeping the whole distribution (not only the winner) lets formats correct
look-alikes with the reader's own evidence and lets votes across frames use it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from oko.models.ctc import ctc_greedy
from oko.models.recognizer import TextRecognizer
from oko.plates.alphabet import N_SYMBOLS, projection, to_text
from oko.plates.rectify import side_by_side, split_lines


@dataclass(frozen=True, eq=False)
class CharRead:
    """What a reader saw on one plate."""

    symbols: np.ndarray   # int (n,) indices into alphabet.SYMBOLS
    probs: np.ndarray     # float32 (n, 36) per-character probabilities
    lines: int = 1        # 1 or 2 text lines on the plate

    @property
    def text(self) -> str:
        return to_text(self.symbols)

    @property
    def confidences(self) -> np.ndarray:
        return self.probs[np.arange(len(self.symbols)), self.symbols] if len(self.symbols) \
            else np.zeros(0, np.float32)

    def __len__(self) -> int:
        return len(self.symbols)


class PlateReader(ABC):
    """Reads upright plate images (BGR uint8)."""

    #: True when the reader finds the line layout itself (a character detector); False
    #: when the caller must say whether to read a plate as one line or as two.
    detects_lines: bool = False

    @abstractmethod
    def read(self, plates: Sequence[np.ndarray], lines: Sequence[int]) -> list[CharRead]:
        """One read per plate; ``lines[i]`` (1 or 2) is how to read plate i."""


class CtcPlateReader(PlateReader):
    """A CTC text recogniser (PP-OCR by default) restricted to the plate alphabet.

    The recogniser's scores are summed per plate symbol (``a``, ``A`` and Cyrillic ``А``
    all count for ``A``); everything else it knows (Chinese, punctuation, the space) is
    pooled into one silent class that separates characters but emits nothing, so frame
    marks and flags do not turn into letters. Two-line plates are cut at their line gap
    and read as one line, top line first.
    """

    def __init__(self, recognizer: TextRecognizer, line_height: int | None = None) -> None:
        self.recognizer = recognizer
        self.line_height = line_height or recognizer.adapter.spec.height
        proj = projection(recognizer.charset)
        proj[recognizer.blank] = 0.0
        # Only the few classes that are plate symbols are gathered (about 80 of PP-OCR's
        # 6,625), then summed per symbol: a small matmul instead of a 6,625-wide one.
        self._cols = np.flatnonzero(proj.any(axis=1))
        self._proj = proj[self._cols]

    def read(self, plates: Sequence[np.ndarray], lines: Sequence[int]) -> list[CharRead]:
        if not len(plates):
            return []
        lines = list(lines)
        images = list(plates)
        two = [i for i, n in enumerate(lines) if n == 2]
        if two:
            rows = split_lines([plates[i] for i in two])
            for i, row in zip(two, rows, strict=True):
                images[i] = side_by_side(plates[i], int(row), self.line_height)
        probs = self.recognizer(images)                               # (B, T, C)
        b, t, _ = probs.shape
        sym = (probs[..., self._cols].reshape(b * t, -1) @ self._proj).reshape(b, t, -1)
        blank = probs[..., self.recognizer.blank:self.recognizer.blank + 1]
        other = np.clip(1.0 - blank - sym.sum(axis=-1, keepdims=True), 0.0, None)
        pooled = np.concatenate([blank, sym, other], axis=-1)         # (B, T, 38)
        reads = []
        for (labels, run_max), n in zip(ctc_greedy(pooled, 0, silent=(N_SYMBOLS + 1,)), lines,
                                        strict=True):
            reads.append(CharRead((labels - 1).astype(np.int64),
                                  run_max[:, 1:1 + N_SYMBOLS].astype(np.float32), n))
        return reads
