"""The rules component: matches every rule, trigger and value cue in one pass, then applies context.

One spaCy component ("ebr_review_rules") so that a routine text with no rule word costs two
matcher calls and nothing else. Its result is stored on the Doc as `doc.user_data["ebr_review"]`
(a RuleResult); reviewer.py turns it into Flags.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from spacy.attrs import NORM, ORTH
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from nlp_review.pipeline import policy
from nlp_review.pipeline.anchored import AnchoredMatcher, compile_pattern
from nlp_review.pipeline.context import (
    TRIGGERS,
    Modifier,
    TriggerHit,
    modifiers_for,
    omission_span,
    resolve_triggers,
)
from nlp_review.pipeline.rules import ALL_RULES, Polarity, Rule
from nlp_review.pipeline.rules.base import expand_groups, is_phrase_pattern, pattern_words, phrases
from nlp_review.pipeline.types import Category, FlagContext, Severity
from nlp_review.pipeline.values import (
    COMPARATORS,
    DIRECTION_WORDS,
    LIMIT_WORDS,
    PARAMETERS,
    ValueCheck,
    check_values,
)

USER_DATA_KEY = "ebr_review"
VALUE_RULE = "oos.value_vs_limit"
ENDOTOXIN_RULE = "aseptic.endotoxin_limit"
COLONY_RULE = "aseptic.colony_count"
PERSONNEL_RULE = "aseptic.personnel_colonies"
VALUE_CUES = sorted({*COMPARATORS, *DIRECTION_WORDS, *LIMIT_WORDS, "than", "cfu", "cfus", "colonies"})
GRADE_A_WORDS = frozenset({"fingertip", "finger", "print", "prints", "isolator", "grade-a"})
WITHIN_WORDS = frozenset({"within", "below", "under", "ok", "acceptable", "passed", "pass", "compliant", "conforms",
                          "satisfactory", "<", "≤", "<=", "nad"})
PERSONNEL_WORDS = frozenset({"gown", "sleeve", "sleeves", "forearm", "chest", "personnel", "glove", "gloves", "hood",
                             "mask", "operator"})


@dataclass(frozen=True, slots=True)
class RawFlag:
    """A rule's flag before it becomes a types.Flag: token span, context already applied."""

    rule: str
    category: Category
    severity: Severity
    start: int
    end: int
    context: FlagContext
    explanation: str


@dataclass(slots=True)
class RuleResult:
    flags: list[RawFlag] = field(default_factory=list)
    cleared: set[Category] = field(default_factory=set)  # an event of this category was ruled out
    # Ruled out in these words only (token offsets): the rest of the text may still say it happened.
    cleared_spans: list[tuple[Category, int, int]] = field(default_factory=list)


def vocabulary() -> set[str]:
    """Every word the rules and triggers are written with (the typo corrector's dictionary)."""
    words: set[str] = set(PARAMETERS) | set(LIMIT_WORDS) | set(DIRECTION_WORDS)
    for rule in ALL_RULES:
        for pattern in (*rule.patterns, *rule.exclude):
            words |= pattern_words(pattern)
    for _, patterns in TRIGGERS:
        for pattern in patterns:
            words |= pattern_words(pattern)
    return words


class ReviewRules:
    """spaCy component: rule matches + ConText modifiers + value checks -> doc.user_data[USER_DATA_KEY]."""

    def __init__(self, nlp: Language, name: str = "ebr_review_rules") -> None:
        self.name = name
        self.phrase_matcher = PhraseMatcher(nlp.vocab, attr="NORM")
        self.matcher = AnchoredMatcher()
        self._string_cache = _StringCache(nlp.vocab.strings)
        self.keys: dict[int, tuple[str, int]] = {}  # match id -> (kind, index)
        self.check_keys: set[int] = set()  # match ids of CHECK rules
        norm: Callable[[str], str] = nlp.vocab.lex_attr_getters.get(NORM, str.lower)  # type: ignore[attr-defined]
        split = _splitter(nlp)
        for index, rule in enumerate(ALL_RULES):
            self._add(nlp, f"rule:{index}", ("rule", index), rule.patterns, norm, split, rule.polarity)
            if rule.polarity is Polarity.CHECK:
                self.check_keys.add(nlp.vocab.strings[f"rule:{index}"])
            if rule.exclude:
                self._add(nlp, f"exclude:{index}", ("exclude", index), rule.exclude, norm, split, Polarity.CHECK)
        for index, (kind, patterns) in enumerate(TRIGGERS):
            meaning = ("negation", index) if kind.modifier is Modifier.NEGATED else ("trigger", index)
            self._add(nlp, f"trigger:{index}", meaning, patterns, norm, split, Polarity.CHECK)
        self._add(nlp, "cue", ("cue", 0), tuple(VALUE_CUES), norm, split, Polarity.CHECK, literal=True)
        self._add(nlp, "anchor", ("anchor", 0), tuple(self.matcher.anchor_words), norm, split, Polarity.CHECK,
                  literal=True)

    def _add(self, nlp: Language, key: str, meaning: tuple[str, int], patterns: Iterable[str],
             norm: Callable[[str], str], split: Callable[[str], list[str]], polarity: Polarity,
             literal: bool = False) -> None:
        match_id = nlp.vocab.strings.add(key)
        self.keys[match_id] = meaning
        docs: list[Doc] = []
        plain_patterns = list(patterns) if literal else [plain for p in patterns for plain in expand_groups(p)]
        for pattern in plain_patterns:
            if literal or is_phrase_pattern(pattern):
                for words in ([[pattern]] if literal else phrases(pattern)):
                    tokens = [piece for word in words for piece in split(word)]
                    docs.append(Doc(nlp.vocab, words=tokens))
            else:
                split_words = [w for w in pattern_words(pattern) if len(split(w)) > 1]
                if split_words:
                    raise ValueError(f"{key}: words the tokenizer splits cannot be in a token pattern: {split_words}")
                check_rule = meaning[0] == "rule" and polarity is Polarity.CHECK
                self.matcher.add(compile_pattern(match_id, pattern, norm, polarity, check_rule=check_rule))
        if docs:
            self.phrase_matcher.add(key, docs)

    def __call__(self, doc: Doc) -> Doc:
        hits = self.phrase_matcher(doc)
        two_ids = _two_patient_ids(doc.text)
        kinds = {self.keys[match_id][0] for match_id, _, _ in hits}
        # A CHECK rule raises only when negated: without a negation word in the text, skip them all.
        negation = "negation" in kinds
        if not negation:
            hits = [hit for hit in hits if hit[0] not in self.check_keys]
            kinds = {self.keys[match_id][0] for match_id, _, _ in hits}
        if "rule" not in kinds and "cue" not in kinds and "anchor" not in kinds and not two_ids:
            return doc
        norms, texts = self._strings(doc)
        if "anchor" in kinds:
            anchors = sorted({start for mid, start, _ in hits if self.keys[mid][0] == "anchor"})
            hits = [*hits, *self.matcher(_soften(norms, texts), texts, anchors, with_checks=negation)]
            kinds = {self.keys[match_id][0] for match_id, _, _ in hits}
            if "rule" not in kinds and "cue" not in kinds and not two_ids:
                return doc
        result = self._review(doc, hits, norms, texts)
        if two_ids:
            _identifier_conflict(doc, norms, triggers_of(self, hits), result)
        doc.user_data[USER_DATA_KEY] = result
        return doc

    def _strings(self, doc: Doc) -> tuple[list[str], list[str]]:
        """Every token's NORM and text, without making Token objects (the hot path)."""
        cache = self._string_cache
        norm_keys, orth_keys = doc.to_array([NORM, ORTH]).T.tolist()
        return [cache[key] for key in norm_keys], [cache[key] for key in orth_keys]

    def _review(self, doc: Doc, hits: list[tuple[int, int, int]], norms: list[str], texts: list[str]) -> RuleResult:
        triggers = resolve_triggers([TriggerHit(start, end, TRIGGERS[self.keys[mid][1]][0])
                                     for mid, start, end in hits if self.keys[mid][0] in ("trigger", "negation")])
        excluded: dict[int, list[tuple[int, int]]] = {}
        for mid, start, end in hits:
            kind, index = self.keys[mid]
            if kind == "exclude":
                excluded.setdefault(index, []).append((start, end))
        result = RuleResult()
        clauses = Clauses(norms)
        cue = any(self.keys[mid][0] == "cue" for mid, _, _ in hits)
        checks = check_values(texts, norms) if cue else []
        # A value stated within its stated limit: the out-of-spec words inside that statement ("below the
        # limit of ...") are no finding; other results of the same clause still are.
        in_spec = [(c.start, c.end) for c in checks if c.in_spec]
        for index, start, end in _rule_matches(hits, self.keys):
            if any(start < x_end and x_start < end for x_start, x_end in excluded.get(index, ())):
                # Said on the passing side ("endotoxin below limit"): ruled out there, and only there
                # ("Endotoxin below limit. Viability 52 % at harvest." still has a result to look at).
                result.cleared_spans.append((ALL_RULES[index].category, start, end))
                continue
            rule = ALL_RULES[index]
            if rule.category is Category.OUT_OF_SPEC and any(start < c_end and c_start < end
                                                             for c_start, c_end in in_spec):
                continue
            self._apply_rule(rule, start, end, norms, triggers, result, clauses)
        if cue:
            self._apply_values(checks, texts, norms, triggers, result, clauses)
        return result

    @staticmethod
    def _apply_rule(rule: Rule, start: int, end: int, norms: list[str], triggers: list[TriggerHit],
                    result: RuleResult, clauses: Clauses) -> None:
        if rule.unless_near and not rule.unless_near.isdisjoint(clauses.words(start, end)):
            return
        context = modifiers_for(norms, triggers, start, end, check_rule=rule.polarity is Polarity.CHECK)
        if not policy.raises_flag(rule, context):
            if rule.polarity is Polarity.EVENT:
                result.cleared.add(rule.category)
            return
        base = rule.severity
        if rule.critical_if_near and not rule.critical_if_near.isdisjoint(clauses.words(start, end)):
            base = Severity.CRITICAL
        if rule.polarity is Polarity.CHECK:
            start, end = omission_span(norms, triggers, start, end)
        result.flags.append(RawFlag(rule.id, rule.category, policy.flag_severity(base, context), start, end, context,
                                    rule.explanation + policy.explain_context(context)))

    @staticmethod
    def _apply_values(checks: list[ValueCheck], words: list[str], norms: list[str], triggers: list[TriggerHit],
                      result: RuleResult, clauses: Clauses) -> None:
        for check in checks:
            if check.in_spec:
                result.cleared.add(Category.OUT_OF_SPEC)
                continue
            context = modifiers_for(norms, triggers, check.start, check.end, check_rule=False)
            base = Severity.CRITICAL if check.release else Severity.MAJOR
            severity = policy.flag_severity(base, context)
            why = f"{check.describe()}." + policy.explain_context(context)
            result.flags.append(RawFlag(VALUE_RULE, Category.OUT_OF_SPEC, severity, check.start, check.end, context,
                                        why))
            if check.parameter == "endotoxin":
                result.flags.append(RawFlag(ENDOTOXIN_RULE, Category.CONTAMINATION, severity, check.start, check.end,
                                            context, why + " Endotoxin is a sterility-related release test."))
        _colony_counts(words, norms, triggers, result, clauses)


def triggers_of(rules: ReviewRules, hits: list[tuple[int, int, int]]) -> list[TriggerHit]:
    return resolve_triggers([TriggerHit(start, end, TRIGGERS[rules.keys[mid][1]][0])
                             for mid, start, end in hits if rules.keys[mid][0] in ("trigger", "negation")])


PATIENT_ID_RE = re.compile(r"\b(PT|PAT|PID|COI|UPN|MRN|P(?=-\d{3}))-?(\d+(?:-\d+)*)\b", re.IGNORECASE)
SEQUENCE_WORDS = frozenset({"separate", "separated", "separately", "apart", "segregated", "sequentially",
                            "consecutive", "consecutively", "after", "before", "then", "next", "following", "previous",
                            "prior"})
# Not "and": "label PT-0412 on the bag and the traveller says PT-0421" is the conflict itself.
ID_RULE = "identity.two_identifiers"


def _patient_ids(text: str) -> list[re.Match[str]]:
    """The patient identifiers of an entry; the bare "P-1002" form only where it speaks of a patient
    (elsewhere P-100 is as likely a plate or a passage)."""
    about_patient = "patient" in text.lower()
    return [match for match in PATIENT_ID_RE.finditer(text) if about_patient or match.group(1).upper() != "P"]


def two_numbers_of_one_kind(identifiers: Iterable[tuple[str, str]]) -> bool:
    """Among (kind, number) pairs, one kind with two different numbers (PT-0412 and PT0421): two
    records. Kinds are compared without case, numbers by their digits."""
    seen: dict[str, set[str]] = {}
    for kind, number in identifiers:
        seen.setdefault(kind.upper(), set()).add(re.sub(r"\D", "", number))
    return any(len(numbers) > 1 for numbers in seen.values())


def _two_patient_ids(text: str) -> bool:
    """Two different identifiers of one kind in one entry ("label PT-0412 ... traveller PT-0421")."""
    return two_numbers_of_one_kind((match.group(1), match.group(2)) for match in _patient_ids(text))


def _identifier_conflict(doc: Doc, norms: list[str], triggers: list[TriggerHit], result: RuleResult) -> None:
    """A chain-of-identity conflict stated by the identifiers themselves: critical unless the entry says the two
    were handled apart ("PT-0041 then PT-0042 after line clearance") or rules out a mix-up."""
    if Category.IDENTITY in result.cleared or not SEQUENCE_WORDS.isdisjoint(norms):
        return
    if any(flag.category is Category.IDENTITY and flag.severity is Severity.CRITICAL for flag in result.flags):
        return
    matches = _patient_ids(doc.text)
    span = doc.char_span(matches[-1].start(), matches[-1].end(), alignment_mode="expand")
    if span is None:
        return
    context = modifiers_for(norms, triggers, span.start, span.end, check_rule=False)
    if context.negated:
        return
    result.flags.append(RawFlag(ID_RULE, Category.IDENTITY, policy.flag_severity(Severity.CRITICAL, context),
                                span.start, span.end, context,
                                "Two different patient identifiers in one entry: the chain of identity needs "
                                "confirming (critical)." + policy.explain_context(context)))


def _splitter(nlp: Language) -> Callable[[str], list[str]]:
    """How the tokenizer cuts a pattern word (cached; plain words are not run through it)."""
    cache: dict[str, list[str]] = {}

    def split(word: str) -> list[str]:
        if word.isalnum():
            return [word]
        if word not in cache:
            cache[word] = [token.text for token in nlp.tokenizer(word)]
        return cache[word]

    return split


def _colony_counts(words: list[str], norms: list[str], triggers: list[TriggerHit], result: RuleResult,
                   clauses: Clauses) -> None:
    """Any colony on a grade A, fingertip or glove-print plate is above the action limit (Annex 1, Table 6)."""
    from nlp_review.pipeline.values import parse_number

    colony_words = ("cfu", "cfus", "colonies", "colony")
    if not any(word in norms for word in colony_words):
        return
    for i, norm in enumerate(norms):
        if norm not in colony_words or i == 0:
            continue
        number = parse_number(words[i - 1].lstrip(">"))
        clause = clauses.words(i - 1, i + 1)
        grade_a = not GRADE_A_WORDS.isdisjoint(clause) or _grade_a_named(norms)
        # "within", "ok", "<" ... clear a count when they qualify it: from the comparator just before
        # the count to the end of its clause ("4 cfu, within limits", "<1 cfu"), not a parameter
        # named before it ("pressure within limits, sleeve plate 4 cfu").
        qualifiers = norms[max(i - 2, 0):clauses.bounds[clauses.clause_of(i)][1]]
        personnel = not PERSONNEL_WORDS.isdisjoint(norms) and WITHIN_WORDS.isdisjoint(qualifiers)
        # "alert" beside a grade A count states a limit ("alert limit 1 cfu"), not a result.
        if number is None or number[0] <= 0 or not (grade_a or personnel) or (grade_a and "alert" in clause):
            continue
        context = modifiers_for(norms, triggers, i - 1, i + 1, check_rule=False)
        if context.negated:
            continue
        if grade_a:
            result.flags.append(RawFlag(COLONY_RULE, Category.CONTAMINATION,
                                        policy.flag_severity(Severity.CRITICAL, context), i - 1, i + 1, context,
                                        "Colonies on a grade A, fingertip or glove-print plate exceed the action limit "
                                        "(EU GMP Annex 1, Table 6)." + policy.explain_context(context)))
        else:  # personnel monitoring outside grade A: a trend for QA to review
            result.flags.append(RawFlag(PERSONNEL_RULE, Category.CONTAMINATION,
                                        policy.flag_severity(Severity.MAJOR, context), i - 1, i + 1, context,
                                        "Colonies on personnel or at an alert level need a review of the session "
                                        "(EU GMP Annex 1 §9.x)." + policy.explain_context(context)))


def _grade_a_named(norms: list[str]) -> bool:
    return any(a == "grade" and b == "a" for a, b in itertools.pairwise(norms))


def _rule_matches(hits: list[tuple[int, int, int]], keys: dict[int, tuple[str, int]]) -> list[tuple[int, int, int]]:
    """(rule index, start, end), one per rule and place: overlapping matches of one rule keep the first, shortest."""
    by_rule: dict[int, list[tuple[int, int]]] = {}
    for mid, start, end in hits:
        kind, index = keys[mid]
        if kind == "rule":
            by_rule.setdefault(index, []).append((start, end))
    kept: list[tuple[int, int, int]] = []
    for index, spans in sorted(by_rule.items()):
        last_end = -1
        for start, end in sorted(set(spans), key=lambda span: (span[0], span[1])):
            if start >= last_end:
                kept.append((index, start, end))
                last_end = end
    return kept


CLAUSE_BREAKS = frozenset({".", ";", "!", "but", "however", "whereas", "\n"})
SOFT = frozenset({"and", "&", "(", "/", "-"})
LOOSE = "~"  # a token that is no barrier to a rule's gap


def _soften(norms: list[str], texts: list[str]) -> list[str]:
    """NORMs for the gap matcher, where punctuation that does not end a thought is no barrier:
    the "and" of "between wash and formulation", a parenthesised identifier ("label (PT-1093) differs"),
    the "/" of a compound name ("PBS/EDTA buffer"). Everything else stays as it is."""
    if SOFT.isdisjoint(norms):
        return norms
    soft = list(norms)
    size = len(norms)
    for i, norm in enumerate(norms):
        if norm in ("and", "&"):
            for k in range(i - 1, max(-1, i - 5), -1):
                if norms[k] == "between":
                    soft[i] = LOOSE
                    break
                if norms[k] in CLAUSE_BREAKS or norms[k] == ",":
                    break
        elif norm == "(":
            close = next((k for k in range(i + 2, min(size, i + 4)) if norms[k] == ")"), None)
            inner = texts[i + 1:close] if close else []
            if inner and all(any(ch.isdigit() for ch in t) and t not in COMPARATORS for t in inner):
                soft[i] = soft[close] = LOOSE  # type: ignore[index]
        elif norm == "/" and 0 < i < size - 1 and _acronym(texts[i - 1]) and _acronym(texts[i + 1]):
            soft[i] = LOOSE
        elif norm == "-" and 0 < i < size - 1 and texts[i - 1].isdigit() and texts[i + 1].isdigit():
            soft[i] = LOOSE  # a lot or reference number written "2024-0871"
    return soft


def _acronym(text: str) -> bool:
    return text.isalnum() and (text.isupper() or any(ch.isdigit() for ch in text)) and len(text) <= 8


class _StringCache(dict):  # type: ignore[type-arg]
    """Hash -> string, filled from the StringStore on first use (a dict look-up is the fast path)."""

    def __init__(self, strings: object) -> None:
        super().__init__()
        self.strings = strings

    def __missing__(self, key: int) -> str:
        value: str = self.strings[key]  # type: ignore[index]
        self[key] = value
        return value


class Clauses:
    """The words of the clause around a span (for `unless_near` and `critical_if_near`), computed once per text."""

    def __init__(self, norms: list[str]) -> None:
        self.norms = norms
        self.index: list[int] = []
        self.bounds: list[tuple[int, int]] = []
        self._words: dict[tuple[int, int], set[str]] = {}

    def _split(self) -> None:
        start = 0
        for i, norm in enumerate(self.norms):
            self.index.append(len(self.bounds))
            if norm in CLAUSE_BREAKS:
                self.bounds.append((start, i))
                start = i + 1
        self.bounds.append((start, len(self.norms)))

    def clause_of(self, index: int) -> int:
        if not self.bounds:
            self._split()
        return self.index[index] if index < len(self.index) else len(self.bounds) - 1

    def words(self, start: int, end: int) -> set[str]:
        if not self.bounds:
            self._split()
        first = self.index[start] if start < len(self.index) else len(self.bounds) - 1
        last = self.index[end - 1] if 0 < end <= len(self.index) else first
        key = (first, last)
        if key not in self._words:
            self._words[key] = set(self.norms[self.bounds[first][0]:self.bounds[last][1]])
        return self._words[key]


@Language.factory("ebr_review_rules")
def make_review_rules(nlp: Language, name: str) -> ReviewRules:
    return ReviewRules(nlp, name)
