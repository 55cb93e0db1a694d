"""General behaviours added in pipeline 1.1.0: clause-aware negation, soft punctuation in rule gaps,
values with decimal commas and spaced powers of ten, and paraphrase families per category.

The sentences are written here in voices none of the corpus splits uses (QC microbiology, logistics,
non-native writers); none is a corpus entry (five that were, from the former test split, were
replaced). A logger or temperature excursion in transit is a chain-of-custody matter, which the
spec files under `identity`."""

from __future__ import annotations

import pytest

from nlp_review.pipeline.reviewer import Reviewer
from nlp_review.pipeline.types import Severity

# Fresh paraphrases the rules do not catch yet: the gap the holdout split measures (issue #7).
GAP = pytest.mark.xfail(strict=True, reason="known generalisation gap (a fresh paraphrase, in no split)")


@pytest.fixture(scope="module")
def rules() -> Reviewer:
    return Reviewer(None)


def _risk(reviewer: Reviewer, text: str) -> Severity:
    return reviewer.review_text(text).risk


def _rule_categories(reviewer: Reviewer, text: str) -> set[str]:
    return {str(f.category) for f in reviewer.review_text(text).flags}


@pytest.mark.parametrize("text", [
    "No leak seen glove torn during spike",  # the negation is closed by "seen"
    "No issues - bag torn at port during transfer",  # a dash ends the negation's scope
    "no particles; flask cracked at the neck",
])
def test_a_negation_in_one_clause_does_not_clear_an_event_in_another(rules: Reviewer, text: str) -> None:
    assert _risk(rules, text) is Severity.CRITICAL


@pytest.mark.parametrize("text", [
    "No growth seen on any plates; glove checked intact",
    "Bag inspected post thaw, no leaks, no cracks, label intact",
    "Mycoplasma PCR: not detected",
    "Particle counts within grade A limits throughout the fill",
])
def test_negated_routine_stays_quiet(rules: Reviewer, text: str) -> None:
    assert _risk(rules, text) is Severity.NONE


@pytest.mark.parametrize(("text", "risk"), [
    ("viab 61,5% (limit ≥70%)", Severity.CRITICAL),
    ("Viability 61,5 % ; spec ≥ 70 %", Severity.CRITICAL),
    ("TNC 1,2 x 10^6 cells/kg, required minimum 2.0 x 10^6 cells/kg", Severity.CRITICAL),
    ("dose 1.5×10⁶ cells/kg, min 2×10⁶", Severity.CRITICAL),
    ("CAR+ expression 12% vs spec NLT 15%", Severity.CRITICAL),
    ("pH 7,9 (range 7,0-7,6)", Severity.MAJOR),
    ("TNC 2,4 x 10^8 cells, required minimum 1,0 x 10^8", Severity.NONE),
    ("Endotoxin < 0,05 EU/mL (limit ≤ 0,5 EU/mL)", Severity.NONE),
    pytest.param("LAL 0.12 EU/mL, well below the limit of 0.5 EU/mL", Severity.NONE,
                 marks=GAP),
    ("purity 95%; the limit is ≥ 90%.", Severity.NONE),
    ("CD3+ purity 68 %; the limit is ≥ 85 %", Severity.CRITICAL),
])
def test_values_with_decimal_commas_and_powers_of_ten(rules: Reviewer, text: str, risk: Severity) -> None:
    assert _risk(rules, text) is risk


@pytest.mark.parametrize(("text", "category"), [
    ("Label (PT-1093) on bag 2 differs from the order", "identity"),
    ("The number on the cryobag differs from the ID on the traveller", "identity"),
    ("Label (PT-1093) differs from the traveller", "identity"),
    ("Box of HBSS/HEPES bottles arrived crushed", "material"),
    ("Hold time between wash and formulation exceeded by 40 min", "procedure"),
    pytest.param("Dewar temp. rose above -150°C on the way to the ward", "identity",
                 marks=GAP),
])
def test_punctuation_inside_a_thought_does_not_break_a_pattern(rules: Reviewer, text: str, category: str) -> None:
    assert category in _rule_categories(rules, text)


@pytest.mark.parametrize(("text", "category"), [
    ("Mycoplasma qPCR came back positive for the in-process sample", "contamination"),
    ("Spotted a hairline crack along the base of the cryobag after thaw", "contamination"),
    ("The vial was opened outside of the BSC by mistake", "contamination"),
    ("Personnel monitoring: 3 CFU on left forearm, grade B", "contamination"),
    ("total nucleated cell dose did not reach the target dose", "out_of_spec"),
    ("The incubator would not hold 37 °C, display flickering", "equipment"),
    ("The welder had to be restarted twice before it sealed", "equipment"),
    ("The cytokine had passed its in-use expiry when it was added", "material"),
    ("CoA for the retronectin lot is not on file", "material"),
    ("The reagent was reconstituted with the wrong diluent", "material"),
    ("Used the obsolete version 3 of the thaw SOP", "procedure"),
    pytest.param("My colleague went out of the suite before step 9 was done, I finished it alone", "procedure",
                 marks=GAP),
    ("The operator did the wash before the spin, in reverse order to the MBR", "procedure"),
    ("Feeding was delayed by one day due to staffing", "procedure"),
    ("Timer was not started for the 20 min incubation", "procedure"),
    ("Line clearance for suite 2 was not documented before the start", "procedure"),
    ("We added an extra wash step which is not in the batch record", "procedure"),
    ("Results were copied from the previous batch record", "data_integrity"),
    ("Entry made 3 days post the activity", "data_integrity"),
    ("Verifier signed without witnessing the step", "data_integrity"),
    ("Audit trail was disabled on the cell counter PC", "data_integrity"),
    ("Bag label shows patient ID PT-0412, but the traveller says PT-0421", "identity"),
])
def test_paraphrase_families(rules: Reviewer, text: str, category: str) -> None:
    assert category in _rule_categories(rules, text)


def test_narrative_would_not_is_not_hypothetical(rules: Reviewer) -> None:
    assert _risk(rules, "The freezer door would not close") is Severity.MAJOR
    assert _risk(rules, "Should the freezer alarm again, call the engineer") is Severity.MINOR


def test_critical_identifier_conflict_is_a_rule_flag(rules: Reviewer) -> None:
    review = rules.review_text("Bag label shows patient ID PT-0412, but the traveller says PT-0421")
    assert review.risk is Severity.CRITICAL
    assert all(not f.rule.startswith("model.") for f in review.flags)
    assert _risk(rules, "PT-0041 processed, then PT-0042 after line clearance") is Severity.NONE


def test_omission_negation_still_raises(rules: Reviewer) -> None:
    assert _risk(rules, "no EM plate taken") is not Severity.NONE
    assert _risk(rules, "verification not performed") is not Severity.NONE
    assert _risk(rules, "label not checked") is Severity.CRITICAL
