"""Plate formats: Russian plates round-trip through validation and transliteration; other
countries are pluggable; the plate alphabet folds every script onto one set of symbols."""

import numpy as np
import pytest

from oko.core.errors import UnknownNameError
from oko.plates.alphabet import SYMBOLS, projection, symbol_of, to_symbols, to_text
from oko.plates.formats import (
    PlateFormat,
    countries,
    format_by_name,
    formats_for,
    parse_plate,
    register,
)
from oko.plates.formats.ru import region_ok, to_cyrillic, to_latin

CYRILLIC = "АВЕКМНОРСТУХ"
LATIN = "ABEKMHOPCTYX"

# One example per Russian format, 2- and 3-digit regions (Cyrillic, as on the plate).
RU_EXAMPLES = [
    ("А123ВС77", "ru_private", 1), ("М008КА777", "ru_private", 1),
    ("АВ12377", "ru_taxi", 1), ("ТХ456199", "ru_taxi", 1),
    ("АВ1234777", "ru_trailer", 1), ("ЕК5678150", "ru_trailer", 1),
    ("АВ123С77", "ru_transit", 1), ("ХУ987Р750", "ru_transit", 1),
    ("А123477", "ru_police", 1), ("О0011102", "ru_police", 1),
    ("1234АВ77", "ru_motorcycle", 2), ("0042ХО178", "ru_motorcycle", 2),
    ("1234А77", "ru_police_motorcycle", 2), ("5678О125", "ru_police_motorcycle", 2),
    ("1234АВ50", "ru_military", 1),
    ("001CD177", "ru_diplomatic", 1), ("123D45677", "ru_diplomatic", 1),
    ("045T123199", "ru_diplomatic", 1),
]


@pytest.mark.parametrize("text,name,lines", RU_EXAMPLES)
def test_each_russian_format_round_trips(text, name, lines):
    parsed = parse_plate(text, ["RU"], lines=lines)
    assert parsed is not None and parsed.format.name == name
    assert parsed.text == text
    assert parsed.text_latin == to_latin(text)
    # Back from Latin: the same plate, the same Cyrillic text.
    again = parse_plate(parsed.text_latin, ["RU"], lines=lines)
    assert again.format.name == name and again.text == text


def test_all_twelve_letters_transliterate_both_ways():
    for cyr, lat in zip(CYRILLIC, LATIN, strict=True):
        text = f"{cyr}123{cyr}{cyr}77"
        parsed = parse_plate(text, ["RU"])
        assert parsed.format.name == "ru_private"
        assert parsed.text_latin == f"{lat}123{lat}{lat}77"
        assert parsed.text == text
        assert to_cyrillic(parsed.text_latin) == text
    assert to_latin(CYRILLIC) == LATIN and to_cyrillic(LATIN) == CYRILLIC


@pytest.mark.parametrize("region,ok", [("77", True), ("01", True), ("00", False),
                                       ("777", True), ("102", True), ("077", False),
                                       ("7", False), ("7777", False)])
def test_region_codes(region, ok):
    assert region_ok(region) is ok
    assert (parse_plate(f"А123ВС{region}", ["RU"]) is not None) is ok


@pytest.mark.parametrize("text", [
    "Д123ВС77",      # Д is not a plate letter
    "A123BF77",      # F has no Cyrillic look-alike
    "А000ВС77",      # serial 000 is never issued
    "А12ВС77",       # too short
    "АА123ВС77",     # letter where a digit belongs
    "",
])
def test_invalid_russian_plates_are_rejected(text):
    assert parse_plate(text, ["RU"]) is None


def test_motorcycle_and_military_share_a_pattern_and_lines_decide():
    assert parse_plate("1234АВ50", ["RU"], lines=2).format.name == "ru_motorcycle"
    assert parse_plate("1234АВ50", ["RU"], lines=1).format.name == "ru_military"


def test_diplomatic_letters_stay_latin():
    parsed = parse_plate("001CD177", ["RU"])
    assert parsed.text == "001CD177"  # CD is printed in Latin on the plate


def test_other_countries_are_pluggable():
    assert {"RU", "UA", "BY", "KZ", "CZ"} <= set(countries())
    ua = parse_plate("AA1234BI", ["UA"])
    assert ua.format.name == "ua_standard" and ua.text == "АА1234ВІ"
    assert parse_plate("АА1234ВІ", ["UA"]).text_latin == "AA1234BI"
    assert parse_plate("AA1234BZ", ["UA"]) is None   # Z is no Ukrainian plate letter
    assert parse_plate("5AU5341", ["CZ"]).format.name == "cz_standard"
    assert parse_plate("5AU5341", ["RU"]) is None
    register("ZZ", [PlateFormat("zz_test", "ZZ", ("LLL DD",))])
    try:
        assert parse_plate("ABC12", ["ZZ"]).format.name == "zz_test"
        assert format_by_name("zz_test").country == "ZZ"
    finally:
        from oko.plates import formats as f
        f._REGISTRY.pop("ZZ")
    with pytest.raises(UnknownNameError, match="plate country"):
        formats_for(["XX"])


def test_generic_format_comes_last_and_accepts_any_plausible_length():
    fmts = formats_for(["RU"])
    assert fmts[-1].name == "generic"
    lengths = {len(v) for v in fmts[-1].variants}
    assert lengths == set(range(3, 11))
    assert formats_for(["RU"], generic=False)[-1].name != "generic"


def test_alphabet_folds_cases_scripts_and_widths():
    assert symbol_of("a") == symbol_of("A") == symbol_of("А") == SYMBOLS.index("A")
    assert symbol_of("х") == SYMBOLS.index("X")  # Cyrillic small ha
    assert symbol_of("７") == SYMBOLS.index("7")  # full-width digit
    assert symbol_of("Д") == -1 and symbol_of("车") == -1 and symbol_of("·") == -1
    assert to_text(to_symbols("а1в2")) == "A1B2"
    p = projection(["", "a", "A", "А", "车", "7"])
    assert p.shape == (6, 36)
    assert p[:, SYMBOLS.index("A")].tolist() == [0, 1, 1, 1, 0, 0]
    assert p[4].sum() == 0 and p[5, SYMBOLS.index("7")] == 1
    assert np.all(p.sum(axis=1) <= 1)
