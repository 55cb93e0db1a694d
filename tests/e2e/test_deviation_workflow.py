"""A deviation from an out-of-specification entry to its signed closure, through the record page's forms.

EU GMP Part I 1.4(xiv), 8.15 (deviations investigated, root cause, CAPA); ICH Q9(R1) (risk scores);
ICH Q10 3.2.2 (CAPA decision); 21 CFR 11.50, 11.200 (signed submission and approval); EU GMP Part I
2.x (QA approval independent of the investigation).
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from ebr.forms import new_key
from ebr.services.execution import entry_record
from qms.audit import Event
from qms.models import AuditEvent, Capa, CapaDecision, Deviation, DeviationStatus, Signature
from qms.signatures import Meaning
from tests.conftest import PASSWORD
from tests.e2e.batches import started_batch
from tests.e2e.conftest import log_in, log_out, screenshot, small_touch_targets

pytestmark = pytest.mark.e2e

WHYS = ["The bag was left on the bench during the transfer.",
        "The transfer cooler was in use for another batch.",
        "Only one cooler is assigned to the receipt room."]


def open_action(page, key: str):  # type: ignore[no-untyped-def]
    """Open a workflow action's <details> and return it."""
    action = page.locator(f"#action-{key}")
    action.locator("summary").click()
    return action


def signed_submit(action, prefix: str, username: str, reason: str, button: str) -> None:  # type: ignore[no-untyped-def]
    action.locator(f"[name={prefix}-reason]").fill(reason)
    username_field = action.locator(f"[name={prefix}-username]")
    if username_field.count():
        username_field.fill(username)
    action.locator(f"[name={prefix}-password]").fill(PASSWORD)
    action.get_by_role("button", name=button).click()


def test_deviation_from_an_oos_entry_is_triaged_investigated_given_a_capa_and_closed_under_signature(
        tablet_page, e2e_user, committed):
    data = started_batch(e2e_user)
    step = data.batch.steps.get(template__code="1.1")
    entry = entry_record(actor=data.operator, step=step, parameter=step.template.parameters.get(code="temp"),
                         value="12", comment="Bag left on the bench during the transfer",
                         idempotency_key=new_key()).entry
    deviation = Deviation.objects.get(number=entry.deviation_number)
    batch_subject = deviation.subjects.get(subject_type="ebr.batch")
    assert deviation.status == DeviationStatus.OPEN and deviation.source == "oos_entry"
    page = tablet_page
    status = page.locator("#deviation-status")

    # --- QA reviewer: triage, then a CAPA opened from the deviation ------------------------------
    log_in(page, data.qa_reviewer.username)
    page.goto(reverse("deviation_detail", args=[deviation.number]))
    expect(page.get_by_role("heading", level=1)).to_contain_text(deviation.number)
    expect(status).to_have_text("Open")
    expect(page.locator("#subjects")).to_contain_text(data.batch.number)
    triage = open_action(page, "triage")
    triage.locator("[name=triage-classification][value=major]").check()
    triage.get_by_label("Rationale").fill("Temperature excursion at receipt of starting material; product at risk.")
    for name, score in (("severity", 4), ("occurrence", 2), ("detectability", 2)):
        triage.locator(f"[name=triage-{name}][value='{score}']").check()
    triage.get_by_label("Investigation owner").select_option(str(data.supervisor.pk))
    triage.get_by_role("button", name="Save triage").click()
    expect(page.get_by_role("status")).to_have_text(f"{deviation.number} triaged.")
    expect(status).to_have_text("Triaged")
    expect(page.locator("#triage")).to_contain_text("4 × 2 × 2 = RPN 16")

    page.locator("#capa-for-deviation").click()
    expect(page.get_by_label("Deviations addressed")).to_have_value(deviation.number)
    page.get_by_label("Title").fill("Dedicated cooler for the receipt room")
    page.get_by_label("Problem statement").fill("Starting material waited outside the cold chain at receipt.")
    page.get_by_role("button", name="Open CAPA").click()
    expect(page.get_by_role("status")).to_contain_text("opened.")
    capa = Capa.objects.get(number=page.get_by_role("heading", level=1).inner_text().split()[0])
    assert capa.deviation_links.filter(deviation=deviation).exists()
    log_out(page)

    # --- the investigator (supervisor): investigation, CAPA decision, signed submission -------
    log_in(page, data.supervisor.username)
    page.goto(reverse("deviation_detail", args=[deviation.number]))
    investigate = open_action(page, "investigate")
    investigate.get_by_label("Root-cause category").select_option("method")
    for number, why in enumerate(WHYS, start=1):
        investigate.get_by_label(f"Why? ({number})").fill(why)
    investigate.get_by_label("Root cause", exact=True).fill("No cooler is reserved for receipts.")
    investigate.get_by_label("Product impact assessment").fill("Bag at 12 °C for under 10 min; viability in spec.")
    investigate.locator(f"[name=investigate-impact_{batch_subject.pk}]").select_option("possible_impact")
    investigate.locator(f"[name=investigate-impact_note_{batch_subject.pk}]").fill("Viability to be confirmed.")
    investigate.get_by_role("button", name="Save investigation").click()
    expect(page.get_by_role("status")).to_have_text(f"Investigation of {deviation.number} saved.")
    expect(status).to_have_text("Under investigation")
    expect(page.locator("#investigation ol.whys li")).to_have_text(WHYS)
    expect(page.locator("#investigation-gaps")).to_have_text("Before submitting, give: the CAPA decision.")

    decide = open_action(page, "capa_decide")
    decide.locator("[name=capa_decide-decision][value=required]").check()
    decide.locator("[name=capa_decide-capa]").select_option(str(capa.pk))
    decide.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("status")).to_have_text(f"CAPA decision recorded for {deviation.number}.")
    expect(page.locator("#capa-decision")).to_contain_text(f"CAPA required: {capa.number}")
    expect(page.locator("#investigation-gaps")).to_have_count(0)

    submit = open_action(page, "submit")
    signed_submit(submit, "submit", data.supervisor.username, "Investigation complete", "Sign as author and submit")
    expect(page.get_by_role("status")).to_have_text(f"{deviation.number} signed and submitted for QA approval.")
    expect(status).to_have_text("Pending approval")
    log_out(page)

    # --- QA approver: signed closure -----------------------------------------------------------
    log_in(page, data.qa_approver.username)
    page.goto(reverse("deviation_detail", args=[deviation.number]))
    close = open_action(page, "close")
    signed_submit(close, "close", data.qa_approver.username, "Investigation and CAPA accepted",
                  "Sign approval and close")
    expect(page.get_by_role("status")).to_have_text(f"{deviation.number} approved and closed.")
    expect(status).to_have_text("Closed")
    expect(page.locator("#actions")).to_have_count(0)
    assert small_touch_targets(page) == []
    screenshot(page, "deviation-closed")
    assert page.log.csp_violations(page) == []
    assert page.log.page_errors == []
    assert page.log.console_errors_besides_favicon() == []

    # --- what the server recorded --------------------------------------------------------------
    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.CLOSED
    assert (deviation.classification, deviation.severity, deviation.occurrence, deviation.detectability) == (
        "major", 4, 2, 2)
    assert deviation.owner_id == data.supervisor.pk
    assert (deviation.root_cause_category, deviation.root_cause_whys) == ("method", WHYS)
    assert (deviation.capa_decision, deviation.capa_id) == (CapaDecision.REQUIRED, capa.pk)
    assert (deviation.investigated_by_id, deviation.submitted_by_id, deviation.closed_by_id) == (
        data.supervisor.pk, data.supervisor.pk, data.qa_approver.pk)
    batch_subject.refresh_from_db()
    assert (batch_subject.impact, batch_subject.impact_assessment) == ("possible_impact", "Viability to be confirmed.")
    signatures = Signature.objects.filter(target_type="qms.deviation", target_id=str(deviation.pk)).order_by("id")
    assert list(signatures.values_list("meaning", "signer_id", "reason")) == [
        (Meaning.AUTHORED, data.supervisor.pk, "Investigation complete"),
        (Meaning.APPROVED, data.qa_approver.pk, "Investigation and CAPA accepted")]
    events = list(AuditEvent.objects.filter(target_type="qms.deviation", target_id=str(deviation.pk))
                  .order_by("id").values_list("event_type", "actor_id"))
    for expected in [(Event.DEVIATION_OPENED, data.operator.pk), (Event.DEVIATION_TRIAGED, data.qa_reviewer.pk),
                     (Event.DEVIATION_INVESTIGATED, data.supervisor.pk),
                     (Event.DEVIATION_CAPA_DECIDED, data.supervisor.pk),
                     (Event.SIGNATURE_APPLIED, data.supervisor.pk), (Event.DEVIATION_SUBMITTED, data.supervisor.pk),
                     (Event.SIGNATURE_APPLIED, data.qa_approver.pk), (Event.DEVIATION_CLOSED, data.qa_approver.pk)]:
        assert expected in events, expected
    order = [event for event, _ in events if event.startswith("DEVIATION_")]
    assert order.index(Event.DEVIATION_TRIAGED) < order.index(Event.DEVIATION_INVESTIGATED) < order.index(
        Event.DEVIATION_SUBMITTED) < order.index(Event.DEVIATION_CLOSED)
    assert AuditEvent.objects.filter(event_type=Event.CAPA_OPENED, target_id=str(capa.pk),
                                     actor_id=data.qa_reviewer.pk).exists()
