"""QA works through the review flags of a completed batch in the browser: a refused signature
keeps what the reviewer typed (never the password), each flag's form is its own, and a signed
disposition is shown with who and when (21 CFR 11.50, 11.200; EU GMP Annex 16 §1.7)."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from nlp_review.models import Disposition, ReviewFlag
from nlp_review.services import batch_review_run
from qms.audit import SystemActor
from tests.conftest import PASSWORD
from tests.e2e.batches import started_batch
from tests.e2e.conftest import log_in
from tests.ebr.test_release import run_batch

pytestmark = pytest.mark.e2e


def test_a_refused_disposition_keeps_the_input_and_a_signed_one_shows_who_and_when(tablet_page, e2e_user,
                                                                                     committed):
    data = started_batch(e2e_user)
    run_batch(data.batch, data.operator, data.verifier,
              values={"bsc": data.bsc.code, "medium": data.good_lot.lot_number},
              comments={"temp": "Glove torn during transfer in BSC, changed gloves.",
                        "viability": "Spill of medium on the work surface, wiped with IPA."})
    review = batch_review_run(batch=data.batch, actor=SystemActor("system:tests"), request_id=uuid.uuid4().hex)
    first, second = ReviewFlag.objects.filter(review=review).order_by("id")[:2]
    page = tablet_page
    log_in(page, data.qa_reviewer.username)
    page.goto(reverse("batch_review", args=[data.batch.number]))

    flag = page.locator(f"#flag-{first.pk}")
    flag.locator("summary").click()
    flag.get_by_label("No impact").check()
    flag.get_by_label("Reason").fill("Gloves changed at once; the BSC stayed closed.")
    if flag.get_by_label("Username").count():
        flag.get_by_label("Username").fill(data.qa_reviewer.username)
    flag.get_by_label("Password").fill("not-the-password")
    flag.get_by_role("button", name="Sign disposition").click()

    refused = page.locator(f"#flag-{first.pk}")
    expect(refused.locator("details")).to_have_attribute("open", "")
    expect(refused.get_by_label("No impact")).to_be_checked()
    expect(refused.get_by_label("Reason")).to_have_value("Gloves changed at once; the BSC stayed closed.")
    expect(refused.get_by_label("Password")).to_have_value("")
    expect(refused.locator(".error").first).to_be_visible()
    # The other flags' forms are their own and untouched.
    other = page.locator(f"#flag-{second.pk}")
    expect(other.locator("details")).not_to_have_attribute("open", "")
    expect(other.get_by_label("Reason")).to_have_value("")
    first.refresh_from_db()
    assert first.disposition == Disposition.NONE

    refused.get_by_label("Password").fill(PASSWORD)
    if refused.get_by_label("Username").count():
        refused.get_by_label("Username").fill(data.qa_reviewer.username)
    refused.get_by_role("button", name="Sign disposition").click()

    expect(page.locator(f"#flag-{first.pk} .disposition")).to_contain_text(
        "No impact — Gloves changed at once; the BSC stayed closed. (signed by Quentin Reviewer")
    first.refresh_from_db()
    assert first.disposition == Disposition.NO_IMPACT and first.dispositioned_by == data.qa_reviewer
    assert ReviewFlag.objects.get(pk=second.pk).disposition == Disposition.NONE
