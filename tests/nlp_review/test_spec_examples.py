"""The examples of shared/specs/nlp-review.md, exactly."""

from __future__ import annotations

import pytest

from nlp_review.pipeline import Category, Severity
from nlp_review.pipeline.reviewer import Reviewer

SPEC_TEXT = "Glove torn during transfer in BSC, changed gloves."
SPEC_FLAGS = [{"category": "contamination", "severity": "critical", "start": 0, "end": 10, "evidence": "Glove torn",
               "rule": "aseptic.glove_breach"}]


def test_glove_torn_is_critical_contamination_with_the_spec_evidence(reviewer: Reviewer) -> None:
    review = reviewer.review_text(SPEC_TEXT)
    assert review.risk is Severity.CRITICAL
    assert [flag.as_contract_dict() for flag in review.flags] == SPEC_FLAGS


def test_glove_torn_is_the_same_on_rules_alone(rules_only: Reviewer) -> None:
    assert [flag.as_contract_dict() for flag in rules_only.review_text(SPEC_TEXT).flags] == SPEC_FLAGS


def test_flag_quotes_its_evidence_and_names_its_rule(reviewer: Reviewer) -> None:
    flag = reviewer.review_text(SPEC_TEXT).flags[0]
    assert SPEC_TEXT[flag.start:flag.end] == flag.evidence
    assert flag.rule == "aseptic.glove_breach"
    assert flag.explanation
    assert not flag.context.negated


@pytest.mark.parametrize("text", ["no growth observed", "no leaks", "label verified, matches COI", "alarm test passed",
                                  "pH within range"])
def test_spec_negated_language_is_not_a_flag(reviewer: Reviewer, text: str) -> None:
    review = reviewer.review_text(text)
    assert review.risk is Severity.NONE, review.flags
    assert review.flags == ()


@pytest.mark.parametrize(("text", "category"), [
    ("possible growth in sterility bottle", Category.CONTAMINATION),
    ("suspected leak at spike port", Category.CONTAMINATION),
    ("previous batch had mycoplasma contamination", Category.CONTAMINATION),
])
def test_spec_hedged_or_historical_language_still_needs_a_human(reviewer: Reviewer, text: str,
                                                               category: Category) -> None:
    review = reviewer.review_text(text)
    assert review.needs_attention
    assert category in review.categories


@pytest.mark.parametrize(("text", "category"), [
    ("viability 61% (limit ≥70%)", Category.OUT_OF_SPEC),
    ("pH drifted to 6.6", Category.OUT_OF_SPEC),
    ("centrifuge error E-12", Category.EQUIPMENT),
    ("incubator CO2 alarm", Category.EQUIPMENT),
    ("calibration overdue on pipette P-200", Category.EQUIPMENT),
    ("expired reagent used", Category.MATERIAL),
    ("quarantined material used", Category.MATERIAL),
    ("step 12 skipped", Category.PROCEDURE),
    ("hold time exceeded by 40 min", Category.PROCEDURE),
    ("entered later from notes", Category.DATA_INTEGRITY),
    ("signed for colleague", Category.DATA_INTEGRITY),
    ("label does not match the patient ID", Category.IDENTITY),
    ("two patients' material in one BSC", Category.IDENTITY),
    ("EM count above action limit", Category.CONTAMINATION),
    ("bag leaking at the spike port", Category.CONTAMINATION),
    # the spec's bare "mycoplasma" and "endotoxin", as entries say them
    ("Possible mycoplasma.", Category.CONTAMINATION),
    ("Endotoxin result high.", Category.CONTAMINATION),
    ("Endotoxin above the limit.", Category.CONTAMINATION),
    ("Bioburden elevated.", Category.CONTAMINATION),
])
def test_spec_examples_of_language_raise_their_category(reviewer: Reviewer, text: str, category: Category) -> None:
    assert category in reviewer.review_text(text).categories


@pytest.mark.parametrize("text", ["Mycoplasma sample taken for QC.", "Endotoxin sample sent to QC.",
                                  "Endotoxin below limit.", "Endotoxin within limits."])
def test_routine_mentions_of_a_test_are_not_a_flag(reviewer: Reviewer, text: str) -> None:
    assert reviewer.review_text(text).flags == ()
