"""Plate text for search: normalisation, OCR-confusion folding, fuzzy keys, distance.

- :func:`normalise`: upper case, letters and digits only ("ab-123 c" -> "AB123C"); what
  the ``events.plate`` column holds and what exact and prefix searches compare.
- :func:`skeleton`: additionally folds Cyrillic letters that look like Latin ones
  (``А`` -> ``A``, as on Russian plates) and characters OCR confuses (``O Q D`` -> ``0``,
  ``I L`` -> ``1``, ``Z`` -> ``2``, ``S`` -> ``5``, ``G`` -> ``6``, ``B`` -> ``8``).
- Fuzzy search finds plates whose skeletons are within one edit (insertion, deletion,
  substitution or swap of neighbours) of the query's skeleton. Every distinct plate is
  stored once in ``plates`` with its *deletion keys* in ``plate_keys`` (the skeleton and
  the skeleton with each single character removed, a symmetric-delete index): two
  strings within one edit share a key, so a query is one indexed ``IN`` lookup over at
  most ``len + 1`` keys, then the candidates are checked with :func:`osa_distance`.
"""

from __future__ import annotations

_CYRILLIC = str.maketrans("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")
_CONFUSABLE = str.maketrans("OQDILZSGB", "000112568")
MAX_PLATE = 32


def normalise(text: str | None) -> str | None:
    """Upper-case letters and digits of ``text``; None when nothing is left."""
    if not text:
        return None
    out = "".join(ch for ch in str(text).upper() if ch.isalnum())[:MAX_PLATE]
    return out or None


def skeleton(plate: str) -> str:
    return plate.translate(_CYRILLIC).translate(_CONFUSABLE)


def deletion_keys(plate: str) -> set[str]:
    """The skeleton and every skeleton with one character removed."""
    s = skeleton(plate)
    keys = {s}
    if len(s) > 1:
        keys.update(s[:i] + s[i + 1:] for i in range(len(s)))
    return keys


def osa_distance(a: str, b: str) -> int:
    """Optimal string alignment distance (Levenshtein plus swaps of neighbours)."""
    if a == b:
        return 0
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def fuzzy_match(query: str, plate: str) -> int | None:
    """Distance rank of ``plate`` for ``query`` (both normalised): 0 exact, 1 same
    skeleton, 2 one edit apart; None when further."""
    if plate == query:
        return 0
    sq, sp = skeleton(query), skeleton(plate)
    if sq == sp:
        return 1
    return 2 if osa_distance(sq, sp) <= 1 else None
