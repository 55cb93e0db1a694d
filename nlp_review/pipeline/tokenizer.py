"""Tokenizer rules for cleanroom text: values with units, comparators, identifiers.

What the default English tokenizer gets wrong here, and the rule that fixes it:
- scientific values stay whole (``7.2e6``, ``1.5x10^6``, ``2.1E+06``) so values can be read;
- units of concentration stay whole (``cells/mL``, ``EU/mL``, ``mOsm/kg``) and come off numbers
  (``0.5EU/mL`` -> ``0.5`` ``EU/mL``; ``37°C`` -> ``37`` ``°C``);
- comparators come off numbers (``≥70%`` -> ``≥`` ``70`` ``%``, ``>=90`` -> ``>=`` ``90``);
- identifiers stay whole: lots (``LV19-0091``), patient/COI ids (``PT-0042``, ``COI-24-0117``),
  equipment and error codes (``CEN-02``, ``E-12``), compact ISBT 128 DINs (``W004124000123``);
- shorthand stays whole: ``w/o``, ``w/``, ``n/a``, ``+ve``, ``-ve``, ``?`` comes off a word (``?leak``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import spacy
from spacy.attrs import NORM, ORTH
from spacy.lang.char_classes import ALPHA
from spacy.language import Language
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex, registry

NUMBER = r"[+\-−]?\d+(?:[.,]\d+)?"
POWER = r"(?:(?:\^|e|E)?[+\-]?\d+|[⁺⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)"  # 10^6, 10e6, 106 after x, 10⁶
SCIENTIFIC = rf"{NUMBER}(?:[eE][+\-]?\d+|[xX×]10{POWER})"
UNIT = (r"(?:cells|cell|vc|tnc|cfu|eu|iu|mg|g|ug|µg|ng|pg|ml|µl|ul|l|mmol|umol|µmol|mol|mosm|copies|copy|"
        r"particles|vg|tu|ifu|x10\^?\d+)/(?:ml|µl|ul|l|dl|kg|cell|cells|m3|m³|plate|h|min|bag)")
IDENTIFIER = r"(?=[A-Za-z0-9-]*\d)[A-Za-z]{1,5}\d*(?:-[A-Za-z0-9]+)+"  # LV19-0091, PT-0042, E-12, COI-24-0117
DIN = r"[A-Za-z]\d{12}[A-Za-z0-9]?"  # ISBT 128 donation identification number written without spaces
MULTIPLIER = rf"(?:[xX×]10{POWER}|10(?:\^[+\-]?\d+|[⁺⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+))"  # x10^6 or 10^6, written apart
PER = r"(?:/(?:ml|µl|ul|l|kg|cell|bag))?"
TOKEN_MATCH = re.compile(rf"^(?:{SCIENTIFIC}{PER}|{MULTIPLIER}{PER}|{UNIT}|{IDENTIFIER}|{DIN})$", re.IGNORECASE)

COMPARATORS = [r">=", r"<=", r"=>", r"=<", r"≥", r"≤", r"⩾", r"⩽", r"~", r"±", r"\+/-", r"≈", r"\?"]
UNIT_SUFFIXES = [
    r"(?<=/[A-Za-z])\.", r"(?<=/[A-Za-z]{2})\.", r"(?<=/[A-Za-z]{3})\.",  # "mmol/L." ends a sentence
    r"(?<=[0-9])°[CcFfK]",
    r"(?<=[0-9])(?:EU|IU|cells|cfu|CFU|copies|mOsm|mmol|vc)/(?:mL|ml|kg|L|cell|plate)",
    r"(?<=[0-9])(?:mL|ml|µL|uL|min|mins|hrs|hr|h|rpm|cfu|CFU|C|g|mg|x|d)",
]
NOT_CONTRACTIONS = frozenset({"id", "em", "ill", "wed", "hell", "shell", "well", "were", "its", "lets"})
SHORTHAND = ["w/o", "W/O", "w/", "W/", "n/a", "N/A", "+ve", "-ve", "+VE", "-VE", "b4", "B4", "c/o"]
# Abbreviations written with a period stay one word ("temp. rose" is not two sentences).
ABBREVIATIONS = {"temp.": "temperature", "approx.": "approximately", "pt.": "patient", "obs.": "observed",
                 "op.": "operator", "cab.": "cabinet", "susp.": "suspected", "poss.": "possible", "prev.": "previous",
                 "ca.": "approximately", "vs.": "vs", "incl.": "including", "e.g.": "e.g.", "i.e.": "i.e.",
                 "approx": "approximately", "temps.": "temperatures", "sig.": "signature", "ref.": "reference"}
SHORTHAND_NORMS = {"w/o": "without", "w/": "with", "n/a": "n/a", "+ve": "positive", "-ve": "negative", "b4": "before",
                   "c/o": "c/o"}


TOKENIZER_NAME = "ebr.tokenizer.v1"


def make_tokenizer(nlp: Language) -> Tokenizer:
    """The project's tokenizer for a blank English pipeline, built in one go (special cases load once)."""
    prefixes = [*COMPARATORS, *(nlp.Defaults.prefixes or [])]
    suffixes = [*UNIT_SUFFIXES, *(nlp.Defaults.suffixes or [])]
    # Hyphenated words stay whole (mix-up, sign-off, pre-filled, non-sterile, G-Rex): one concept
    # each; hyphens between numbers still split ("2-8" is a range). ":", "<", ">", "=" between
    # letters still split, "/" joins units (cells/mL) and shorthand (w/o) but splits two words.
    infixes = [str(rule) for rule in nlp.Defaults.infixes or []
               if "[:<>=/]" not in str(rule) and "(?:-|–|—|--|---|——|~)" not in str(rule)]
    infixes += [rf"(?<=[{ALPHA}0-9])[:<>=](?=[{ALPHA}])", rf"(?<=[{ALPHA}]{{3}})/(?=[{ALPHA}]{{3}})",
                r"(?<=[0-9])%(?=[A-Za-z])", r"(?<=[A-Za-z]):(?=[-−+0-9])", r"(?<=[a-z]{2})\.(?=[a-z]{2})"]
    # "id" is "I'd" to the English exceptions; in a batch record it is an identifier.
    rules = {k: v for k, v in nlp.Defaults.tokenizer_exceptions.items() if k.lower() not in NOT_CONTRACTIONS}
    for text in SHORTHAND:
        rules[text] = [{ORTH: text, NORM: SHORTHAND_NORMS[text.lower()]}]
    for abbreviation, norm in ABBREVIATIONS.items():
        for text in {abbreviation, abbreviation.capitalize(), abbreviation.upper()}:
            rules[text] = [{ORTH: text, NORM: norm}]
    return Tokenizer(nlp.vocab, rules=rules, prefix_search=compile_prefix_regex(prefixes).search,
                     suffix_search=compile_suffix_regex(suffixes).search,
                     infix_finditer=compile_infix_regex(infixes).finditer, token_match=TOKEN_MATCH.match,
                     url_match=None)  # no URLs in batch records: "wet.suspected" is two words


# An abbreviation's period that also ends the sentence ("no deviation in temp. Glove torn"): the
# special case above swallows it, so a negation would run on into the next sentence.
PERIOD_ABBREVIATIONS = sorted({a[:-1] for a in ABBREVIATIONS if a.endswith(".") and "." not in a[:-1]}, key=len,
                              reverse=True)
SENTENCE_END_AFTER_ABBREVIATION = re.compile(rf"(?<![\w.])(?i:{'|'.join(map(re.escape, PERIOD_ABBREVIATIONS))})\."
                                             r"(?=\s+[A-Z])")  # the next word capitalised: case matters there


class ReviewTokenizer:
    """The rule tokenizer, then one repair: an abbreviation followed by a capitalised word gives its
    period back as a token of its own, the end of the sentence."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.vocab = tokenizer.vocab

    def __call__(self, text: str) -> Doc:
        doc = self.tokenizer(text)
        ends = {match.end() for match in SENTENCE_END_AFTER_ABBREVIATION.finditer(text)} if "." in text else ()
        if ends:
            with doc.retokenize() as retokenizer:
                for token in doc:
                    if token.idx + len(token.text) in ends and token.text.endswith("."):
                        retokenizer.split(token, [token.text[:-1], "."], heads=[(token, 1), (token, 1)],
                                          attrs={"NORM": [token.norm_, "."]})
        return doc


@registry.tokenizers(TOKENIZER_NAME)
def create_tokenizer() -> Callable[[Language], ReviewTokenizer]:
    return lambda nlp: ReviewTokenizer(make_tokenizer(nlp))


def blank_english() -> Language:
    """spacy.blank("en") with the project's tokenizer."""
    return spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": TOKENIZER_NAME}}})
