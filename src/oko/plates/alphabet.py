"""The plate alphabet: the 36 symbols every reader's output is mapped onto.

Plates are read in Latin capitals and digits. A recogniser may speak a larger alphabet
(PP-OCR knows 6,623 characters, mostly Chinese) or another script (a Russian model emits
Cyrillic); :func:`symbol_of` folds each of its characters onto ``SYMBOLS`` (NFKC, upper
case, Cyrillic look-alikes to Latin) or onto nothing, so that one format and correction
code serves every reader. Russian plates use only the 12 Cyrillic letters that look like
Latin ones, so nothing is lost for them; formats turn letters back into Cyrillic.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

SYMBOLS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
N_SYMBOLS = len(SYMBOLS)
INDEX = {ch: i for i, ch in enumerate(SYMBOLS)}
DIGITS = "0123456789"
LETTERS = SYMBOLS[10:]

# Russian plate letters and their Latin look-alikes, in the same order.
CYRILLIC_PLATE = "АВЕКМНОРСТУХ"
LATIN_PLATE = "ABEKMHOPCTYX"
# Cyrillic capitals that look like Latin ones (beyond the 12 plate letters) fold too, so a
# Cyrillic-speaking recogniser still lands on the right symbol.
_CYRILLIC_FOLD = str.maketrans(CYRILLIC_PLATE + "ІЈЅԛԜ", LATIN_PLATE + "IJSQW")


def symbol_of(char: str) -> int:
    """Index in ``SYMBOLS`` of a recogniser character, or -1 if it is not a plate symbol."""
    if not char:
        return -1
    folded = unicodedata.normalize("NFKC", char).upper().translate(_CYRILLIC_FOLD)
    return INDEX.get(folded, -1) if len(folded) == 1 else -1


def projection(charset: Sequence[str]) -> np.ndarray:
    """(len(charset), N_SYMBOLS) 0/1 matrix: ``probs @ P`` sums a reader's probabilities
    per plate symbol (``a`` and ``A`` and ``А`` all count for ``A``)."""
    matrix = np.zeros((len(charset), N_SYMBOLS), np.float32)
    idx = np.array([symbol_of(c) for c in charset], np.int64)
    rows = np.flatnonzero(idx >= 0)
    matrix[rows, idx[rows]] = 1.0
    return matrix


def to_text(symbols: np.ndarray | Sequence[int]) -> str:
    return "".join(SYMBOLS[int(i)] for i in symbols)


def to_symbols(text: str) -> np.ndarray:
    """Symbols of a Latin/Cyrillic string; characters that are no symbol are dropped."""
    idx = [symbol_of(c) for c in text]
    return np.array([i for i in idx if i >= 0], np.int64)
