"""A signature is refused on content the signer never saw (21 CFR 11.50, 11.70; ALCOA+): the QA approver
opens a change control's "Approve" form, the author revises the proposal from another browser, and
the approval signed from the page already open is refused, with the typed reason kept and the
revised text shown; signed again after reading it, it is accepted."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from qms.models import ChangeControl, ChangeControlStatus, Signature
from qms.roles import Role
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in, screenshot
from tests.qms import quality

pytestmark = pytest.mark.e2e


def test_an_approval_signed_on_a_page_revised_meanwhile_is_refused_then_signed_on_the_revision(
        open_page, e2e_user, committed):
    author, approver = e2e_user(Role.SUPERVISOR), e2e_user(Role.QA_APPROVER)
    change = quality.change(author)
    url = f"/qms/change-control/{change.number}/"
    approving, revising = open_page(), open_page()

    log_in(approving, approver.username)
    approving.goto(url)
    approve = approving.locator("#action-approve")
    approve.locator("summary").click()
    approve.locator("[name=approve-reason]").fill("Impact assessed, acceptable")
    approve.locator("[name=approve-username]").fill(approver.username)
    approve.locator("[name=approve-password]").fill(PASSWORD)

    log_in(revising, author.username)
    revising.goto(url)
    assess = revising.locator("#action-assess")
    assess.locator("summary").click()
    assess.locator("[name=assess-description]").fill("Replace the NC-200 by the NC-300 (the NC-250 is withdrawn)")
    assess.locator("[name=assess-reason]").fill("Supplier withdrew the NC-250")
    assess.get_by_role("button", name="Save").click()
    expect(revising.get_by_text(f"{change.number} updated.")).to_be_visible()

    approve.get_by_role("button", name="Sign approval").click()
    approve = approving.locator("#action-approve")
    expect(approve.get_by_role("alert")).to_contain_text(
        f"This record changed since you opened it ({author.full_name} at")
    expect(approve.get_by_role("alert")).to_contain_text("review the changes, then sign again.")
    expect(approve.get_by_role("alert")).to_be_in_viewport()  # the page comes back at the refusal, not at its top
    expect(approve.locator("[name=approve-reason]")).to_have_value("Impact assessed, acceptable")
    expect(approve.locator("[name=approve-password]")).to_have_value("")
    expect(approving.locator("p.prose", has_text="the NC-250 is withdrawn")).to_be_visible()
    screenshot(approving, "stale-approval-refused")
    change.refresh_from_db()
    assert change.status == ChangeControlStatus.OPEN
    assert not Signature.objects.filter(target_type="qms.changecontrol", target_id=str(change.pk)).exists()

    username = approve.locator("[name=approve-username]")
    if username.count():
        username.fill(approver.username)
    approve.locator("[name=approve-password]").fill(PASSWORD)
    approve.get_by_role("button", name="Sign approval").click()
    expect(approving.get_by_text(f"{change.number} approved.")).to_be_visible()
    approved = ChangeControl.objects.get(pk=change.pk)
    assert approved.status == ChangeControlStatus.APPROVED and "NC-250 is withdrawn" in approved.description
