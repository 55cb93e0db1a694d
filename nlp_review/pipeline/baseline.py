"""A plain keyword baseline, to show what the pipeline adds: evaluate.py and the benchmark run it
side by side with the pipeline.

Each category's words are the ones specs/nlp-review.md uses to describe it; a text containing one
gets a flag of that category, whatever is around it (no negation, no context, no values). Its
severities are fixed per category (contamination and identity critical, the rest major).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from nlp_review.pipeline.types import Category, Flag, Severity, TextReview, highest

BASELINE_VERSION = "baseline.keyword-1"
KEYWORDS: dict[Category, tuple[str, ...]] = {
    Category.CONTAMINATION: ("growth", "turbid", "glove torn", "torn", "tear", "leak", "leaking", "cracked",
                             "open container", "mycoplasma", "myco", "endotoxin", "contaminat", "em count",
                             "action limit", "sterility"),
    Category.OUT_OF_SPEC: ("oos", "oot", "out of spec", "below target", "below limit", "above limit", "failed ipc",
                           "retest", "drifted", "out of range", "limit"),
    Category.EQUIPMENT: ("error", "alarm", "calibration", "overdue", "power cut", "froze", "fault", "malfunction",
                         "broken", "not working"),
    Category.MATERIAL: ("expired", "wrong lot", "quarantine", "damaged", "room temp", "substituted", "coa"),
    Category.PROCEDURE: ("skipped", "out of order", "hold time", "exceeded", "wrong volume", "untrained", "repeated",
                         "supervisor", "deviation", "not per"),
    Category.DATA_INTEGRITY: ("later", "from notes", "on glove", "backdated", "pre-filled", "prefilled", "signed for",
                              "shared login", "overwritten", "deleted", "missing verification", "not signed",
                              "verification"),
    Category.IDENTITY: ("label", "mismatch", "unlabeled", "unlabelled", "patient id", "two patients", "courier",
                        "logger", "coi", "din"),
}
SEVERITY: dict[Category, Severity] = {category: Severity.MAJOR for category in Category} | {
    Category.CONTAMINATION: Severity.CRITICAL, Category.IDENTITY: Severity.CRITICAL}
PATTERNS = {category: re.compile(r"\b(?:" + "|".join(re.escape(word) for word in words) + ")", re.IGNORECASE)
            for category, words in KEYWORDS.items()}


def baseline_review(text: str) -> TextReview:
    flags = []
    for category, pattern in PATTERNS.items():
        match = pattern.search(text)
        if match:
            flags.append(Flag(category=category, severity=SEVERITY[category], start=match.start(), end=match.end(),
                              evidence=match.group(0), rule=f"{BASELINE_VERSION}.{category}"))
    return TextReview(risk=highest([flag.severity for flag in flags]), flags=tuple(flags),
                      pipeline_version=BASELINE_VERSION)


def baseline_review_texts(texts: Iterable[str]) -> list[TextReview]:
    return [baseline_review(text) for text in texts]
