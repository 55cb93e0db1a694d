"""Tokenizer rules for values, units, comparators and identifiers."""

from __future__ import annotations

import pytest
from spacy.language import Language

from nlp_review.pipeline.reviewer import build_nlp


@pytest.fixture(scope="module")
def nlp() -> Language:
    return build_nlp()


@pytest.mark.parametrize(("text", "tokens"), [
    ("7.2e6 cells/mL", ["7.2e6", "cells/mL"]),
    ("≥70%", ["≥", "70", "%"]),
    (">=90%", [">=", "90", "%"]),
    ("<0.5EU/mL", ["<", "0.5", "EU/mL"]),
    ("centrifuge error E-12", ["centrifuge", "error", "E-12"]),
    ("lot LV19-0091", ["lot", "LV19-0091"]),
    ("DIN W004124000123", ["DIN", "W004124000123"]),
    ("COI-24-0117 PT-0042", ["COI-24-0117", "PT-0042"]),
    ("0.42 x10^6 cells/mL", ["0.42", "x10^6", "cells/mL"]),
    ("1.5x10^6/mL", ["1.5x10^6/mL"]),
    ("37°C", ["37", "°C"]),
    ("2-8°C", ["2", "-", "8", "°C"]),
    ("signed w/o verification", ["signed", "w/o", "verification"]),
    ("?leak", ["?", "leak"]),
    ("mix-up of G-Rex", ["mix-up", "of", "G-Rex"]),
    ("cloudy/turbid", ["cloudy", "/", "turbid"]),
    ("patient id", ["patient", "id"]),
])
def test_tokens(nlp: Language, text: str, tokens: list[str]) -> None:
    assert [token.text for token in nlp.make_doc(text)] == tokens


@pytest.mark.parametrize(("word", "norm"), [
    ("viab", "viability"), ("Viability", "viability"), ("w/o", "without"), ("glvoe", "glove"),
    ("contaminaton", "contamination"), ("myco", "mycoplasma"), ("seeding", "seeding"), ("there", "there"),
    ("BSC-1", "bsc"),
])
def test_norms_expand_shorthand_and_fix_single_slips(nlp: Language, word: str, norm: str) -> None:
    assert nlp.make_doc(word)[0].norm_ == norm
