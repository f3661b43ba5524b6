"""Which format (country and kind) a read is, and its corrected text.

:class:`FormatClassifier` is the interface (a learned classifier, e.g. one looking at the
plate's colours, can replace it); :class:`TemplateClassifier`, the default, scores every
template of the configured formats against the read and keeps the best:

    score = prior x layout x prod(corrected character probabilities) x prod(1 - p(dropped))

Correction is per position (``correction.correct``): the best symbol the template allows,
look-alikes included. Readers sometimes add a character (a bolt, the frame edge, the
separator before a Russian region code, read as ``I`` or ``C``): up to ``max_drops``
characters may be dropped, each costing the probability that it was really there. The
layout factor halves formats whose line count differs from the plate's. Templates that
fail their rules (region codes) are skipped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from oko.plates.alphabet import to_text
from oko.plates.correction import confusion_matrix, correct, spread
from oko.plates.formats import PlateFormat, Variant

LAYOUT_PENALTY = 0.5


@dataclass(frozen=True, eq=False)
class FormatMatch:
    """A read checked against a format: corrected text in both scripts."""

    format: PlateFormat
    variant: Variant
    symbols: np.ndarray       # int (n,) corrected symbols
    confidences: np.ndarray   # float32 (n,) per character after correction
    score: float              # prior x layout x product of probabilities (see module doc)

    @property
    def text_latin(self) -> str:
        return to_text(self.symbols)

    @property
    def text(self) -> str:
        return self.format.native_text(self.text_latin, self.variant)


class FormatClassifier(ABC):
    """Decides the format of a read (and corrects it to that format)."""

    @abstractmethod
    def classify(self, probs: np.ndarray, lines: int) -> FormatMatch | None:
        """``probs`` (n, 36) per-character probabilities; ``lines`` 1 or 2 as read."""


class TemplateClassifier(FormatClassifier):
    def __init__(self, formats: Sequence[PlateFormat], confusable_weight: float = 0.7,
                 max_drops: int = 2) -> None:
        self.formats = list(formats)
        self.confusion = confusion_matrix(confusable_weight)
        self.max_drops = max_drops
        # Templates grouped by length: one stacked mask per length, scored at once.
        groups: dict[int, list[tuple[PlateFormat, Variant]]] = {}
        for fmt in self.formats:
            for variant in fmt.variants:
                groups.setdefault(len(variant), []).append((fmt, variant))
        self._by_len = {n: (items, np.stack([v.mask for _, v in items]),
                            np.array([f.prior for f, _ in items]),
                            np.array([f.lines for f, _ in items]))
                        for n, items in groups.items()}

    def classify(self, probs: np.ndarray, lines: int) -> FormatMatch | None:
        n = len(probs)
        if n == 0:
            return None
        spread_probs = spread(probs, self.confusion)
        own = probs.max(axis=1)  # how sure the reader was of each character it emitted
        best: tuple[float, FormatMatch] | None = None
        for k in range(min(self.max_drops, n - 1) + 1):
            for dropped in combinations(range(n), k):
                m = n - k
                if m not in self._by_len:
                    continue
                kept = np.setdiff1d(np.arange(n), dropped)
                cost = float(np.prod(1.0 - own[list(dropped)])) if k else 1.0
                if best is not None and cost <= best[0]:
                    continue  # even perfect characters could not win any more
                items, masks, priors, layout = self._by_len[m]
                symbols, conf = correct(spread_probs[kept], masks)        # (V, m)
                scores = priors * np.where(layout == lines, 1.0, LAYOUT_PENALTY) * cost \
                    * np.prod(conf, axis=1)
                for v in np.argsort(-scores, kind="stable"):
                    if best is not None and scores[v] <= best[0]:
                        break
                    fmt, variant = items[v]
                    if fmt.valid(to_text(symbols[v]), variant):
                        best = (float(scores[v]), FormatMatch(
                            fmt, variant, symbols[v], conf[v].astype(np.float32),
                            float(scores[v])))
                        break
        return None if best is None else best[1]
