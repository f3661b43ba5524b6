"""Plate formats by country: Russia first-class, others pluggable.

``register(country, formats)`` adds a country; ``formats_for(["RU", "UA"])`` gives the
formats a reader checks reads against (the generic format is added unless disabled).
``parse_plate(text)`` validates a string exactly (no correction) and transliterates it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from oko.core.errors import UnknownNameError
from oko.plates.formats import ru
from oko.plates.formats.base import PlateFormat, Variant
from oko.plates.formats.generic import GENERIC, OTHER_COUNTRIES

_REGISTRY: dict[str, list[PlateFormat]] = {"RU": list(ru.FORMATS), **OTHER_COUNTRIES}


def register(country: str, formats: Iterable[PlateFormat]) -> None:
    """Add (or replace) the formats of a country (ISO 3166 alpha-2, any case)."""
    _REGISTRY[country.upper()] = list(formats)


def countries() -> list[str]:
    return sorted(_REGISTRY)


def format_by_name(name: str) -> PlateFormat | None:
    """A registered format (or the generic one) by its name."""
    for fmt in [GENERIC, *(f for group in _REGISTRY.values() for f in group)]:
        if fmt.name == name:
            return fmt
    return None


def formats_for(country_codes: Sequence[str], generic: bool = True) -> list[PlateFormat]:
    """Formats of the given countries, in order, plus the generic one when asked."""
    out: list[PlateFormat] = []
    for code in country_codes:
        key = code.upper()
        if key not in _REGISTRY:
            raise UnknownNameError("plate country", code, countries())
        out.extend(_REGISTRY[key])
    return [*out, GENERIC] if generic else out


@dataclass(frozen=True)
class ParsedPlate:
    format: PlateFormat
    variant: Variant
    text_latin: str
    text: str  # native script (Cyrillic for Russia)


def parse_plate(text: str, country_codes: Sequence[str] | None = None,
                lines: int | None = None) -> ParsedPlate | None:
    """The first format that ``text`` (Latin or native letters) exactly is, else None.

    ``lines`` prefers formats of that layout where two formats share a pattern (Russian
    motorcycle and military plates).
    """
    formats = formats_for(country_codes or countries(), generic=False)
    if lines is not None:
        formats = sorted(formats, key=lambda f: f.lines != lines)
    for fmt in formats:
        hit = fmt.match_exact(text)
        if hit is not None:
            variant, latin = hit
            return ParsedPlate(fmt, variant, latin, fmt.native_text(latin, variant))
    return None


__all__ = ["GENERIC", "ParsedPlate", "PlateFormat", "Variant", "countries", "format_by_name",
           "formats_for",
           "parse_plate", "register"]
