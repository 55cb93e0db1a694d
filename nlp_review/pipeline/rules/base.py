"""The rule record and its small pattern language.

A pattern is a line of space-separated token tests, matched on each word's NORM (lower case,
shorthand expanded, see lexicon.py):

    ``glove|gloves``   one token, any of the words
    ``torn?``          optional token
    ``_``              any one token;  ``_{0,3}``: zero to three tokens of anything
    ``#``              a number;  ``@code``: an error code (``E-12``, ``E12``, ``F-07``, ``7``)

A ``_`` never crosses punctuation or "but"/"however", and in EVENT rules never crosses a
negation word either: "centrifuge ran, no error" is not "centrifuge _ error". (In CHECK rules it
may: "label not checked" is the omission "label _ checked".)

Patterns with no ``_``, ``#`` or ``@code`` are expanded into plain phrases for spaCy's
PhraseMatcher (a hash look-up per token); the others go to the anchored matcher (anchored.py).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from enum import StrEnum

from nlp_review.pipeline.types import Category, Severity

MAX_PHRASES = 400


class Polarity(StrEnum):
    """How negation affects a rule (specs/nlp-review.md: language that rules out an event is no flag).

    EVENT: the pattern names something that went wrong ("glove torn"); negated, it is ruled out
    and raises nothing ("no tears").
    CHECK: the pattern names a control that must happen ("label checked", "EM plate taken");
    affirmed it raises nothing, negated it is an omission and raises ("label not checked",
    "no EM plate taken", "verification not performed").
    """

    EVENT = "event"
    CHECK = "check"


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: Category
    severity: Severity
    patterns: tuple[str, ...]
    explanation: str
    polarity: Polarity = Polarity.EVENT
    # A match inside one of these patterns is not this rule's event ("cell growth", "alarm test").
    exclude: tuple[str, ...] = ()
    # No flag when the clause also holds one of these words (they make it another category's).
    unless_near: frozenset[str] = field(default_factory=frozenset)
    # Raised to critical when the clause names one of these (e.g. a release parameter).
    critical_if_near: frozenset[str] = field(default_factory=frozenset)


BARRIER = [",", ".", ";", ":", "!", "?", "(", ")", "but", "however", "although", "though", "whereas", "except",
           "then", "and", "+", "/", "-", "->", "=>"]
NEGATION_WORDS = ["no", "not", "n't", "without", "never", "none", "nil", "nor", "neither", "negative", "cannot"]


GROUP_RE = re.compile(r"\(([^()]*)\)(\??)")


def expand_groups(pattern: str) -> list[str]:
    """The plain patterns a pattern with (multi-word|groups) stands for."""
    match = GROUP_RE.search(pattern)
    if match is None:
        return [" ".join(pattern.split())]
    options = match.group(1).split("|") + ([""] if match.group(2) else [])
    expanded: list[str] = []
    for option in options:
        expanded += expand_groups(pattern[:match.start()] + f" {option} " + pattern[match.end():])
    return [p for p in expanded if p]


def is_phrase_pattern(pattern: str) -> bool:
    return not any(part.startswith(("_", "#", "@")) for part in pattern.split())


def phrases(pattern: str) -> list[list[str]]:
    """Every word sequence a phrase pattern stands for."""
    slots: list[list[str | None]] = []
    for part in pattern.split():
        optional = part.endswith("?") and len(part) > 1
        words: list[str | None] = list((part[:-1] if optional else part).split("|"))
        slots.append([*words, None] if optional else words)
    combos = list(itertools.islice(itertools.product(*slots), MAX_PHRASES + 1))
    if len(combos) > MAX_PHRASES:
        raise ValueError(f"pattern expands to more than {MAX_PHRASES} phrases: {pattern!r}")
    result = [[w for w in combo if w is not None] for combo in combos]
    return [words for words in result if words]


def pattern_words(pattern: str) -> set[str]:
    return {w for plain in expand_groups(pattern) for part in plain.split() for w in part.rstrip("?").split("|")
            if not w.startswith(("_", "#", "@"))}
