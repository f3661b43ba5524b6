"""Position-aware correction of look-alikes against format templates, and the default
template classifier (which format a read is)."""

import numpy as np
import pytest

from oko.plates.alphabet import INDEX, N_SYMBOLS, to_symbols
from oko.plates.classify import TemplateClassifier
from oko.plates.correction import confusion_matrix, correct, spread
from oko.plates.formats import formats_for


def one_hot(text: str, p: float = 0.9) -> np.ndarray:
    s = to_symbols(text)
    probs = np.zeros((len(s), N_SYMBOLS), np.float32)
    probs[np.arange(len(s)), s] = p
    return probs


@pytest.fixture(scope="module")
def ru():
    return TemplateClassifier(formats_for(["RU"]))


@pytest.mark.parametrize("raw,fixed", [
    ("TO03TT48", "T003TT48"),     # O in a digit slot
    ("M1OOMM77", "M100MM77"),
    ("0123AB77", "O123AB77"),     # 0 in a letter slot
    ("K264TT9B", "K264TT98"),     # B in the region
    ("8123BC77", "B123BC77"),
    ("A12ZBC77", "A122BC77"),
    ("A5S5BC77", "A555BC77"),
])
def test_confusables_are_fixed_by_position(ru, raw, fixed):
    match = ru.classify(one_hot(raw), lines=1)
    assert match.text_latin == fixed and match.format.name == "ru_private"
    changed = [i for i, (a, b) in enumerate(zip(raw, fixed, strict=True)) if a != b]
    # A corrected character is less certain than one read as it is.
    assert all(match.confidences[i] < 0.9 for i in changed)
    assert all(match.confidences[i] == pytest.approx(0.9) for i in range(len(raw)) if i not in changed)


def test_reader_evidence_beats_the_look_alike_table(ru):
    probs = one_hot("A1Z3BC77")
    probs[2, INDEX["7"]] = 0.7  # the reader also saw a 7 there, more than Z's look-alike 2
    assert ru.classify(probs, 1).text_latin == "A173BC77"


def test_cyrillic_text_comes_from_the_template(ru):
    match = ru.classify(one_hot("Y062PP25"), 1)
    assert match.text == "У062РР25" and match.text_latin == "Y062PP25"


def test_a_spurious_character_is_dropped(ru):
    # A bolt read as C before the plate, at low confidence: the 8-symbol template wins.
    probs = one_hot("CH111XP11")
    probs[0] *= 0.4
    match = ru.classify(probs, 1)
    assert match.text_latin == "H111XP11" and len(match.confidences) == 8


def test_confident_characters_are_not_dropped_lightly(ru):
    # Nine confident symbols that fit the 3-digit-region template stay nine.
    assert ru.classify(one_hot("A105HH126"), 1).text_latin == "A105HH126"


def test_unknown_plates_fall_back_to_generic_uncorrected(ru):
    match = ru.classify(one_hot("1287960"), 1)
    assert match.format.name == "generic" and match.text_latin == "1287960"
    assert ru.classify(one_hot("AB"), 1) is None  # too short for any format
    strict = TemplateClassifier(formats_for(["RU"], generic=False))
    assert strict.classify(one_hot("WWWWWWWW"), 1) is None


def test_line_layout_decides_between_equal_patterns(ru):
    assert ru.classify(one_hot("1234AB50"), 2).format.name == "ru_motorcycle"
    assert ru.classify(one_hot("1234AB50"), 1).format.name == "ru_military"


def test_priors_pick_the_commoner_format_for_ambiguous_text(ru):
    # Taxi of region 477 or trailer of region 77: the same characters, the taxi prior wins.
    assert ru.classify(one_hot("AB123477"), 1).format.name == "ru_taxi"


def test_confusion_matrix_and_masked_correction():
    c = confusion_matrix(0.5)
    assert c.shape == (N_SYMBOLS, N_SYMBOLS) and np.allclose(c, c.T)
    assert c[INDEX["0"], INDEX["O"]] == 0.5 and c[INDEX["3"], INDEX["B"]] == pytest.approx(0.25)
    assert c[INDEX["A"], INDEX["X"]] == 0
    probs = spread(one_hot("O8"), c)
    mask = np.zeros((2, 2, N_SYMBOLS), bool)
    mask[0, :, :10] = True                 # template 1: two digits
    mask[1, :, 10:] = True                 # template 2: two letters
    symbols, conf = correct(probs, mask)
    assert symbols.tolist() == [[INDEX["0"], INDEX["8"]], [INDEX["O"], INDEX["B"]]]
    assert conf[0, 0] == pytest.approx(0.45) and conf[1, 0] == pytest.approx(0.9)
