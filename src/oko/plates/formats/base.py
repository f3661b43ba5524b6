"""Plate formats: templates of character classes per position, per country.

A pattern is a string of slot tokens (spaces are only for reading):

- ``L`` a letter of the format's letter set (for Russia the 12 Latin look-alikes),
- ``D`` a digit, ``X`` any plate symbol,
- a lower-case letter: that letter itself, in upper case (``cd`` is the literal ``CD`` of
  diplomatic plates), never transliterated.

Formats work in the Latin plate alphabet (``oko.plates.alphabet``); ``native`` maps the
letters of ``L`` slots to the country's own script (Cyrillic for Russia), so each read has
a native ``text`` and a ``text_latin``. ``check`` adds rules a pattern cannot say (region
codes, serial numbers that are never issued).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from oko.plates.alphabet import DIGITS, INDEX, LETTERS, N_SYMBOLS, SYMBOLS, symbol_of


@dataclass(frozen=True)
class Variant:
    """One concrete pattern: a fixed length with allowed symbols per position."""

    pattern: str                 # tokens without spaces, e.g. "LDDDLLDD"
    groups: tuple[tuple[int, int], ...]  # (start, end) of each space-separated group
    mask: np.ndarray             # bool (n, N_SYMBOLS)
    native_slots: np.ndarray     # bool (n,): transliterate the letter at this slot

    def group_text(self, latin: str, i: int) -> str:
        start, end = self.groups[i]
        return latin[start:end]

    def group_tokens(self, i: int) -> str:
        start, end = self.groups[i]
        return self.pattern[start:end]

    def __len__(self) -> int:
        return len(self.pattern)


@dataclass(frozen=True, eq=False)
class PlateFormat:
    """A plate format of one country (e.g. Russian private cars).

    Attributes:
        name: unique id, ``<country>_<kind>`` (``ru_private``).
        country: ISO 3166 alpha-2 code in upper case, or ``"*"`` for the generic format.
        patterns: one or more patterns (tokens above).
        letters: the symbols an ``L`` slot allows.
        lines: 1 or 2, how the characters sit on the plate (a hint for the classifier).
        native: Latin letter -> native letter for ``L`` slots (empty: Latin script).
        check: extra validation of the Latin text and its pattern.
        prior: relative weight when several formats fit a read equally well.
    """

    name: str
    country: str
    patterns: tuple[str, ...]
    letters: str = LETTERS
    lines: int = 1
    native: Mapping[str, str] = field(default_factory=dict)
    check: Callable[[str, Variant], bool] | None = None
    prior: float = 1.0
    description: str = ""

    variants: tuple[Variant, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", tuple(self._compile(p) for p in self.patterns))

    def _compile(self, pattern: str) -> Variant:
        tokens = pattern.replace(" ", "")
        mask = np.zeros((len(tokens), N_SYMBOLS), bool)
        native = np.zeros(len(tokens), bool)
        for i, tok in enumerate(tokens):
            if tok == "L":
                allowed, native[i] = self.letters, True
            elif tok == "D":
                allowed = DIGITS
            elif tok == "X":
                allowed = SYMBOLS
            elif tok.islower() and tok.upper() in INDEX:
                allowed = tok.upper()
            else:
                raise ValueError(f"format {self.name}: unknown token {tok!r} in {pattern!r}")
            mask[i, [INDEX[c] for c in allowed]] = True
        groups, start = [], 0
        for word in pattern.split():
            groups.append((start, start + len(word)))
            start += len(word)
        return Variant(tokens, tuple(groups), mask, native)

    # ------------------------------------------------------------------ text
    def native_text(self, latin: str, variant: Variant) -> str:
        """The plate in its own script: letters of ``L`` slots transliterated."""
        if not self.native:
            return latin
        return "".join(self.native.get(c, c) if slot else c
                       for c, slot in zip(latin, variant.native_slots, strict=True))

    def valid(self, latin: str, variant: Variant) -> bool:
        return self.check is None or self.check(latin, variant)

    def match_exact(self, text: str) -> tuple[Variant, str] | None:
        """(variant, Latin text) if ``text`` (Latin or native script) is exactly a plate of
        this format, else None. Every character must be a plate symbol; a native letter
        must be one the format uses (no correction here)."""
        reverse = {v: k for k, v in self.native.items()}
        latin_chars = []
        for ch in text.replace(" ", "").upper():
            ch = reverse.get(ch, ch)
            if symbol_of(ch) < 0 or not ch.isascii():
                return None
            latin_chars.append(ch)
        latin = "".join(latin_chars)
        idx = np.array([INDEX[c] for c in latin], np.int64)
        for variant in self.variants:
            if len(variant) == len(idx) and variant.mask[np.arange(len(idx)), idx].all() \
                    and self.valid(latin, variant):
                return variant, latin
        return None
