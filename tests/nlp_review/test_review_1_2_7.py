"""Pipeline 1.2.7: false flags and misses found by a black-box probe of `review_text` with negated
routine entries (a separate session wrote 310 texts without reading the rules or the corpus). The
sentences here are paraphrases written for these tests, not that probe's texts and not corpus
entries; rules only, and with the classifier where it was the classifier that spoke."""

from __future__ import annotations

import pytest

from nlp_review.pipeline.reviewer import Reviewer
from nlp_review.pipeline.types import Severity


@pytest.fixture(scope="module")
def rules() -> Reviewer:
    return Reviewer(None)


@pytest.fixture(scope="module")
def full() -> Reviewer:
    return Reviewer()


def _flags(reviewer: Reviewer, text: str) -> set[tuple[str, str]]:
    return {(str(f.category), str(f.severity)) for f in reviewer.review_text(text).flags}


@pytest.mark.parametrize("text", [
    # an absence denied is a presence: "no missing X", "X not missing"
    "Product bags checked: no missing labels on any bag.",
    "No missing countersignature on page 4.",
    "Shipping logger not missing; data downloaded, max -151 °C.",
    # "not" with a bad thing: a record that was not changed is no missing record
    "Results not transcribed by hand; printout attached.",
    "Raw data not reprocessed or reintegrated.",
    "Audit trail reviewed, data not modified.",
    # a heading, then a finding about something else: "no" is about what follows
    "Datalogger data: no excursions during transport.",
    "Settle plates: no colonies after 5 days.",
    # names and senses that are no event
    "Blood cultures incubated in the BacT/ALERT, no growth at day 7.",
    "Particle counts within alert/action levels.",
    "Platelet contamination 2 %, within spec.",
    "Red cell contamination of the apheresis product low.",
    "Batch record reviewed by QA, no further comments.",
    "Steps were not done out of order.",
    # silencing an alarm is answering it
    "Freezer alarm silenced by engineering during a planned defrost.",
    "Mycoplasma sample collected at 10:00 and sent to QC.",
    "Temperature kept stable at 37 °C.",
])
def test_routine_entries_with_negation_raise_no_rule_flag(rules: Reviewer, text: str) -> None:
    assert rules.review_text(text).flags == (), rules.review_text(text).flags


@pytest.mark.parametrize("text", [
    "Mycoplasma sample taken? Yes, 10:40, sent to QC.",
    "Four-eyes check of the bag label done? Yes - J.K.",
])
def test_a_question_the_entry_answers_yes_raises_no_classifier_flag(full: Reviewer, text: str) -> None:
    assert full.review_text(text).risk is Severity.NONE, full.review_text(text).flags


@pytest.mark.parametrize(("text", "category", "severity"), [
    # the remedy denied, the breach stated
    ("Outer gloves not replaced after a puncture was seen.", "contamination", "critical"),
    # an alarm nobody answered
    ("Incubator door alarm not acknowledged for 15 minutes.", "equipment", "major"),
    ("Unacknowledged alarm on the BSC during the fill.", "equipment", "major"),
    # a result that did not pass
    ("Day-5 IPC did not pass; culture extended.", "out_of_spec", "major"),
    ("Identity assay did not pass; sample re-sent.", "out_of_spec", "critical"),  # a release test
    # a time limit not kept
    ("Thaw hold time not respected (40 min, limit 30).", "procedure", "major"),
    # a sample not sent, a condition not held
    ("Myco samples were not submitted to the QC lab.", "contamination", "major"),
    ("Incubator O2 not held at 5 % during the night.", "equipment", "major"),
])
def test_a_denied_remedy_or_pass_is_flagged(rules: Reviewer, text: str, category: str, severity: str) -> None:
    assert (category, severity) in _flags(rules, text), rules.review_text(text).flags


@pytest.mark.parametrize(("text", "category"), [
    # guards: what the new exclusions must not silence
    ("Label missing on bag 2.", "identity"),
    ("No labels on the sample tubes.", "identity"),
    ("Data missing for day 3.", "data_integrity"),
    ("Printout not attached.", "data_integrity"),
    ("Record of the wash not signed.", "data_integrity"),
    ("No EM plates exposed during the fill.", "contamination"),
    ("Logger: no", "identity"),
    ("Bacterial contamination of flask 3.", "contamination"),
    ("Step 7 not performed.", "procedure"),
    ("BSC alarm during the fill, operator continued.", "equipment"),
])
def test_what_the_new_exclusions_leave_flagged(rules: Reviewer, text: str, category: str) -> None:
    assert category in {c for c, _ in _flags(rules, text)}, rules.review_text(text).flags
