"""The pipeline's output: frozen dataclasses, JSON-friendly, no Django.

Intended use (draft EU GMP Annex 22): the flags are advice to a trained QA reviewer, who
dispositions every one of them; nothing here releases, rejects or changes a batch record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Category(StrEnum):
    """The seven text categories of specs/nlp-review.md."""

    CONTAMINATION = "contamination"
    OUT_OF_SPEC = "out_of_spec"
    EQUIPMENT = "equipment"
    MATERIAL = "material"
    PROCEDURE = "procedure"
    DATA_INTEGRITY = "data_integrity"
    IDENTITY = "identity"


class Severity(StrEnum):
    """specs/nlp-review.md: critical = possible direct harm to the patient (sterility, identity, a
    release specification, falsified data); major = quality impact needing an investigation;
    minor = documentation only; none = nothing for QA."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    NONE = "none"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.NONE: 0, Severity.MINOR: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}


def highest(severities: list[Severity] | tuple[Severity, ...]) -> Severity:
    """The highest severity, `none` for an empty list (an entry's risk)."""
    return max(severities, key=_RANK.__getitem__, default=Severity.NONE)


@dataclass(frozen=True, slots=True)
class FlagContext:
    """What the ConText-style component found around the evidence (nlp_review/pipeline/context.py)."""

    negated: bool = False
    uncertain: bool = False
    hypothetical: bool = False
    historical: bool = False
    other_batch: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {"negated": self.negated, "uncertain": self.uncertain, "hypothetical": self.hypothetical,
                "historical": self.historical, "other_batch": self.other_batch}


@dataclass(frozen=True, slots=True)
class Flag:
    """One thing in one text that a QA reviewer should look at.

    `start`/`end` are character offsets into the reviewed text and `evidence == text[start:end]`.
    `rule` names what raised it: a rule id such as ``aseptic.glove_breach`` or
    ``model.textcat@<model version>``; `explanation` says why, in words a reviewer can check.
    """

    category: Category
    severity: Severity
    start: int
    end: int
    evidence: str
    rule: str
    context: FlagContext = field(default_factory=FlagContext)
    explanation: str = ""
    score: float | None = None  # the classifier's probability, for model flags only

    def as_contract_dict(self) -> dict[str, object]:
        """Exactly the keys of the `review_text` output contract (specs/nlp-review.md)."""
        return {"category": str(self.category), "severity": str(self.severity), "start": self.start,
                "end": self.end, "evidence": self.evidence, "rule": self.rule}

    def as_dict(self) -> dict[str, object]:
        """Everything, for persisting a flag (contract keys plus context, explanation, score)."""
        return {**self.as_contract_dict(), "context": self.context.as_dict(), "explanation": self.explanation,
                "score": self.score}


@dataclass(frozen=True, slots=True)
class TextReview:
    """The review of one text: its risk (highest flag severity, or none) and its flags."""

    risk: Severity
    flags: tuple[Flag, ...]
    pipeline_version: str
    scores: tuple[tuple[Category, float], ...] = ()  # classifier probabilities; empty on rules alone

    @property
    def needs_attention(self) -> bool:
        return self.risk is not Severity.NONE

    @property
    def categories(self) -> frozenset[Category]:
        return frozenset(flag.category for flag in self.flags)
