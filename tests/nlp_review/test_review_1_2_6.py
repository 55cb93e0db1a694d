"""Pipeline 1.2.6: misses and false flags found by a black-box review of `review_text` (a separate
session wrote 282 texts from the spec alone). The sentences here are paraphrases written for these
tests, not that review's texts and not corpus entries; rules only (the classifier may add a major
flag, never a critical one)."""

from __future__ import annotations

import io
import json

import pytest

from nlp_review.pipeline.jsonl import review_jsonl
from nlp_review.pipeline.reviewer import Reviewer
from nlp_review.pipeline.types import Severity


@pytest.fixture(scope="module")
def rules() -> Reviewer:
    return Reviewer(None)


def _flags(reviewer: Reviewer, text: str) -> set[tuple[str, str]]:
    return {(str(f.category), str(f.severity)) for f in reviewer.review_text(text).flags}


@pytest.mark.parametrize(("text", "category"), [
    # hedged with "if"/"whether": doubt about this batch's event, not a hypothetical (was minor)
    ("Not sure if the glove was torn.", "contamination"),
    ("Unclear whether the bag was leaking.", "contamination"),
    ("unsure if medium turbid at day 5", "contamination"),
    # words the breach rules did not know
    ("Glove tore while working inside the BSC.", "contamination"),
    ("Pinhole found in the culture bag near the seam.", "contamination"),
    ("Small hole seen in the transfer bag after thaw.", "contamination"),
    ("Vial cap was loose after thaw.", "contamination"),
    ("Operator left the room with the bag open in the BSC.", "contamination"),
    ("Endotoxin > limit", "contamination"),
    # identity
    ("Suspected mislabel on cryobag 3, under investigation.", "identity"),
    ("Bag was not labelled before leaving the BSC.", "identity"),
    ("Sample tubes not labeled at the time of collection.", "identity"),
    ("Cells transduced with vector reserved for patient 12 instead of patient 14.", "identity"),
    ("Nobody checked the COI before the bag left the BSC.", "identity"),
    # falsified data
    ("Result changed to pass after discussion with supervisor.", "data_integrity"),
    ("Count changed to within spec after the supervisor asked.", "data_integrity"),
    ("Counted twice, used the better result.", "data_integrity"),
    ("Repeated the count three times and reported the highest value.", "data_integrity"),
    # release before results
    ("Product infused before sterility result available, per physician.", "procedure"),
])
def test_critical_events_are_critical(rules: Reviewer, text: str, category: str) -> None:
    assert (category, "critical") in _flags(rules, text)


@pytest.mark.parametrize(("text", "category"), [
    ("Entries made by operator2 under my login.", "data_integrity"),
    ("Sterility not tested before release due to time pressure.", "contamination"),
    ("Sterility sample for final product not taken, bags already frozen.", "contamination"),
])
def test_omissions_and_borrowed_logins_are_flagged(rules: Reviewer, text: str, category: str) -> None:
    assert category in {c for c, _ in _flags(rules, text)}


@pytest.mark.parametrize("text", [
    "Leak? No.",
    "Turbidity: no.",
    "Glove integrity checked, no tears.",
    "Did not observe any turbidity.",
    "We did not observe any growth in the bottles.",
    "Nobody reported leaks during the shift.",
    "Bags labelled and checked against the COI.",
    "The centrifuge error log was reviewed and is empty.",
    "CO2 alarm limits set to 4.5-5.5%.",
    "Endotoxin < limit",
    "sterility tested negative x2",
    "checked caps on all vials, none loose",
    "inspected bag for pinholes - none",
    "pH value changed to within range after CO2 adjustment",
])
def test_negated_and_routine_text_stays_quiet(rules: Reviewer, text: str) -> None:
    assert rules.review_text(text).risk is Severity.NONE, rules.review_text(text).flags


def test_glove_integrity_said_to_fail_is_still_a_breach(rules: Reviewer) -> None:
    assert ("contamination", "critical") in _flags(rules, "Glove integrity test failed after the spike.")


def test_a_byte_order_mark_before_the_first_line_is_not_part_of_it(rules: Reviewer) -> None:
    """A JSON Lines file saved by a Windows editor starts with EF BB BF."""
    sink = io.BytesIO()
    review_jsonl(io.BytesIO(b'\xef\xbb\xbf{"id": "a", "text": "Glove torn"}\n{"id": "b", "text": "\xef\xbb\xbf"}\n'),
                 sink, rules.review_texts)
    first, second = (json.loads(line) for line in sink.getvalue().splitlines())
    assert (first["id"], first["risk"]) == ("a", "critical")
    assert second == {"id": "b", "risk": "none", "flags": []}  # only the stream's first bytes are a mark


def test_a_text_longer_than_spacy_takes_at_once_is_reviewed_to_its_end() -> None:
    """spaCy refuses a text past nlp.max_length (a million characters) in one piece: the review
    reads it in pieces, and every flag's offsets point into the whole text."""
    reviewer = Reviewer(None)
    reviewer.nlp.max_length = 5_000  # the same path as a 2-million-character paste, in a second
    text = "Routine feed done, no issues.\n" * 400 + "Glove torn during transfer in BSC. " + "All fine. " * 300

    review = reviewer.review_text(text)

    assert review.risk is Severity.CRITICAL
    [flag] = [f for f in review.flags if f.rule == "aseptic.glove_breach"]
    assert text[flag.start:flag.end] == flag.evidence == "Glove torn"
    assert flag.start == 400 * len("Routine feed done, no issues.\n")
