"""Batch record text review: pure Python + spaCy, no Django (DESIGN.md, STYLE.md).

Intended use (draft EU GMP Annex 22): a static, deterministic model with a stated intended use.
It reads free text written in a batch record and proposes flags (category, severity, evidence,
the rule or model that raised it) so that a trained QA reviewer can review by exception. Its
output is advice; the reviewer dispositions every flag, and no flag or its absence releases or
rejects anything.

    from nlp_review.pipeline import review_texts
    reviews = review_texts(["Glove torn during transfer in BSC, changed gloves."])
    reviews[0].risk             # Severity.CRITICAL
    reviews[0].flags[0].rule    # "aseptic.glove_breach"

`Reviewer` builds the pipeline once; `review_texts` and `review_text` use one shared per process.
Nothing is loaded at import time.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from nlp_review.pipeline.types import Category, Flag, FlagContext, Severity, TextReview
from nlp_review.pipeline.version import PIPELINE_VERSION

if TYPE_CHECKING:
    from nlp_review.pipeline.reviewer import Reviewer



@lru_cache(maxsize=1)
def default_reviewer() -> Reviewer:
    """The process-wide Reviewer with the shipped model (rules alone if the model is missing)."""
    from nlp_review.pipeline.reviewer import Reviewer

    return Reviewer()


def review_texts(texts: Iterable[str]) -> list[TextReview]:
    """Review many texts at once (nlp.pipe); results in input order."""
    return default_reviewer().review_texts(texts)


def review_text(text: str) -> TextReview:
    return default_reviewer().review_text(text)


def pipeline_version() -> str:
    """The full version of the default reviewer, e.g. ``1.0.0+rules.1a2b3c4d+textcat.1.0.0-5e6f7a8b``."""
    return default_reviewer().pipeline_version


__all__ = ["PIPELINE_VERSION", "Category", "Flag", "FlagContext", "Severity", "TextReview", "default_reviewer",
           "pipeline_version", "review_text", "review_texts"]
