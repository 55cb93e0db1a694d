"""The PDF's deviation table says who cancelled a deviation, when and why (a black-box review found
only "Cancelled" there, the reason and the person only deep in the audit appendix)."""

from __future__ import annotations

import pytest

from ebr.pdf.providers import _deviation_row
from qms.services import deviations as services
from tests.qms import quality

pytestmark = pytest.mark.django_db


def test_a_cancelled_deviations_row_names_who_cancelled_it_when_and_why(operator, qa_reviewer):
    deviation = quality.deviation(operator)
    services.deviation_cancel(actor=qa_reviewer, deviation=deviation, reason="Duplicate of DEV-2026-0001")
    deviation.refresh_from_db()

    row = _deviation_row(deviation)

    assert row["cancelled"].startswith(f"Cancelled by {qa_reviewer.username} on ")
    assert row["cancelled"].endswith(": Duplicate of DEV-2026-0001")


def test_an_open_deviations_row_says_nothing_of_cancelling(operator):
    assert _deviation_row(quality.deviation(operator))["cancelled"] == ""
