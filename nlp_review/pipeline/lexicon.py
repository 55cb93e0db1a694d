"""Word normalisation: every word's NORM is its lower-case form, with shorthand expanded and
one-letter typos of the rules' own vocabulary corrected.

The NORM is computed once per distinct word (spaCy's lexeme attribute getter), so it costs
nothing per token. Rules, triggers and the classifier all read NORM, so "viab", "Viability" and
"viabilty" are the same word to every part of the pipeline.

Typo correction is deliberately narrow, so that it stays predictable for a validation engineer:
only to a word the rules use (of five letters or more), only with the same first letter, only one
typing slip away (a letter dropped, a letter added or two letters swapped; a letter changed only
in words of eight letters or more, because "seeding" must not become "seeping"), never for a
common word, and only when exactly one rule word is that close.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from spacy.attrs import NORM
from spacy.language import Language

# Shorthand seen in cleanroom records -> the word the rules are written with.
SHORTHAND: dict[str, str] = {
    "viab": "viability", "viabilty": "viability", "contam": "contamination", "contamd": "contaminated",
    "temp": "temperature", "temp.": "temperature", "temps": "temperatures", "cal": "calibration",
    "calib": "calibration", "calibr": "calibration", "equip": "equipment", "pt": "patient", "pt.": "patient",
    "pts": "patients", "sig": "signature", "sign.": "signature", "verif": "verified", "vrfd": "verified",
    "vfd": "verified", "ver'd": "verified", "obs": "observed", "obs.": "observed", "approx": "approximately",
    "approx.": "approximately", "ca.": "approximately", "op": "operator", "op.": "operator", "opr": "operator",
    "ops": "operators", "cab": "cabinet", "cab.": "cabinet", "myco": "mycoplasma", "mycoplasm": "mycoplasma",
    "endo": "endotoxin", "endotox": "endotoxin", "susp": "suspected", "susp.": "suspected", "poss": "possible",
    "poss.": "possible", "neg": "negative", "neg.": "negative", "pos": "positive", "pos.": "positive",
    "+ve": "positive", "-ve": "negative", "w/o": "without", "w/": "with", "b4": "before", "2nd": "second",
    "hrs": "hours", "hr": "hour", "mins": "minutes", "secs": "seconds", "bmr": "mbr", "ebr": "mbr",
    "req": "required", "reqd": "required", "incub": "incubator", "inc": "incubator", "cent": "centrifuge",
    "cfuge": "centrifuge", "fridge": "fridge", "refrig": "fridge", "osmo": "osmolality", "prev": "previous",
    "prev.": "previous", "previously": "previously", "qc'd": "checked", "chkd": "checked", "chk": "check",
    "chk'd": "checked", "recd": "received", "rec'd": "received", "sx": "sample", "smpl": "sample",
    "pckg": "packaging", "pkg": "packaging", "lbl": "label", "lbls": "labels", "unlabelled": "unlabeled",
    "labelled": "labeled", "relabelled": "relabeled", "labelling": "labeling", "mislabelled": "mislabeled",
    "colour": "color", "discoloured": "discolored", "sanitised": "sanitized", "initialled": "initialed",
}

Normalizer = Callable[[str], str]

# Common words that are one edit from a rule word and must stay themselves ("there" is not "three").
COMMON_WORDS = frozenset({
    "there", "their", "these", "those", "where", "other", "after", "later", "latter", "dated", "three",
    "every", "never", "under", "above", "about", "again", "being", "doing", "going", "given", "taken",
    "timer", "times", "lines", "files", "rated", "filed", "fille", "plated", "plates", "label", "level",
    "lever", "seeding", "leaning", "leading", "seating", "setting", "sealing", "healing", "heading",
    "reading", "hearing", "wearing", "bearing",
})
EQUIPMENT_CODES = {"bsc": "bsc", "inc": "incubator", "cen": "centrifuge", "cf": "centrifuge", "crf": "crf",
                   "bal": "balance", "fr": "fridge", "wb": "bath", "lf": "bsc"}
CODE_RE = re.compile(r"^([a-z]{2,4})-?\d{1,3}$")


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def _swaps(word: str) -> set[str]:
    return {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(len(word) - 1)}


def make_normalizer(vocabulary: Iterable[str]) -> Normalizer:
    """A NORM getter: lower case, shorthand, equipment codes, then the narrow typo correction."""
    words = {SHORTHAND.get(w, w) for w in vocabulary if len(w) >= 4 and w.isalpha()}
    # Spellings the shorthand table maps ("labelled" -> "labeled") are targets of correction too.
    words |= {w for w, target in SHORTHAND.items() if target in words and len(w) >= 5 and w.isalpha()}
    dropped: dict[str, set[str]] = {}  # the word with one letter left out -> the word
    substituted: dict[str, set[str]] = {}  # the word with one letter blanked -> the word (long words only)
    for word in words:
        for key in _deletes(word):
            dropped.setdefault(key, set()).add(word)
        if len(word) >= 8:
            for i in range(len(word)):
                substituted.setdefault(word[:i] + "*" + word[i + 1:], set()).add(word)

    def correct(lower: str) -> str:
        """Slips in order of likelihood; the first kind that gives exactly one rule word wins."""
        kinds = [words.intersection(_swaps(lower)) if len(lower) >= 5 else set(),  # "wrogn", "damagde"
                 set(dropped.get(lower, ())),  # a letter dropped: "glve"
                 words.intersection(_deletes(lower)) if len(lower) >= 5 else set()]  # a letter added: "printouut"
        if len(lower) >= 8:  # a letter changed, long words only
            kinds.append({w for i in range(len(lower)) for w in substituted.get(lower[:i] + "*" + lower[i + 1:], ())})
        for candidates in kinds:
            candidates = {c for c in candidates if c[0] == lower[0] and len(c) >= 5}
            if candidates:
                return candidates.pop() if len(candidates) == 1 else lower
        return lower

    def normalize(text: str) -> str:
        lower = text.lower()
        if lower in SHORTHAND:
            return SHORTHAND[lower]
        code = CODE_RE.match(lower)
        if code and code.group(1) in EQUIPMENT_CODES:
            return EQUIPMENT_CODES[code.group(1)]
        if len(lower) < 4 or not lower.isalpha() or lower in words or lower in COMMON_WORDS:
            return lower
        corrected = correct(lower)
        return SHORTHAND.get(corrected, corrected)

    return normalize


def install_normalizer(nlp: Language, vocabulary: Iterable[str]) -> Normalizer:
    """Make `normalize` the NORM of every word `nlp` will see (and of the words it already knows)."""
    normalize = make_normalizer(vocabulary)
    nlp.vocab.lex_attr_getters[NORM] = normalize  # type: ignore[attr-defined]
    for lexeme in nlp.vocab:
        lexeme.norm_ = normalize(lexeme.orth_)
    return normalize
