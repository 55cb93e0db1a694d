"""Executing a batch on the 768x1024 cleanroom tablet: values, an out-of-specification value and its
deviation, a correction that never overwrites, performed and verified signatures, lot scans.

EU GMP Part I 1.4(xiv), 8.x (OOS kept, deviation opened); Annex 11 §8.2 (corrections keep the original);
21 CFR 11.50, 11.200 (signatures with re-authentication); ATMP guidelines (second-person verification of
critical steps); EU GMP Part I 5.x (expired material refused at the point of use).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from ebr.forms import new_key
from ebr.models import BatchStatus, Entry, MaterialUse, StepStatus
from ebr.services.execution import entry_record, step_perform, step_verify
from qms.audit import Event
from qms.models import AuditEvent, Deviation, Signature
from qms.signatures import Meaning
from tests.conftest import PASSWORD
from tests.e2e.batches import started_batch
from tests.e2e.conftest import MIN_TOUCH_PX, log_in, log_out, screenshot, small_touch_targets

pytestmark = pytest.mark.e2e



def parameter(page, code: str):  # type: ignore[no-untyped-def]
    return page.locator(f"section.parameter[data-code='{code}']")


def record(page, code: str, value: str, *, comment: str = "", status: int = 200) -> None:  # type: ignore[no-untyped-def]
    """Type (or scan) a value into its own form, tap Record, and wait for the HTMX answer."""
    section = parameter(page, code)
    section.get_by_label(re.compile(r"^Value")).fill(value)
    if comment:
        if not section.get_by_label("Comment", exact=True).is_visible():
            section.get_by_text("Comment / time the work was done").click()
        section.get_by_label("Comment", exact=True).fill(comment)
    with page.expect_response(lambda response: "/values/" in response.url) as answer:
        section.get_by_role("button", name="Record").click()
    assert answer.value.status == status, f"{code}={value}: HTTP {answer.value.status}"
    if status == 200:
        expect(parameter(page, code).locator(".entry")).not_to_have_count(0)


def sign(page, section_id: str, button: str, username: str) -> None:  # type: ignore[no-untyped-def]
    """Sign with the password; the username too at the first signature of the session."""
    card = page.locator(f"#{section_id}")
    if card.get_by_label("Username").count():
        card.get_by_label("Username").fill(username)
    card.get_by_label("Password").fill(PASSWORD)
    card.get_by_role("button", name=button).click()


def small_targets_on_step_page(page) -> list[str]:  # type: ignore[no-untyped-def]
    """small_touch_targets, except a radio inside a label.choice that is itself tall enough: the label
    is what the gloved finger taps (clicking it checks the radio)."""
    tappable = set()
    for choice in page.locator("label.choice").all():
        box = choice.bounding_box()
        if box is not None and box["height"] >= MIN_TOUCH_PX:
            tappable.add(choice.locator("input").get_attribute("name"))
    return [target for target in small_touch_targets(page) if target.split(":")[0] not in tappable]


def current_entries(batch, code: str):  # type: ignore[no-untyped-def]
    return Entry.objects.filter(step__batch=batch, parameter__code=code)


def test_operator_executes_three_steps_with_an_oos_value_a_correction_and_a_verification(
        tablet_page, e2e_user, committed):
    data = started_batch(e2e_user)
    batch, page = data.batch, tablet_page
    correction = "Read the probe of the wrong bag"

    # --- step 1.1, the operator ---------------------------------------------------------------
    log_in(page, data.operator.username)
    page.goto(f"/execute/{batch.number}/")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("1.1 · Receive the bag")
    expect(heading.locator(".tag")).to_have_text(["critical", "second-person verification"])
    expect(page.get_by_label("progress")).to_have_text("Step 1 of 3")
    assert small_targets_on_step_page(page) == []
    screenshot(page, "step-page")

    label_ok = parameter(page, "label_ok")
    label_ok.get_by_label("Yes", exact=True).check()
    with page.expect_response(lambda response: "/values/" in response.url):
        label_ok.get_by_role("button", name="Record").click()
    expect(parameter(page, "label_ok").locator(".entry .value")).to_have_text("yes")

    # Out of specification without a comment: refused, the typed value stays in the field.
    record(page, "temp", "12", status=422)
    expect(parameter(page, "temp").get_by_label("Value (°C)")).to_have_value("12")
    assert not current_entries(batch, "temp").exists()
    assert not Deviation.objects.filter(subjects__subject_id=str(batch.pk)).exists()

    # With a comment: kept, marked, and a deviation opened automatically.
    record(page, "temp", "12", comment="Bag left on the bench during the transfer")
    temp = parameter(page, "temp")
    oos = temp.locator(".entry.oos")
    expect(oos.locator(".value")).to_have_text("12 °C")
    expect(oos.locator(".tag", has_text="out of specification")).to_be_visible()
    expect(oos.locator(".tag", has_text=re.compile(r"^DEV-\d{4}-\d{4}$"))).to_be_visible()
    deviation_number = oos.locator(".tag", has_text="DEV-").inner_text()
    expect(temp.get_by_role("status")).to_have_text(f"Out of specification: deviation {deviation_number} was opened.")
    screenshot(page, "step-oos")

    # A correction supersedes the value; the original stays, struck through, with the reason.
    temp.get_by_text("Correct this value").click()
    temp.get_by_label("Corrected value (°C)").fill("5")
    temp.get_by_label("Reason for the correction").fill(correction)
    with page.expect_response(lambda response: "/values/" in response.url) as answer:
        temp.get_by_role("button", name="Save correction").click()
    assert answer.value.status == 200
    temp = parameter(page, "temp")
    expect(temp.locator("del.value")).to_have_text("12 °C")
    expect(temp.locator(".entry:not(.superseded) .value")).to_have_text("5 °C")
    expect(temp.locator(".correction-reason")).to_have_text(f"Correction: {correction}")

    sign(page, "perform", "Sign: performed", data.operator.username)
    expect(page.get_by_role("status").filter(has_text="signed as performed")).to_have_text(
        "Step 1.1 signed as performed.")
    verify = page.locator("#verify")
    expect(verify).to_contain_text("Performed by Olivia Operator.")
    expect(verify.locator(".message.warning")).to_have_text("You performed this step: another operator must verify it.")
    expect(verify.get_by_role("button", name="Sign: verified")).to_have_count(0)
    log_out(page)

    # --- the second operator verifies the critical step ----------------------------------------
    log_in(page, data.verifier.username)
    page.goto(f"/execute/{batch.number}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("1.1 · Receive the bag")
    sign(page, "verify", "Sign: verified", data.verifier.username)
    expect(page.get_by_role("status").filter(has_text="verified")).to_have_text("Step 1.1 verified.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("2.1 · Seed the culture")
    log_out(page)

    # --- steps 2.1 and 2.2, the operator again ----------------------------------------------------
    log_in(page, data.operator.username)
    page.goto(f"/execute/{batch.number}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("2.1 · Seed the culture")
    record(page, "bsc", data.bsc.code.lower())  # scanned labels are matched case-insensitively
    expect(parameter(page, "bsc").locator(".entry .value")).to_have_text(data.bsc.code)

    # An expired lot is refused at the scan: nothing recorded, nothing used.
    record(page, "medium", data.expired_lot.lot_number, status=422)
    expect(parameter(page, "medium").get_by_label(re.compile(r"^Value"))).to_have_value(data.expired_lot.lot_number)
    assert not current_entries(batch, "medium").exists()
    assert not MaterialUse.objects.filter(batch=batch).exists()
    record(page, "medium", data.good_lot.lot_number)
    expect(parameter(page, "medium").locator(".entry .value")).to_have_text(data.good_lot.lot_number)
    record(page, "viability", "85")
    expect(parameter(page, "viability").locator(".tag.ok")).to_have_text("in spec")
    sign(page, "perform", "Sign: performed", data.operator.username)
    expect(page.get_by_role("heading", level=1)).to_contain_text("2.2 · Formulate")

    record(page, "cells", "100")
    record(page, "volume", "10")
    sign(page, "perform", "Sign: performed", data.operator.username)
    expect(page.get_by_role("heading", name="All steps done")).to_be_visible()
    assert small_targets_on_step_page(page) == []

    # --- the batch overview ----------------------------------------------------------------------
    page.get_by_role("link", name="Batch overview").click()
    expect(page.locator("#batch-status")).to_have_text("Completed")
    expect(page.locator("#deviations")).to_contain_text(deviation_number)
    expect(page.locator("#record del.value")).to_have_text("12 °C")
    expect(page.locator("#record .correction-reason")).to_have_text(f"Correction: {correction}")
    expect(page.locator("#equipment")).to_contain_text(f"lot {data.good_lot.lot_number}")
    expect(page.locator("#equipment")).not_to_contain_text(data.expired_lot.lot_number)
    screenshot(page, "batch-overview")

    # --- what the server recorded ---------------------------------------------------------------
    batch.refresh_from_db()
    assert batch.status == BatchStatus.COMPLETED
    original, corrected = current_entries(batch, "temp").order_by("id")
    assert (original.value_text, original.in_spec, original.deviation_number) == ("12", False, deviation_number)
    assert (corrected.value_text, corrected.in_spec, corrected.supersedes_id) == ("5", True, original.pk)
    assert corrected.correction_reason == correction
    assert [e.value_text for e in current_entries(batch, "medium")] == [data.good_lot.lot_number]
    assert current_entries(batch, "conc").get().value_number == 10  # cells / volume
    assert all(e.entered_by_id == data.operator.pk for e in Entry.objects.filter(step__batch=batch))
    deviation = Deviation.objects.get(number=deviation_number)
    assert deviation.subjects.filter(subject_type="ebr.batch", subject_id=str(batch.pk)).exists()
    assert deviation.source == "oos_entry"
    first = batch.steps.get(template__code="1.1")
    assert first.status == StepStatus.DONE
    assert (first.performed_by_id, first.verified_by_id) == (data.operator.pk, data.verifier.pk)
    signed = list(Signature.objects.filter(target_type="ebr.stepexecution", target_id__in=[
        str(pk) for pk in batch.steps.values_list("pk", flat=True)]).order_by("id").values_list("meaning", "signer_id"))
    op, ver = data.operator.pk, data.verifier.pk
    assert signed == [(Meaning.PERFORMED, op), (Meaning.VERIFIED, ver), (Meaning.PERFORMED, op),
                      (Meaning.PERFORMED, op)]
    assert AuditEvent.objects.filter(event_type=Event.ENTRY_CORRECTED, actor_id=op).count() == 1

    # Refused values answer 422 on purpose (Chromium logs the status); nothing else may appear, and no
    # CSP violation at all (htmx settles no style attributes: templates/base.html htmx-config).
    unexpected = [error for error in page.log.console_errors_besides_favicon()
                  if "422" not in error]
    assert unexpected == []
    assert page.log.csp_violations(page) == []
    assert page.log.page_errors == []


def first_step_done(data) -> None:  # type: ignore[no-untyped-def]
    """Step 1.1 recorded, performed and verified through the services: the batch stands at 2.1."""
    step = data.batch.steps.get(template__code="1.1")
    for code, value in (("label_ok", "yes"), ("temp", "5")):
        entry_record(actor=data.operator, step=step, parameter=step.template.parameters.get(code=code), value=value,
                     idempotency_key=new_key())
    step_perform(actor=data.operator, step=step, password=PASSWORD, username=data.operator.username)
    step_verify(actor=data.verifier, step=step, password=PASSWORD, username=data.verifier.username)


@pytest.mark.parametrize("case", ["oos-without-comment", "expired-lot"])
def test_a_refused_value_shows_why_on_the_tablet(case, tablet_page, e2e_user, committed):
    data = started_batch(e2e_user)
    page = tablet_page
    if case == "expired-lot":
        first_step_done(data)
        code, value = "medium", data.expired_lot.lot_number
        why = re.compile(rf"Lot {re.escape(value)} expired on \d{{4}}-\d{{2}}-\d{{2}}\.")
    else:
        code, value, why = "temp", "12", "Temperature is outside its specification (2–8 °C): say what happened."
    log_in(page, data.operator.username)
    page.goto(f"/execute/{data.batch.number}/")

    record(page, code, value, status=422)

    section = parameter(page, code)
    expect(section.get_by_role("alert")).to_have_text(why, timeout=3000)
    expect(section.get_by_label(re.compile(r"^Value"))).to_have_value(value)
    assert not current_entries(data.batch, code).exists()
