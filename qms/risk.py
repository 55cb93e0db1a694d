"""Quality risk assessment (ICH Q9(R1)): severity x occurrence x detectability.

Each factor is scored 1 to 5 (5 = worst: most severe, most frequent, least detectable).
The risk priority number is RPN = S x O x D (1 to 125). The risk level comes from the
severity x occurrence matrix below, raised one step when detection is poor. This table is
the facility's configuration: change it here, under change control, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.core.exceptions import ValidationError


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


L, M, H = RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH

# RISK_MATRIX[severity][occurrence]: rows severity 1..5, columns occurrence 1..5.
RISK_MATRIX: dict[int, tuple[RiskLevel, RiskLevel, RiskLevel, RiskLevel, RiskLevel]] = {
    1: (L, L, L, L, M),
    2: (L, L, M, M, M),
    3: (L, M, M, H, H),
    4: (M, M, H, H, H),
    5: (M, H, H, H, H),
}
# Detectability at or above this score raises the level one step (a failure nobody would see).
POOR_DETECTION = 4

SCORE_LABELS = {
    "severity": {1: "negligible", 2: "minor", 3: "moderate", 4: "major", 5: "critical to patient"},
    "occurrence": {1: "remote", 2: "unlikely", 3: "occasional", 4: "likely", 5: "frequent"},
    "detectability": {1: "always detected", 2: "very likely detected", 3: "may be detected",
                      4: "unlikely detected", 5: "undetectable"},
}

_ORDER = [L, M, H]


@dataclass(frozen=True)
class RiskAssessment:
    severity: int
    occurrence: int
    detectability: int

    @property
    def rpn(self) -> int:
        return self.severity * self.occurrence * self.detectability

    @property
    def level(self) -> RiskLevel:
        base = RISK_MATRIX[self.severity][self.occurrence - 1]
        if self.detectability >= POOR_DETECTION:
            return _ORDER[min(_ORDER.index(base) + 1, len(_ORDER) - 1)]
        return base


def risk_assess(*, severity: int, occurrence: int, detectability: int) -> RiskAssessment:
    """Score a risk; each factor must be a whole number from 1 to 5."""
    errors = {}
    for name, value in (("severity", severity), ("occurrence", occurrence), ("detectability", detectability)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            errors[name] = f"{name.capitalize()} must be a score from 1 to 5."
    if errors:
        raise ValidationError(errors)
    return RiskAssessment(severity, occurrence, detectability)
