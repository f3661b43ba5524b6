"""Per-track voting: combine the reads of one vehicle's plate across frames.

Reads are grouped by format and length (a read that lost or gained a character cannot be
aligned position by position with the others, and a plate has one format). The group
with the most confidence-weighted support wins; inside it, each position takes the symbol
with the largest sum of per-character confidences. A character's voted confidence is that
sum over the number of reads in the group, so disagreement lowers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oko.plates.alphabet import INDEX, N_SYMBOLS, to_text


@dataclass(frozen=True)
class Vote:
    text_latin: str
    format: str | None
    confidences: np.ndarray   # float32 (n,)
    reads: int                # reads in the winning group
    total_reads: int

    @property
    def confidence(self) -> float:
        return float(self.confidences.mean()) if len(self.confidences) else 0.0


@dataclass
class PlateVotes:
    """The reads of one track so far."""

    _groups: dict[tuple[str | None, int], list[tuple[np.ndarray, np.ndarray]]] = field(
        default_factory=dict)
    total: int = 0

    def add(self, text_latin: str, confidences: np.ndarray, fmt: str | None) -> None:
        symbols = np.array([INDEX[c] for c in text_latin], np.int64)
        conf = np.asarray(confidences, np.float32).reshape(-1)
        if len(conf) != len(symbols):
            raise ValueError(f"{len(conf)} confidences for {len(symbols)} characters")
        self._groups.setdefault((fmt, len(symbols)), []).append((symbols, conf))
        self.total += 1

    def __len__(self) -> int:
        return self.total

    def result(self) -> Vote | None:
        if not self._groups:
            return None
        weight = {key: sum(float(c.mean()) for _, c in reads) for key, reads in self._groups.items()}
        (fmt, n), reads = max(self._groups.items(), key=lambda kv: weight[kv[0]])
        symbols = np.stack([s for s, _ in reads])                  # (R, n)
        conf = np.stack([c for _, c in reads])                     # (R, n)
        tally = np.zeros((n, N_SYMBOLS), np.float64)
        np.add.at(tally, (np.broadcast_to(np.arange(n), symbols.shape), symbols), conf)
        winner = tally.argmax(axis=1)
        voted = (tally[np.arange(n), winner] / len(reads)).astype(np.float32)
        return Vote(to_text(winner), fmt, voted, len(reads), self.total)
