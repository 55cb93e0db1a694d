"""Negation and context, per category: ruled-out events clear, omitted controls raise, hedging keeps the
severity, history caps it at major, conditionals at minor (nlp_review/pipeline/policy.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlp_review.pipeline import Category, Severity
from nlp_review.pipeline import context as context_module
from nlp_review.pipeline.reviewer import Reviewer

C = Category

NEGATED_EVENTS = [
    ("no growth observed", C.CONTAMINATION), ("sterility d14: no growth", C.CONTAMINATION),
    ("gloves checked, no tears, no holes", C.CONTAMINATION), ("mycoplasma not detected", C.CONTAMINATION),
    ("myco neg", C.CONTAMINATION), ("flask 2 clear, not turbid", C.CONTAMINATION),
    ("contamination ruled out by micro", C.CONTAMINATION), ("no particles, turbidity or clumps", C.CONTAMINATION),
    ("no OOS", C.OUT_OF_SPEC), ("no retest needed", C.OUT_OF_SPEC),
    ("no alarms during the run", C.EQUIPMENT), ("centrifuge run complete, no error", C.EQUIPMENT),
    ("BSC airflow ok, no alarm", C.EQUIPMENT),
    ("IL-2 lot LV19-0091 exp 12/26, not expired", C.MATERIAL), ("no damage to the box", C.MATERIAL),
    ("step 19 not skipped, see p.4", C.PROCEDURE), ("no deviation", C.PROCEDURE),
    ("no corrections on this page", C.DATA_INTEGRITY),
    ("no label issues", C.IDENTITY), ("no labelling discrepancies found", C.IDENTITY),
    # "nothing" negates what follows; "none" and "nil" also what precedes them
    ("Nothing deleted.", C.DATA_INTEGRITY), ("Nothing skipped.", C.PROCEDURE), ("Growth: none.", C.CONTAMINATION),
    ("Growth - none.", C.CONTAMINATION), ("Leaks: nil", C.CONTAMINATION),
    # said on the passing side of a limit
    ("Endotoxin below limit.", C.OUT_OF_SPEC), ("endotoxin below the action limit", C.OUT_OF_SPEC),
    ("Viability above minimum.", C.OUT_OF_SPEC), ("lactate below limit", C.OUT_OF_SPEC),
]


@pytest.mark.parametrize(("text", "category"), NEGATED_EVENTS)
def test_ruled_out_event_raises_nothing(rules_only: Reviewer, text: str, category: Category) -> None:
    review = rules_only.review_text(text)
    assert category not in review.categories, review.flags
    assert review.risk is Severity.NONE


OMISSIONS = [
    ("verification not performed", C.DATA_INTEGRITY, Severity.MAJOR, "verification not performed"),
    ("no EM plate taken", C.CONTAMINATION, Severity.MAJOR, "no EM plate taken"),
    ("label not checked", C.IDENTITY, Severity.CRITICAL, "label not checked"),
    ("settle plates not exposed during harvest", C.CONTAMINATION, Severity.MAJOR, "settle plates not exposed"),
    ("COI not verified before formulation", C.IDENTITY, Severity.CRITICAL, "COI not verified"),
    ("label does not match patient ID PT-0042", C.IDENTITY, Severity.CRITICAL, "label does not match"),
    ("expiry not checked for IL-7", C.MATERIAL, Severity.MAJOR, "expiry not checked"),
    ("no CoA for lot LV19-0091", C.MATERIAL, Severity.MAJOR, "no CoA"),
    ("line clearance not done", C.PROCEDURE, Severity.MAJOR, "line clearance not done"),
    ("not signed by verifier", C.DATA_INTEGRITY, Severity.MAJOR, "not signed"),
    ("BSC not cleaned before harvest", C.CONTAMINATION, Severity.MAJOR, "BSC not cleaned"),
]


@pytest.mark.parametrize(("text", "category", "severity", "evidence"), OMISSIONS)
def test_negation_of_a_required_control_raises(rules_only: Reviewer, text: str, category: Category,
                                               severity: Severity, evidence: str) -> None:
    flags = [flag for flag in rules_only.review_text(text).flags if flag.category is category]
    assert flags, rules_only.review_text(text)
    assert flags[0].severity is severity
    assert flags[0].evidence == evidence
    assert flags[0].context.negated


@pytest.mark.parametrize("text", ["label verified, matches COI", "EM plates 0 cfu, within limits",
                                  "signed and verified", "COI checked, correct", "line clearance done",
                                  "courier on time, logger ok", "expiry checked, in date"])
def test_an_affirmed_control_raises_nothing(rules_only: Reviewer, text: str) -> None:
    assert rules_only.review_text(text).flags == ()


def test_no_growth_on_plates_is_not_an_omitted_plate(rules_only: Reviewer) -> None:
    assert rules_only.review_text("no growth on settle plates").flags == ()


@pytest.mark.parametrize("text", ["poss glove breach during harvest", "suspected glove tear", "?leak at spike port",
                                  "contamination cannot be excluded", "possible mix-up of bags 2 and 3"])
def test_hedged_event_keeps_its_severity(rules_only: Reviewer, text: str) -> None:
    review = rules_only.review_text(text)
    assert review.risk is Severity.CRITICAL, review.flags
    assert any(flag.context.uncertain for flag in review.flags)


@pytest.mark.parametrize("text", ["previous batch had mycoplasma contamination in this suite",
                                  "same glove tear happened last batch", "previous order had a label mix-up"])
def test_historical_event_is_capped_at_major(rules_only: Reviewer, text: str) -> None:
    review = rules_only.review_text(text)
    assert review.risk is Severity.MAJOR, review.flags
    assert all(flag.context.historical for flag in review.flags)


def test_other_batch_event_is_capped_at_major(rules_only: Reviewer) -> None:
    review = rules_only.review_text("turbid flask in the other suite")
    assert review.risk is Severity.MAJOR
    assert review.flags[0].context.other_batch


def test_conditional_is_minor(rules_only: Reviewer) -> None:
    review = rules_only.review_text("if turbid tomorrow inform QA")
    assert review.risk is Severity.MINOR
    assert review.flags[0].context.hypothetical


def test_negation_scope_stops_at_but(rules_only: Reviewer) -> None:
    review = rules_only.review_text("no leaks but glove torn at the cuff")
    assert review.risk is Severity.CRITICAL
    assert [flag.evidence for flag in review.flags] == ["glove torn"]


def test_negation_does_not_reach_the_next_clause(rules_only: Reviewer) -> None:
    review = rules_only.review_text("No leaks. Flask 3 cracked at the neck.")
    assert C.CONTAMINATION in review.categories


def test_typos_and_shorthand_are_read(rules_only: Reviewer) -> None:
    assert rules_only.review_text("glvoe torn in bsc").risk is Severity.CRITICAL
    assert C.OUT_OF_SPEC in rules_only.review_text("viab 55% (lim ≥70%)").categories
    assert rules_only.review_text("myco -ve").flags == ()


@pytest.mark.parametrize(("text", "category"), [
    ("Endotoxin above limit.", C.OUT_OF_SPEC), ("Viability below minimum.", C.OUT_OF_SPEC),
    ("cell count below target", C.OUT_OF_SPEC), ("Glove torn, none observed on the bag.", C.CONTAMINATION),
    ("None. Glove torn.", C.CONTAMINATION), ("Nothing recorded. Glove torn.", C.CONTAMINATION),
])
def test_the_failing_side_and_events_outside_a_negation_still_raise(rules_only: Reviewer, text: str,
                                                                     category: Category) -> None:
    assert category in rules_only.review_text(text).categories


@pytest.mark.parametrize("text", ["Label verified against COI.", "Bag label matches patient ID.",
                                  "Label verified, matches COI.", "Endotoxin below limit.", "Nothing deleted."])
def test_a_confirmation_is_no_finding_for_the_classifier_either(reviewer: Reviewer, text: str) -> None:
    """The shipped pipeline (rules and classifier): a check that came out right is not flagged."""
    review = reviewer.review_text(text)
    assert review.flags == (), review.flags


def test_a_confirmation_with_a_word_of_trouble_is_left_to_the_classifier(reviewer: Reviewer) -> None:
    review = reviewer.review_text("Label checked, wrong patient ID.")
    assert Category.IDENTITY in review.categories


@pytest.mark.parametrize("text", ["Bag label matches the previous patient.",
                                  "Patient ID confirmed as P-1002 on bag for patient P-1020.",
                                  "Label reconciled with COI of previous batch.",
                                  "Label reconciled with COI of another patient."])
def test_a_check_that_came_out_right_against_the_wrong_record_is_flagged(reviewer: Reviewer, text: str) -> None:
    """A match with another patient's or batch's record is a mix-up: the confirmation word must
    not hide it."""
    assert Category.IDENTITY in reviewer.review_text(text).categories


@pytest.mark.parametrize("text", ["Endotoxin below limit. Cell viability 52% at harvest.",
                                  "Bioburden below action limit. Viability 55 % at harvest."])
def test_a_passing_result_rules_out_only_itself(reviewer: Reviewer, text: str) -> None:
    """One analyte said to pass does not clear another result of the same record."""
    review = reviewer.review_text(text)
    (flag,) = [f for f in review.flags if f.category is Category.OUT_OF_SPEC]
    assert "iability" in flag.evidence


@pytest.mark.parametrize("text", ["Patient ID verified prior to infusion.",
                                  "Patient identity confirmed prior to infusion.",
                                  "Second person verification by another operator: patient ID matches.",
                                  "Patient ID P-1002 and DIN W1234 confirmed on bag.",
                                  "Patient ID P-1002 and COI-2026-0007 confirmed on bag label."])
def test_a_routine_confirmation_naming_one_record_stays_no_finding(reviewer: Reviewer, text: str) -> None:
    """'Prior to infusion', a four-eyes check 'by another operator', a patient ID beside the DIN or
    COI of the same record: no mix-up (1.2.4 flagged these)."""
    assert reviewer.review_text(text).flags == ()


@pytest.mark.parametrize(("text", "flagged"), [
    ("Patient ID confirmed as P-1002, bag for patient P-1020.", True),
    ("Patient ID confirmed as P-1002 on bag for patient P-1020.", True),
    ("Plate P-100 and P-200 read.", False),  # not about a patient: plates, passages
])
def test_two_patient_numbers_of_the_p_form_are_a_conflict_even_across_a_comma(rules_only: Reviewer, text: str,
                                                                                flagged: bool) -> None:
    assert (Category.IDENTITY in rules_only.review_text(text).categories) is flagged


# --- scope reach: only nearby triggers are looked at, and that changes nothing ---------------------

_WORDS = sorted({"no", "not", ",", ".", "and", "or", "ruled", "out", "previous", "batch", "possible", "if",
                 "documented", "checked", "label", "leak", "glove", "torn", "seen", "none", "negative", "was"})
_KINDS = sorted({kind for kind, _ in context_module.TRIGGERS}, key=repr)


@st.composite
def _contexts(draw: st.DrawFn) -> tuple[list[str], list[context_module.TriggerHit], int, int]:
    norms = draw(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=120))
    hits = [context_module.TriggerHit(start, min(len(norms), start + length), kind) for start, length, kind in draw(
        st.lists(st.tuples(st.integers(0, len(norms) - 1), st.integers(1, 3), st.sampled_from(_KINDS)), max_size=40))]
    start = draw(st.integers(0, len(norms) - 1))
    end = draw(st.integers(start + 1, min(len(norms), start + 6)))
    return norms, context_module.resolve_triggers(hits), start, end


@settings(max_examples=600, deadline=None)
@given(_contexts(), st.booleans())
def test_looking_only_at_triggers_within_reach_finds_the_same_modifiers(case, check_rule) -> None:  # type: ignore[no-untyped-def]
    """A pasted log of 200,000 characters took 11 s when every target looked at every trigger of the
    text; now each looks only within SCOPE_REACH tokens, which must never change what it finds."""
    norms, triggers, start, end = case
    near = context_module.modifiers_for(norms, triggers, start, end, check_rule=check_rule)
    reach = context_module.SCOPE_REACH
    try:
        context_module.SCOPE_REACH = 10**9
        everywhere = context_module.modifiers_for(norms, triggers, start, end, check_rule=check_rule)
    finally:
        context_module.SCOPE_REACH = reach
    assert near == everywhere


def test_a_long_pasted_log_is_read_to_its_end_like_its_parts(rules_only: Reviewer) -> None:
    """The same flags, at the same places, whether a long text is reviewed whole or line by line."""
    lines = ["Glove tear noticed on left hand, gloves changed.", "No leaks observed.", "Label checked, correct.",
             "Sample sent to QC for sterility testing.", "Possible turbidity in flask 3, sent to QA."]
    parts = [lines[(i * 7) % len(lines)] for i in range(3000)]
    text = "\n".join(parts)

    whole = rules_only.review_text(text)

    offsets, position = [], 0
    for part in parts:
        offsets.append(position)
        position += len(part) + 1
    by_part = [(offset + flag.start, flag.rule, flag.severity) for offset, part in zip(offsets, parts, strict=True)
               for flag in rules_only.review_text(part).flags]
    assert [(flag.start, flag.rule, flag.severity) for flag in whole.flags] == by_part
    assert len(whole.flags) >= 1200
