"""How context changes a rule's flag: the negation policy and the severity policy, in one place.

specs/nlp-review.md: "Language that negates or rules out an event is not a flag" and "Hedged or
historical language ... still needs a human". Severity follows ICH Q9, which keeps the severity
of a harm apart from its probability:
- uncertain ("possible", "suspected", "?leak"): the flag keeps its severity. Hedging lowers the
  probability, not the harm; a suspected glove breach is exactly what QA must rule out, and
  grading it down would hide the critical path behind one word.
- historical ("previous batch had") and other batch ("batch next door"): at most major. The
  event did not happen to this patient's product (no direct harm, so not critical), but its
  relevance to this batch needs an investigation, which is what major means.
- hypothetical ("if turbid tomorrow inform QA", "should the freezer alarm"): at most minor. No
  event is stated; a conditional instruction is documentation for the reviewer to glance at.
Negation depends on the rule's polarity (rules/base.py): an EVENT negated is no flag, a CHECK
negated is the flag (an omission), and a CHECK affirmed is no flag.
"""

from __future__ import annotations

from nlp_review.pipeline.rules.base import Polarity, Rule
from nlp_review.pipeline.types import FlagContext, Severity

_CAP_HISTORICAL = Severity.MAJOR
_CAP_HYPOTHETICAL = Severity.MINOR


def _cap(severity: Severity, cap: Severity) -> Severity:
    return cap if severity.rank > cap.rank else severity


def raises_flag(rule: Rule, context: FlagContext) -> bool:
    """Whether the rule's match, in this context, is something for QA."""
    if rule.polarity is Polarity.CHECK:
        return context.negated
    return not context.negated


def flag_severity(base: Severity, context: FlagContext) -> Severity:
    """The rule's severity after context (see the module docstring for why)."""
    severity = base
    if context.historical or context.other_batch:
        severity = _cap(severity, _CAP_HISTORICAL)
    if context.hypothetical:
        severity = _cap(severity, _CAP_HYPOTHETICAL)
    return severity


def explain_context(context: FlagContext) -> str:
    words = [name for name, on in (("uncertain", context.uncertain), ("hypothetical", context.hypothetical),
                                   ("historical", context.historical), ("other batch", context.other_batch)) if on]
    return f" Context: {', '.join(words)}." if words else ""
