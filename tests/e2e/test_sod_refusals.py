"""Segregation of duties on the 768x1024 tablet and the master record page: a signature the rules
refuse is not offered, and one sent anyway (a stale page, a second tab) is refused with its reason,
never an error page (QA finding: both were HTTP 500).

EU GMP Part I 2.x and Annex 11 (segregation of duties); ATMP guidelines (second-person verification).
"""

from __future__ import annotations

import uuid
from urllib.parse import urljoin

import pytest
from playwright.sync_api import expect

from ebr.models import StepStatus
from ebr.services.execution import entry_record, step_perform
from qms.models import Signature
from tests.conftest import PASSWORD
from tests.e2e.batches import started_batch
from tests.e2e.conftest import log_in, screenshot
from tests.ebr.test_sod_refusals import draft_in_review

pytestmark = pytest.mark.e2e


def record(person, step, code: str, value: str) -> None:  # type: ignore[no-untyped-def]
    entry_record(actor=person, step=step, parameter=step.template.parameters.get(code=code), value=value,
                 idempotency_key=uuid.uuid4().hex)


def post_from_the_page(page, path: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    """What a stale page or a second tab would send: the page's CSRF token, the browser's session."""
    token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    return page.request.post(urljoin(page.url, path), form={"csrfmiddlewaretoken": token, **data},
                             headers={"Referer": page.url})


def test_who_recorded_a_value_is_not_offered_the_verification_and_is_refused_with_a_reason(
        tablet_page, e2e_user, committed):
    data = started_batch(e2e_user)
    batch, page, verifier, supervisor = data.batch, tablet_page, data.verifier, data.supervisor
    step = batch.steps.get(status=StepStatus.OPEN)
    record(verifier, step, "temp", "5")
    record(supervisor, step, "label_ok", "yes")
    step_perform(actor=supervisor, step=step, password=PASSWORD, username=supervisor.username)

    log_in(page, verifier.username)
    page.goto(f"/execute/{batch.number}/")
    verify = page.locator("#verify")
    expect(verify).to_contain_text("Performed by Sofia Supervisor.")
    expect(verify.locator(".message.warning")).to_have_text(
        "Verification by another trained person: you recorded values in this step.")
    expect(verify.get_by_role("button", name="Sign: verified")).to_have_count(0)
    screenshot(page, "sod-verification-not-offered")

    refused = post_from_the_page(page, f"/execute/{batch.number}/steps/{step.pk}/verify/",
                                 {"username": verifier.username, "password": PASSWORD})

    assert refused.status == 422
    assert "The verifier must not have recorded values in the step they verify." in refused.text()
    step.refresh_from_db()
    assert step.status == StepStatus.PERFORMED and step.verified_by is None
    assert not Signature.objects.filter(target_type="ebr.stepexecution", target_id=str(step.pk),
                                        meaning="verified").exists()


def test_the_author_is_not_offered_the_review_and_is_refused_with_a_reason(tablet_page, e2e_user, committed):
    from qms.roles import Role

    author = e2e_user(Role.SUPERVISOR, full_name="Sofia Supervisor")
    version = draft_in_review(author, code=f"MBR-SOD-{uuid.uuid4().hex[:6].upper()}")
    page = tablet_page
    log_in(page, author.username)
    page.goto(f"/master-records/{version.master_record.code}/v{version.version}/")

    actions = page.locator("#version-actions")
    expect(actions).to_contain_text("Reviewed: signed by a reviewer other than its author (Sofia Supervisor).")
    expect(actions.get_by_text("Sign: reviewed")).to_have_count(0)

    refused = post_from_the_page(page, f"/master-records/{version.master_record.code}/v{version.version}/review/",
                                 {"username": author.username, "password": PASSWORD,
                                  "seen": page.locator("input[name=seen]").first.get_attribute("value")})

    assert refused.status == 422
    assert "An approver must not be an author of what they approve." in refused.text()
    assert not Signature.objects.filter(target_type="ebr.masterrecordversion", target_id=str(version.pk),
                                        meaning="reviewed").exists()
