"""Units as people read them (ebr/units.py): the printed symbol on screens and in the PDF, the
UCUM code everywhere a machine reads (API, audit trail, CSV, fingerprint)."""

from __future__ import annotations

import pytest

from ebr.units import unit_display, unit_typed_matches


@pytest.mark.parametrize(("code", "shown"), [
    ("Cel", "°C"), ("[degF]", "°F"), ("[pH]", "pH"), ("%", "%"), ("g/L", "g/L"), ("mmol/L", "mmol/L"),
    ("10*6/mL", "×10⁶/mL"), ("10*6", "×10⁶"), ("10*9", "×10⁹"), ("10*-3", "×10⁻³"),
    ("[EU]/mL", "EU/mL"), ("[IU]/mL", "IU/mL"), ("{copies}/cell", "copies/cell"), ("10*6{cells}", "×10⁶ cells"),
    ("{cells}/uL", "cells/µL"), ("ug", "µg"), ("umol/L", "µmol/L"), ("/m3", "/m³"), ("/min", "/min"),
    ("mm[Hg]", "mmHg"), ("kg.m/s2", "kg·m/s²"), ("U/mL", "U/mL"), ("mosm/kg", "mosm/kg"), ("h", "h"),
    ("1", ""), ("", ""), (None, ""),
])
def test_a_ucum_code_prints_as_its_symbol(code: str | None, shown: str) -> None:
    assert unit_display(code) == shown


def test_a_unit_that_is_not_ucum_prints_as_written() -> None:
    """A facility's registry may hold a unit already written for people: it is left alone."""
    assert unit_display("µg") == "µg" and unit_display("10⁶/kg") == "10⁶/kg"


@pytest.mark.parametrize(("typed", "code", "matches"), [
    ("Cel", "Cel", True), ("°C", "Cel", True), ("C", "Cel", False), ("K", "Cel", False),
    ("×10⁶/mL", "10*6/mL", True), ("10*6/mL", "10*6/mL", True), ("10^6/mL", "10*6/mL", False),
    ("pH", "[pH]", True), ("%", "[pH]", False),
])
def test_an_operator_may_type_the_code_or_the_symbol_and_nothing_else(typed: str, code: str, matches: bool) -> None:
    assert unit_typed_matches(typed, code) is matches
