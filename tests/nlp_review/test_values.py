"""Value-versus-limit extraction (nlp_review/pipeline/values.py)."""

from __future__ import annotations

import pytest

from nlp_review.pipeline import Category, Severity
from nlp_review.pipeline.reviewer import Reviewer
from nlp_review.pipeline.values import Bound, check_values, parse_number

OUT = [
    ("viability 61% (limit ≥70%)", "viability", Severity.CRITICAL),
    ("viab 42% post thaw, spec >=70%", "viability", Severity.CRITICAL),
    ("VCN 6.1 copies/cell, limit ≤5", "VCN", Severity.CRITICAL),
    ("endotoxin 0.7 EU/mL (limit <0.5 EU/mL)", "endotoxin", Severity.CRITICAL),
    ("pH 6.6 (7.0-7.4)", "pH", Severity.MAJOR),
    ("VCD 0.5x10^6/mL (min 1.0x10^6)", "VCD", Severity.MAJOR),
    ("glucose 1.4 mmol/L, limit >2", "glucose", Severity.MAJOR),
    ("osmolality 380 mOsm/kg (range 260-340)", "osmolality", Severity.MAJOR),
    ("dose 0.5x10^8 cells, below min dose 1x10^8", "dose", Severity.CRITICAL),
    ("viability was 55% against a specification of not less than 70%", "viability", Severity.CRITICAL),
]
IN = ["viability 92%", "viability 92% (limit ≥70%)", "endotoxin <0.1 EU/mL (limit <0.5), pass",
      "CD3+ 97% (spec ≥90%)", "pH 7.2 (7.0-7.4)", "VCD 1.5e6 cells/mL (min 1.0x10^6)", "stored at 2-8°C",
      "step 3 of 5 done, 2-8°C"]


@pytest.mark.parametrize(("text", "parameter", "severity"), OUT)
def test_value_outside_its_stated_limit_is_out_of_spec(rules_only: Reviewer, text: str, parameter: str,
                                                     severity: Severity) -> None:
    flags = [flag for flag in rules_only.review_text(text).flags if flag.rule == "oos.value_vs_limit"]
    assert len(flags) == 1, rules_only.review_text(text)
    assert flags[0].category is Category.OUT_OF_SPEC
    assert flags[0].severity is severity
    assert parameter in flags[0].explanation
    assert text[flags[0].start:flags[0].end] == flags[0].evidence


@pytest.mark.parametrize("text", IN)
def test_value_within_its_limit_or_without_one_is_no_flag(rules_only: Reviewer, text: str) -> None:
    assert rules_only.review_text(text).flags == ()


def test_evidence_spans_value_and_limit(rules_only: Reviewer) -> None:
    flag = rules_only.review_text("viability 61% (limit ≥70%)").flags[0]
    assert flag.evidence == "viability 61% (limit ≥70%)"
    assert "61" in flag.explanation and "≥70" in flag.explanation


def test_endotoxin_out_of_limit_is_also_contamination(rules_only: Reviewer) -> None:
    review = rules_only.review_text("endotoxin 1.4 EU/mL (limit ≤0.5 EU/mL)")
    assert {Category.OUT_OF_SPEC, Category.CONTAMINATION} <= review.categories


def test_scales_are_compared_as_numbers() -> None:
    words = ["VCD", "0.8", "x10^6", "cells/mL", "(", "min", "1.0x10^6", ")"]
    checks = check_values(words, [w.lower() for w in words])
    assert len(checks) == 1
    assert not checks[0].in_spec
    assert checks[0].limit.bound is Bound.MIN


@pytest.mark.parametrize(("text", "expected"), [("7.2e6", (7.2, 6)), ("1.5x10^6", (1.5, 6)), ("61", (61.0, None)),
                                                ("0,5", (0.5, None)), ("2.1E+06", (2.1, 6)), ("E-12", None)])
def test_numbers_are_parsed(text: str, expected: tuple[float, int | None] | None) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize("text", ["1e999 cells/mL (min 1e-999)", "viability 5x10^999 (min 1x10^99999)",
                                  "9" * 400 + " (limit ≥1)", "NaN% (limit ≥70%)", "limit ≥", "pH 6.6 (7.0-)",
                                  # more digits than int() reads (4,300) in a power of ten
                                  "vcd 7.2e" + "9" * 5000 + " cells/mL (limit ≥1e6)",
                                  "count 1x10^" + "9" * 5000 + " cells (min 1x10^6)",
                                  "count 1.2 x 10^" + "9" * 5000 + " cells (min 1x10^6)"])
def test_absurd_numbers_do_not_break_the_review(rules_only: Reviewer, text: str) -> None:
    assert rules_only.review_text(text).risk in set(Severity)


@pytest.mark.parametrize(("text", "out_of_spec"), [
    ("Total viable cells harvested recorded as 600 10*6 in step 6.1; specification ≥ 500 10*6.", False),
    ("Viable cell density 1.8 10*6/mL, limit ≥ 1 10*6/mL", False),
    ("cell count 430 10*6, limit ≥500 10*6", True),
    ("Viable cell density 0.8 10*6/mL, limit ≥ 1 10*6/mL", True),
    # the same texts as the system now writes them (ebr/units.py: the printed symbol)
    ("Total viable cells harvested recorded as 600 ×10⁶ in step 6.1; specification ≥ 500 ×10⁶.", False),
    ("Viable cell density 1.8 ×10⁶/mL, limit ≥ 1 ×10⁶/mL", False),
    ("cell count 430 ×10⁶, limit ≥500 ×10⁶", True),
    ("Viable cell density 0.8 ×10⁶/mL, limit ≥ 1 ×10⁶/mL", True),
])
def test_a_ucum_power_of_ten_is_part_of_the_unit_not_the_value(rules_only: Reviewer, text: str,
                                                                 out_of_spec: bool) -> None:
    """The system's own deviation texts write cell counts in UCUM (10*6): the "10" and the "6"
    are the unit's, so 600 10*6 against ≥ 500 10*6 is in specification (1.2.4 read "10")."""
    assert (Category.OUT_OF_SPEC in rules_only.review_text(text).categories) is out_of_spec
