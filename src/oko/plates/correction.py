"""Confusable characters, and position-aware correction against a format template.

A recogniser's per-character probabilities (n, 36) over the plate alphabet are spread onto
look-alikes with a confusion matrix before a template picks, per position, the best symbol
its class allows. An ``O`` read where the template wants a digit becomes ``0``, a ``0``
where it wants a letter becomes ``O``; when the reader also gave ``0`` some probability,
that evidence is used as is. Readers that give only a string (one-hot probabilities) are
corrected through the look-alike table alone.
"""

from __future__ import annotations

import numpy as np

from oko.plates.alphabet import INDEX, N_SYMBOLS

# Pairs OCR confuses on plate fonts: the strong ones (same shape, one stroke apart) and
# weaker ones, which only decide when nothing else fits the template.
CONFUSABLE = ("0O", "0D", "0Q", "8B", "1I", "2Z", "5S", "6G", "4A", "OD", "OQ", "HN", "KX")
WEAK_CONFUSABLE = ("0U", "1L", "1T", "7T", "3B", "9P", "HM", "YV", "YU", "PR", "CG", "EF",
                   "MN", "7Y")
WEAK_FACTOR = 0.5


def confusion_matrix(weight: float = 0.7) -> np.ndarray:
    """(36, 36) float32: identity plus ``weight`` between look-alikes (symmetric), half of
    it for the weak pairs."""
    c = np.eye(N_SYMBOLS, dtype=np.float32)
    for pairs, w in ((WEAK_CONFUSABLE, weight * WEAK_FACTOR), (CONFUSABLE, weight)):
        a = np.array([INDEX[p[0]] for p in pairs])
        b = np.array([INDEX[p[1]] for p in pairs])
        c[a, b] = w
        c[b, a] = w
    return c


def spread(probs: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """Per-character probabilities with look-alike evidence added, capped at 1."""
    return np.minimum(probs @ confusion, 1.0)


def correct(probs: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best allowed symbol and its probability per position.

    ``probs`` (n, 36) already spread; ``mask`` (..., n, 36) bool of allowed symbols (a stack
    of templates of the same length is fine). Returns (symbols, confidences) with the
    leading shape of ``mask`` minus its last axis.
    """
    masked = np.where(mask, probs, -1.0)
    symbols = masked.argmax(axis=-1)
    conf = np.take_along_axis(masked, symbols[..., None], axis=-1)[..., 0]
    return symbols, np.clip(conf, 0.0, 1.0)
