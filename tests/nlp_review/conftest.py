"""Fixtures for the pipeline tests: no database (no django_db marker anywhere in this folder)."""

from __future__ import annotations

import pytest

from nlp_review.pipeline.reviewer import Reviewer
from nlp_review.pipeline.textcat import MODEL_DIR


@pytest.fixture(scope="session")
def reviewer() -> Reviewer:
    """The pipeline as shipped: rules + the trained classifier."""
    return Reviewer(MODEL_DIR)


@pytest.fixture(scope="session")
def rules_only() -> Reviewer:
    return Reviewer(None)
