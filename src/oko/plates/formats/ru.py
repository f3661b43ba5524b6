"""Russian registration plates (GOST R 50577-2018), a first-class format.

Russian plates use 12 Cyrillic letters, exactly those with a Latin look-alike:
А В Е К М Н О Р С Т У Х = A B E K M H O P C T Y X. Formats here are written with the
Latin look-alikes (what a Latin-speaking recogniser reads) and give the Cyrillic text back
through ``native``. The region code closes every civil plate: 2 digits (``01``-``99``) or 3
digits (``102``, ``777``, ...; never starting with ``0``). A serial number of all zeros
(``000``) is never issued. A few strings fit two formats (АВ123477: a taxi of region 477
or a trailer of region 77; motorcycle and military plates share a pattern): text alone
cannot tell, so the classifier's priors and the plate's line layout decide.

| format | pattern | example | plate |
|---|---|---|---|
| ru_private | L DDD LL RR(R) | А123ВС77, А123ВС777 | type 1, white, cars |
| ru_taxi | LL DDD RR(R) | АВ12377 | type 1Б, yellow: taxis, buses (public transport) |
| ru_trailer | LL DDDD RR(R) | АВ123477 | type 2, trailers |
| ru_transit | LL DDD L RR(R) | АВ123С77 | type 15, transit |
| ru_police | L DDDD RR(R) | А123477 | type 20, blue, police cars |
| ru_motorcycle | DDDD LL RR(R), two lines | 1234АВ77 | type 4, motorcycles (and type 3 tractors) |
| ru_police_motorcycle | DDDD L RR(R), two lines | 1234А77 | type 22, police motorcycles |
| ru_military | DDDD LL DD | 1234АВ50 | type 4 military, black; DD is the command code |
| ru_diplomatic | DDD CD D RR(R), DDD D DDD RR(R), DDD T DDD RR(R) | 001CD177 | types 9/10, red; CD/D/T stay Latin |
"""

from __future__ import annotations

from oko.plates.alphabet import CYRILLIC_PLATE, LATIN_PLATE
from oko.plates.formats.base import PlateFormat, Variant

TO_CYRILLIC = dict(zip(LATIN_PLATE, CYRILLIC_PLATE, strict=True))
TO_LATIN = dict(zip(CYRILLIC_PLATE, LATIN_PLATE, strict=True))


def to_cyrillic(latin: str) -> str:
    """Latin look-alikes to Cyrillic (other characters unchanged)."""
    return "".join(TO_CYRILLIC.get(c, c) for c in latin)


def to_latin(cyrillic: str) -> str:
    """Cyrillic plate letters to their Latin look-alikes (other characters unchanged)."""
    return "".join(TO_LATIN.get(c, c) for c in cyrillic)


def region_ok(code: str) -> bool:
    """2 digits other than 00, or 3 digits not starting with 0."""
    return (len(code) == 2 and code != "00") or (len(code) == 3 and code[0] != "0")


def _civil_check(latin: str, variant: Variant) -> bool:
    # The last group is the region; the first all-digit group, the serial number, is
    # never all zeros.
    if not region_ok(variant.group_text(latin, -1)):
        return False
    serial = next(i for i in range(len(variant.groups)) if set(variant.group_tokens(i)) == {"D"})
    return set(variant.group_text(latin, serial)) != {"0"}


def _military_check(latin: str, variant: Variant) -> bool:
    return latin[-2:] != "00" and latin[:4] != "0000"


def _both_regions(*heads: str) -> tuple[str, ...]:
    return tuple(h + tail for h in heads for tail in (" DD", " DDD"))


def _ru(name: str, patterns: tuple[str, ...], lines: int = 1, prior: float = 1.0,
        check=_civil_check, description: str = "") -> PlateFormat:
    return PlateFormat(name=name, country="RU", patterns=patterns, letters=LATIN_PLATE,
                       lines=lines, native=TO_CYRILLIC, check=check, prior=prior,
                       description=description)


# Priors: private cars dominate traffic; the rarer formats need a clearly better fit.
FORMATS: list[PlateFormat] = [
    _ru("ru_private", _both_regions("L DDD LL"), description="private and company cars"),
    _ru("ru_taxi", _both_regions("LL DDD"), prior=0.6, description="taxis and buses (yellow)"),
    _ru("ru_trailer", _both_regions("LL DDDD"), prior=0.5, description="trailers"),
    _ru("ru_transit", _both_regions("LL DDD L"), prior=0.4, description="transit plates"),
    _ru("ru_police", _both_regions("L DDDD"), prior=0.5, description="police (blue)"),
    _ru("ru_motorcycle", _both_regions("DDDD LL"), lines=2, prior=0.6,
        description="motorcycles and tractors (two lines)"),
    _ru("ru_police_motorcycle", _both_regions("DDDD L"), lines=2, prior=0.4,
        description="police motorcycles (two lines)"),
    _ru("ru_military", ("DDDD LL DD",), prior=0.4, check=_military_check,
        description="military (black), command code instead of region"),
    _ru("ru_diplomatic", _both_regions("DDD cd D", "DDD d DDD", "DDD t DDD"), prior=0.4,
        description="diplomatic (red); CD, D and T are Latin letters"),
]
