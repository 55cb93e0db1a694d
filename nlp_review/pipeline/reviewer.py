"""Build the pipeline and review texts: the rules decide, the classifier adds what they missed.

Intended use (draft EU GMP Annex 22): a static, deterministic model with a stated intended use.
It reads the free text of a batch record (operator comments, step remarks, correction reasons,
deviation descriptions, alarm acknowledgements) and proposes flags for a trained QA reviewer,
who dispositions each one. It never decides a batch's fate and never hides a record: an entry
with no flag is still in the record, only lower in the review queue.

How the two parts combine, so that the critical path stays deterministic and explainable:
- every rule flag stands (rules/, values.py, context.py, policy.py) and only rules raise `critical`;
- the classifier may add a flag for a category no rule flagged, at `major` (never critical), with
  the clause it scored highest as evidence and rule ``model.textcat@<version>``;
- it may not add a category that a rule saw and found ruled out ("no growth"), nor an
  out-of-spec flag where every stated value was within its stated limit.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc, Span

from nlp_review.pipeline import context as context_module
from nlp_review.pipeline.lexicon import install_normalizer
from nlp_review.pipeline.matching import USER_DATA_KEY, RawFlag, RuleResult, two_numbers_of_one_kind, vocabulary
from nlp_review.pipeline.rules import rules_fingerprint
from nlp_review.pipeline.textcat import MODEL_DIR, PIPE_NAME, ModelInfo, load_textcat
from nlp_review.pipeline.tokenizer import blank_english
from nlp_review.pipeline.types import Category, Flag, Severity, TextReview, highest
from nlp_review.pipeline.version import PIPELINE_VERSION

MODEL_SEVERITY = Severity.MAJOR
CLAUSE_BREAKS = frozenset({".", ";", ",", "!", "but", "however", "whereas", "\n"})
# A clause that only states a check came out right ("label verified against COI", "bag label
# matches patient ID") is no finding: the classifier, which reads words rather than what is said
# of them, must not flag it. A clause with a word of trouble in it still may be flagged.
CONFIRMATIONS = frozenset({"verified", "matches", "matched", "match", "confirmed", "correct", "correctly",
                           "reconciled", "agrees", "agreed", "consistent", "passed", "intact", "acceptable",
                           "satisfactory", "conforms", "compliant",
                           # a question the entry answers itself: "Sterility sample taken? Yes, 11:05"
                           "yes"})
TROUBLE = frozenset({"not", "no", "never", "without", "mismatch", "mismatched", "wrong", "incorrect", "incorrectly",
                     "failed", "fail", "fails", "unable", "missing", "unlabeled", "unlabelled", "illegible",
                     "discrepancy", "different", "only", "after", "later", "but",
                     # a check that came out right against the wrong record is a mix-up, not a confirmation
                     "instead", "swapped", "switched", "mix-up", "mixup"})
# "Matches the previous patient", "COI of another batch": another record named, a mix-up. Not
# "verified prior to infusion" or "verification by another operator" (a routine four-eyes check).
ANOTHER = frozenset({"previous", "prior", "earlier", "other", "another", "next", "someone"})
RECORD_WORDS = frozenset({"patient", "patients", "batch", "batches", "bag", "bags", "donor", "coi", "label",
                          "labels", "record", "product", "subject", "id", "din", "else", "s"})
# The same kind of identifier with two different numbers in one entry ("confirmed as P-1002 on bag
# for patient P-1020") says the check compared two records. A patient ID beside the DIN, COI or
# batch number of the same record is one record named twice.
IDENTIFIER = re.compile(r"\b([A-Za-z]{1,5})[-_]?(\d{2,}(?:[-_]\d+)*)\b")
DEFAULT_BATCH_SIZE = 256
CACHE_SIZE = 4096
LONG_PIECE = 20_000  # characters per piece of a text longer than spaCy takes at once
CATEGORY_BY_LABEL = {str(category): category for category in Category}


def build_nlp() -> Language:
    """A blank English pipeline with the project's tokenizer, normaliser and rules component."""
    import nlp_review.pipeline.matching  # noqa: F401  (registers the "ebr_review_rules" factory)

    nlp = blank_english()
    install_normalizer(nlp, vocabulary())
    nlp.add_pipe("ebr_review_rules")
    return nlp


class Reviewer:
    """Reviews texts. Build once per process (about a second) and reuse; not for use from two threads.

    `model_dir=None` (or a directory without a trained model) reviews on rules alone, and
    `pipeline_version` says so.
    """

    def __init__(self, model_dir: Path | None = MODEL_DIR) -> None:
        self.nlp = build_nlp()
        self.model: ModelInfo | None = load_textcat(self.nlp, model_dir) if model_dir is not None else None
        model_part = f"textcat.{self.model.version}" if self.model else "rules-only"
        self._cache: dict[str, TextReview] = {}
        self.pipeline_version = f"{PIPELINE_VERSION}+rules.{rules_fingerprint(context_module.TRIGGERS)}+{model_part}"

    def review_text(self, text: str) -> TextReview:
        return self.review_texts([text])[0]

    def review_texts(self, texts: Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE) -> list[TextReview]:
        return list(self.iter_reviews(texts, batch_size=batch_size))

    def iter_reviews(self, texts: Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[TextReview]:
        """Reviews in input order, as a stream (nlp.pipe in batches).

        Batch records repeat themselves ("as per SOP", "no growth observed", "N/A"): a text seen
        recently is answered from a bounded cache. Reviews are frozen and deterministic, so a
        cached review is the same object the pipeline would build again.
        """
        for chunk in _chunks(texts, batch_size):
            known = {text: self._cache[text] for text in chunk if text in self._cache}
            missing = list(dict.fromkeys(text for text in chunk if text not in known))
            for text in [text for text in missing if len(text) > self.nlp.max_length]:
                known[text] = self._review_long(text)
            missing = [text for text in missing if text not in known]
            for text, doc in zip(missing, self.nlp.pipe(missing, batch_size=batch_size), strict=True):
                known[text] = self._review(doc)
                self._remember(text, known[text])
            for text in chunk:
                yield known[text]

    def _remember(self, text: str, review: TextReview) -> None:
        if len(self._cache) >= CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))  # the oldest entry
        self._cache[text] = review

    def _review(self, doc: Doc) -> TextReview:
        result: RuleResult = doc.user_data.pop(USER_DATA_KEY, None) or RuleResult()
        flags = _merge([self._rule_flag(doc, raw) for raw in result.flags])
        scores: tuple[tuple[Category, float], ...] = ()
        if self.model is not None and doc.cats:
            scores = tuple((CATEGORY_BY_LABEL[label], round(score, 4)) for label, score in sorted(doc.cats.items()))
            flags += self._model_flags(doc, scores, {f.category for f in flags} | result.cleared,
                                       result.cleared_spans)
        return self._text_review(flags, scores)

    def _text_review(self, flags: list[Flag], scores: tuple[tuple[Category, float], ...]) -> TextReview:
        flags.sort(key=lambda f: (f.start, -f.severity.rank, f.category))
        return TextReview(risk=highest([f.severity for f in flags]), flags=tuple(flags),
                          pipeline_version=self.pipeline_version, scores=scores)

    def _review_long(self, text: str) -> TextReview:
        """A text longer than spaCy takes at once (nlp.max_length, a million characters): reviewed in
        pieces cut at line breaks (else sentence ends, else spaces), each flag put back at its place
        in the whole text, so that an event at the end of a pasted log is not left unread."""
        flags: list[Flag] = []
        scores: dict[Category, float] = {}
        for offset, piece in _pieces(text, min(LONG_PIECE, self.nlp.max_length)):
            review = self._review(self.nlp(piece))
            flags += [dataclasses.replace(flag, start=flag.start + offset, end=flag.end + offset)
                      for flag in review.flags]
            for category, score in review.scores:
                scores[category] = max(scores.get(category, 0.0), score)
        return self._text_review(flags, tuple(sorted(scores.items(), key=lambda item: str(item[0]))))

    @staticmethod
    def _rule_flag(doc: Doc, raw: RawFlag) -> Flag:
        span = doc[raw.start:raw.end]
        return Flag(category=raw.category, severity=raw.severity, start=span.start_char, end=span.end_char,
                    evidence=span.text, rule=raw.rule, context=raw.context, explanation=raw.explanation)

    def _model_flags(self, doc: Doc, scores: tuple[tuple[Category, float], ...], taken: set[Category],
                     cleared_spans: list[tuple[Category, int, int]]) -> list[Flag]:
        assert self.model is not None
        wanted = [(category, score) for category, score in scores
                  if score >= self.model.threshold and category not in taken]
        if not wanted or not any(token.is_alpha for token in doc):
            return []
        wanted = [(category, float(score)) for category, score in wanted]
        clauses = _clauses(doc)
        clause_scores = self._clause_scores(doc, clauses) if len(clauses) > 1 else None
        flags = []
        for category, score in wanted:
            best = 0
            if clause_scores is not None:
                column = list(Category).index(category)
                best = max(range(len(clauses)), key=lambda i: (clause_scores[i][column], -i))
            span = doc[clauses[best][0]:clauses[best][1]]
            words = {token.norm_ for token in span}
            if _confirmation_only(span, words) or any(
                    cleared is category and start < span.end and span.start < end
                    for cleared, start, end in cleared_spans):
                continue
            flags.append(Flag(category=category, severity=MODEL_SEVERITY, start=span.start_char, end=span.end_char,
                              evidence=span.text, rule=self.model.rule_id, score=score,
                              explanation=f"The classifier gives {category} a probability of {score:.2f} (threshold "
                                          f"{self.model.threshold:.2f}); no rule matched. Evidence is the clause it "
                                          "scores highest."))
        return flags

    def _clause_scores(self, doc: Doc, clauses: list[tuple[int, int]]) -> list[list[float]]:
        textcat = self.nlp.get_pipe(PIPE_NAME)
        predicted = textcat.predict([doc[a:b].as_doc() for a, b in clauses])  # type: ignore[attr-defined]
        order = [textcat.labels.index(str(category)) for category in Category]  # type: ignore[attr-defined]
        return [[float(row[i]) for i in order] for row in predicted.tolist()]


def _confirmation_only(span: Span, words: set[str]) -> bool:
    """Does the clause only state that a check came out right (no trouble word, one record)?"""
    if words.isdisjoint(CONFIRMATIONS) or not words.isdisjoint(TROUBLE):
        return False
    norms = [token.norm_ for token in span]
    if any(norm in ANOTHER and not RECORD_WORDS.isdisjoint(norms[i + 1:i + 3]) for i, norm in enumerate(norms)):
        return False
    return not two_numbers_of_one_kind(IDENTIFIER.findall(span.doc.text))  # the whole entry: a comma splits none


def _pieces(text: str, size: int) -> Iterator[tuple[int, str]]:
    """(offset, piece) of at most `size` characters, cut after a line break, a sentence or a space."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            for mark in ("\n", ". ", " "):
                cut = text.rfind(mark, start + size // 2, end)
                if cut >= 0:
                    end = cut + len(mark)
                    break
        yield start, text[start:end]
        start = end


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _clauses(doc: Doc) -> list[tuple[int, int]]:
    """Token spans between clause breaks, without the breaks; at least the whole text."""
    spans, start = [], 0
    for token in doc:
        if token.norm_ in CLAUSE_BREAKS or token.is_space:
            if token.i > start:
                spans.append((start, token.i))
            start = token.i + 1
    if start < len(doc):
        spans.append((start, len(doc)))
    return spans or [(0, len(doc))]


def _merge(flags: list[Flag]) -> list[Flag]:
    """One flag per category and place: where flags of one category overlap, the most severe stays."""
    kept: list[Flag] = []
    for flag in sorted(flags, key=lambda f: (-f.severity.rank, f.start, f.end - f.start)):
        if not any(k.category == flag.category and k.start < flag.end and flag.start < k.end for k in kept):
            kept.append(flag)
    return kept
