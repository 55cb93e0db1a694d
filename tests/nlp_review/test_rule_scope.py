"""How far a rule's exceptions reach (pipelines 1.2.1 and 1.2.2): an exception covers the words it is about, never
a whole clause or the next sentence. Each case was a missed critical item before."""

from __future__ import annotations

import pytest

from nlp_review.pipeline.reviewer import Reviewer
from nlp_review.pipeline.types import Severity


def rules_of(reviewer: Reviewer, text: str) -> dict[str, Severity]:
    return {flag.rule: flag.severity for flag in reviewer.review_text(text).flags}


@pytest.mark.parametrize(("text", "rule", "severity"), [
    # An in-spec value clears its own statement, not another result in the same clause.
    ("Viability 85% (limit >=70%), endotoxin result out of specification", "oos.stated", Severity.CRITICAL),
    ("pH 7.2 (range 7.0-7.4) and osmolality OOS", "oos.stated", Severity.MAJOR),
    # An abbreviation's period that ends a sentence ends the negation's reach too.
    ("No deviation in temp. Glove torn during transfer.", "aseptic.glove_breach", Severity.CRITICAL),
    # Packaging words exclude only the packaging's own damage.
    ("Bag cracked at the port, placed in outer box for transport", "aseptic.vessel_breach", Severity.CRITICAL),
    ("Cryobag punctured, outer overwrap also damaged", "aseptic.vessel_breach", Severity.CRITICAL),
    ("Tubing weld failed, bag returned to the incubator", "aseptic.closed_system_breach", Severity.CRITICAL),
    # Two identifiers of one kind: with or without a dash, joined by "and" or not.
    ("Label PT0412 on bag, traveller says PT0421.", "identity.two_identifiers", Severity.CRITICAL),
    ("Label PT-0412 on bag and traveller says PT-0421.", "identity.two_identifiers", Severity.CRITICAL),
    # A dash inside a number ("2024-0871") is no barrier, also in a text without other soft marks (1.2.2).
    ("Cryobag 2024-0871 cracked", "aseptic.vessel_breach", Severity.CRITICAL),
    # "within" clears the colony count it is about, not a count in another sentence (1.2.2).
    ("Gown sleeve plate 4 cfu. Room pressure within limits.", "aseptic.personnel_colonies", Severity.MAJOR),
    ("Room pressure within limits, gown sleeve plate 4 cfu.", "aseptic.personnel_colonies", Severity.MAJOR),
])
def test_a_rule_exception_does_not_reach_past_its_own_words(rules_only: Reviewer, text: str, rule: str,
                                                              severity: Severity) -> None:
    assert rules_of(rules_only, text).get(rule) is severity


@pytest.mark.parametrize(("text", "cleared"), [
    ("viability 92% (limit >=70%), not below limit", "oos.stated"),
    ("outer overwrap punctured, bag intact", "aseptic.vessel_breach"),
    ("seal of the reagent bottle broken on receipt", "aseptic.closed_system_breach"),
    ("PT-0041 then PT-0042 after line clearance", "identity.two_identifiers"),
    ("PT-0041 and PT-0042 processed in separate BSCs", "identity.two_identifiers"),
    ("temp. rose to 37.5C, within range", "aseptic.glove_breach"),
    ("Gown sleeve plate 4 cfu, within limits.", "aseptic.personnel_colonies"),
    ("Operator glove <1 cfu", "aseptic.personnel_colonies"),
])
def test_the_exceptions_still_hold_for_what_they_are_about(rules_only: Reviewer, text: str, cleared: str) -> None:
    assert cleared not in rules_of(rules_only, text)


def test_an_abbreviation_inside_a_sentence_stays_one_word(rules_only: Reviewer) -> None:
    doc = rules_only.nlp("temp. rose, no deviation in temp. Glove torn")
    assert [token.text for token in doc][:2] == ["temp.", "rose"]
    assert [token.text for token in doc][6:9] == ["temp", ".", "Glove"]
