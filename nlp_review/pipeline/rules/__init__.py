"""All pattern rules, one module per category; each module's docstring states how negation
affects its category and why its severities are what they are (specs/nlp-review.md)."""

from __future__ import annotations

import hashlib
import json

from nlp_review.pipeline.rules import (
    contamination,
    data_integrity,
    equipment,
    identity,
    material,
    out_of_spec,
    procedure,
)
from nlp_review.pipeline.rules.base import Polarity, Rule

ALL_RULES: tuple[Rule, ...] = (
    *contamination.RULES, *out_of_spec.RULES, *equipment.RULES, *material.RULES, *procedure.RULES,
    *data_integrity.RULES, *identity.RULES,
)
RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in ALL_RULES}
assert len(RULES_BY_ID) == len(ALL_RULES), "rule ids must be unique"


def rules_fingerprint(extra: object = None) -> str:
    """A short hash of every rule (and `extra`, e.g. the trigger lexicon): part of the pipeline version."""
    payload = json.dumps([[r.id, r.category, r.severity, r.polarity, r.patterns, r.exclude, sorted(r.unless_near),
                           sorted(r.critical_if_near)] for r in ALL_RULES] + [extra], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:8]


__all__ = ["ALL_RULES", "RULES_BY_ID", "Polarity", "Rule", "rules_fingerprint"]
