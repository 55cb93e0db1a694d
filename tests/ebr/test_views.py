"""Tablet and desktop pages: one step at a time, nothing typed is lost, roles enforced."""

import uuid
from decimal import Decimal

import pytest

from ebr.models import Entry, StepStatus
from tests.conftest import PASSWORD, login

pytestmark = pytest.mark.django_db


def entry_url(batch, step, code):
    parameter = step.template.parameters.get(code=code)
    return f"/execute/{batch.number}/steps/{step.pk}/values/{parameter.pk}/", f"p{parameter.pk}"


def open_step(batch):
    return batch.steps.get(status=StepStatus.OPEN)


def test_step_page_shows_only_the_current_step(client, batch, operator):
    login(client, operator)

    page = client.get(f"/execute/{batch.number}/").content.decode()

    assert "1.1 · Receive the bag" in page
    assert "Seed the culture" not in page
    assert "Step 1 of 3" in page
    assert "Specification 2–8 °C" in page


def test_a_held_batch_shows_its_values_but_nothing_to_type_into_or_sign(client, batch, operator, supervisor):
    """The service refuses entries on a held batch; the tablet must not offer forms that can only fail."""
    from ebr.services.batches import batch_hold

    login(client, operator)
    step = open_step(batch)
    url, prefix = entry_url(batch, step, "temp")
    client.post(url, {f"{prefix}-value": "5", f"{prefix}-idempotency_key": uuid.uuid4().hex})
    batch_hold(actor=supervisor, batch=batch, reason="Cleanroom excursion under investigation")

    page = client.get(f"/execute/{batch.number}/").content.decode()

    assert (f"Batch {batch.number} is on hold: nothing can be recorded. Reason: Cleanroom excursion under "
            "investigation") in page
    assert '<span class="value">5 °C</span>' in page
    assert "entry-form" not in page and "Sign: performed" not in page


def test_a_pure_number_shows_no_unit():
    """UCUM's "1" (a count such as bags filled) is not written after the number."""
    from ebr.models import ParameterSpec
    from ebr.templatetags.ebr_extras import unit

    bags = ParameterSpec(label="Bags filled", unit="1", lower_limit=Decimal(1), upper_limit=Decimal(4))
    assert (bags.limits_text(), str(bags)) == ("1–4", "Bags filled")
    assert ParameterSpec(unit="Cel", lower_limit=Decimal(2), upper_limit=Decimal(8)).limits_text() == "2–8 °C"
    assert (unit("1"), unit("10*6/mL"), unit("")) == ("", "×10⁶/mL", "")


def test_durations_read_as_durations_not_times_of_day():
    from datetime import timedelta

    from ebr.templatetags.ebr_extras import duration

    assert [duration(timedelta(**span)) for span in (
        {"hours": 12}, {"hours": 1, "minutes": 5}, {"days": 2, "hours": 3}, {"minutes": 45}, {"seconds": 30},
        {"days": 1})] == ["12 h", "1 h 05 min", "2 d 3 h", "45 min", "30 s", "1 d"]
    assert duration(None) == ""


def test_htmx_entry_returns_the_updated_parameter_block(client, batch, operator):
    login(client, operator)
    step = open_step(batch)
    url, prefix = entry_url(batch, step, "temp")

    response = client.post(url, {f"{prefix}-value": "7.4", f"{prefix}-idempotency_key": uuid.uuid4().hex},
                           headers={"HX-Request": "true"})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="param-' in html and "7.4 °C" in html and "outside the alert limits" in html
    assert "<html" not in html


def test_failed_entry_keeps_what_was_typed_and_says_why(client, batch, operator):
    login(client, operator)
    step = open_step(batch)
    url, prefix = entry_url(batch, step, "temp")

    response = client.post(url, {f"{prefix}-value": "12", f"{prefix}-idempotency_key": uuid.uuid4().hex},
                           headers={"HX-Request": "true"})

    html = response.content.decode()
    assert response.status_code == 422
    assert 'value="12"' in html and "outside its specification" in html
    assert not Entry.objects.filter(step=step).exists()


def test_resent_form_creates_one_entry(client, batch, operator):
    login(client, operator)
    step = open_step(batch)
    url, prefix = entry_url(batch, step, "temp")
    form = {f"{prefix}-value": "5", f"{prefix}-idempotency_key": uuid.uuid4().hex}

    first = client.post(url, form)
    second = client.post(url, form)

    assert first.status_code == second.status_code == 302
    assert Entry.objects.filter(step=step).count() == 1


def test_signing_a_step_from_the_tablet(client, batch, operator, verifier):
    login(client, operator)
    step = open_step(batch)
    for code, value in (("label_ok", "yes"), ("temp", "5")):
        url, prefix = entry_url(batch, step, code)
        client.post(url, {f"{prefix}-value": value, f"{prefix}-idempotency_key": uuid.uuid4().hex})

    wrong = client.post(f"/execute/{batch.number}/steps/{step.pk}/perform/",
                        {"username": operator.username, "password": "not-the-password"})
    assert wrong.status_code == 422 and b"Wrong password" in wrong.content
    signed = client.post(f"/execute/{batch.number}/steps/{step.pk}/perform/",
                         {"username": operator.username, "password": PASSWORD})
    assert signed.status_code == 302
    page = client.get(f"/execute/{batch.number}/").content.decode()
    assert "Second-person verification" in page and "another operator must verify" in page

    client.post("/logout/")
    login(client, verifier)
    verified = client.post(f"/execute/{batch.number}/steps/{step.pk}/verify/",
                           {"username": verifier.username, "password": PASSWORD})
    assert verified.status_code == 302
    assert "2.1 · Seed the culture" in client.get(f"/execute/{batch.number}/").content.decode()


def test_username_is_asked_only_at_the_first_signing_of_a_session(client, batch, operator):
    login(client, operator)
    page = client.get(f"/execute/{batch.number}/").content.decode()
    assert 'name="username"' in page.split('id="perform"')[1]


def test_batch_overview_strikes_through_corrected_values(client, batch, operator, qa_reviewer):
    from ebr.services.execution import entry_correct, entry_record

    step = open_step(batch)
    temp = step.template.parameters.get(code="temp")
    original = entry_record(actor=operator, step=step, parameter=temp, value="6", idempotency_key="k1").entry
    entry_correct(actor=operator, entry=original, value="5.5", reason="Misread display", idempotency_key="k2")
    login(client, qa_reviewer)

    page = client.get(f"/batches/{batch.number}/").content.decode()

    assert '<del class="value">6 °C</del>' in page
    assert "Correction: Misread display" in page and "5.5 °C" in page


def test_batch_create_form_keeps_input_and_lists_identity_errors(client, supervisor, version):
    login(client, supervisor)

    response = client.post("/batches/new/", {
        "version": version.pk, "coi": "COI-AAAA-BBBB-C", "coi_confirmation": "COI-AAAA-BBBB-C",
        "din": "W1234 26 000001 Z", "patient_ref": "PT-77", "collecting_hospital": "City Hospital",
        "collected_at": "2026-01-02T08:00"})

    html = response.content.decode()
    assert response.status_code == 422
    assert "check character" in html and '<option value="City Hospital" selected>' in html
    assert 'value="PT-77"' in html


@pytest.mark.parametrize(("persona", "page", "status"), [
    ("auditor", "/execute/", 403), ("qa_reviewer", "/execute/", 403), ("operator", "/batches/new/", 403),
    ("auditor", "/batches/", 200), ("operator", "/batches/", 200), ("auditor", "/master-records/", 200),
])
def test_pages_per_role(client, request, persona, page, status, version):
    login(client, request.getfixturevalue(persona))

    assert client.get(page).status_code == status


def test_auditor_cannot_post_transitions(client, batch, auditor):
    login(client, auditor)

    response = client.post(f"/batches/{batch.number}/hold/", {"reason": "I would like to"})

    assert response.status_code == 422
    batch.refresh_from_db()
    assert batch.status == "in_progress"


def test_batch_audit_trail_page_shows_every_change_of_the_record(client, batch, operator, qa_reviewer):
    from ebr.services.execution import entry_record

    step = open_step(batch)
    entry_record(actor=operator, step=step, parameter=step.template.parameters.get(code="temp"), value="5",
                 idempotency_key="audit-1")
    login(client, qa_reviewer)

    page = client.get(f"/batches/{batch.number}/audit-trail/").content.decode()

    assert "ENTRY_RECORDED" in page and "temp = 5 °C" in page
    assert "BATCH_CREATED" in page and "BATCH_STARTED" in page


def test_nobody_signs_as_another_user_from_the_tablet(client, batch, operator, verifier):
    from qms.signatures import SESSION_USERNAME_CONFIRMED

    login(client, operator)
    step = open_step(batch)
    for code, value in (("label_ok", "yes"), ("temp", "5")):
        url, prefix = entry_url(batch, step, code)
        client.post(url, {f"{prefix}-value": value, f"{prefix}-idempotency_key": uuid.uuid4().hex})

    # the verifier's own username and password, typed into the operator's session
    response = client.post(f"/execute/{batch.number}/steps/{step.pk}/perform/",
                           {"username": verifier.username, "password": PASSWORD})

    assert response.status_code == 422 and b"only sign as yourself" in response.content
    step.refresh_from_db()
    assert step.performed_by is None
    assert not client.session.get(SESSION_USERNAME_CONFIRMED)


def test_the_master_record_page_writes_alert_and_instrument_limits_as_people_do(client, version, qa_reviewer):
    """Found by exploratory QA: '2.000000–8.000000' and '–36.000000' (read as minus 36)."""
    from ebr.models import InstrumentLimit

    step = version.stages.first().steps.first()
    InstrumentLimit(step=step, parameter="ph", alert_low=Decimal("6.90"), alert_high=Decimal("7.50"),
                    action_high=Decimal("7.60"), critical=True).save()
    login(client, qa_reviewer)

    page = client.get(f"/master-records/{version.master_record.code}/v{version.version}/").content.decode()

    assert "<td>3–7 °C</td>" in page
    assert "ph alert 6.9–7.5, action ≤ 7.6 (critical)" in page
    assert "000000" not in page



def test_a_refused_scan_shows_in_the_batch_audit_trail_with_what_was_scanned(client, batch, operator, verifier,
                                                                              qa_reviewer, resources):
    from django.core.exceptions import ValidationError

    from tests.ebr.test_execution import finish_step_one, record

    step = finish_step_one(batch, operator, verifier)
    with pytest.raises(ValidationError):
        record(operator, step, "medium", "MED-Q")  # a quarantined lot
    login(client, qa_reviewer)

    page = client.get(f"/batches/{batch.number}/audit-trail/").content.decode()

    assert "ENTRY_REFUSED" in page and 'medium: scanned <code>MED-Q</code> <span class="tag bad">refused</span>' in page


def test_the_batch_page_shows_the_din_as_on_the_label_with_its_check_character(client, batch, supervisor):
    from ebr.identity import din_validate

    login(client, supervisor)

    page = client.get(f"/batches/{batch.number}/").content.decode()

    shown = batch.din_display
    assert f"<code>{shown}</code>" in page and din_validate(shown) == batch.din


def test_a_value_sent_from_a_stale_page_gets_a_correction_form_that_keeps_the_typed_reason(client, batch, operator):
    """Two tablets (or tabs) on one step: the second records a value the first already recorded. The
    answer offers the correction; the reason typed into it must then reach the server."""
    login(client, operator)
    step = open_step(batch)
    url, prefix = entry_url(batch, step, "temp")
    client.post(url, {f"{prefix}-value": "5", f"{prefix}-idempotency_key": uuid.uuid4().hex})

    stale = client.post(url, {f"{prefix}-value": "6", f"{prefix}-idempotency_key": uuid.uuid4().hex},
                        headers={"HX-Request": "true"})

    assert stale.status_code == 422 and b"already recorded" in stale.content
    page = stale.content.decode()
    assert f'name="{prefix}-reason"' in page and 'name="entry"' in page
    assert "{#" not in page and "#}" not in page and "comment %" not in page  # no template source on the tablet
    entry = Entry.objects.get(step=step, parameter__code="temp")
    corrected = client.post(url, {"entry": entry.pk, f"{prefix}-value": "6",
                                  f"{prefix}-reason": "Read the wrong logger",
                                  f"{prefix}-idempotency_key": uuid.uuid4().hex}, headers={"HX-Request": "true"})
    assert corrected.status_code == 200, corrected.content.decode()[:500]
    assert Entry.objects.filter(step=step, parameter__code="temp", correction_reason="Read the wrong logger").exists()


def test_a_value_sent_to_a_step_signed_meanwhile_says_why_it_was_not_saved(client, batch, operator, verifier):
    """A page opened before the step was performed and verified: the value cannot be saved any more,
    and the operator must be told so, with what they typed, instead of seeing the input vanish."""
    from ebr.services.execution import step_verify

    login(client, operator)
    step = open_step(batch)
    for code, value in (("label_ok", "yes"), ("temp", "5")):
        url, prefix = entry_url(batch, step, code)
        client.post(url, {f"{prefix}-value": value, f"{prefix}-idempotency_key": uuid.uuid4().hex})
    client.post(f"/execute/{batch.number}/steps/{step.pk}/perform/", {"username": operator.username,
                                                                      "password": PASSWORD})
    step_verify(actor=verifier, step=step, password=PASSWORD, username=verifier.username)
    url, prefix = entry_url(batch, step, "temp")
    entry = Entry.objects.get(step=step, parameter__code="temp")

    late = client.post(url, {"entry": entry.pk, f"{prefix}-value": "6", f"{prefix}-reason": "typo",
                             f"{prefix}-idempotency_key": uuid.uuid4().hex}, headers={"HX-Request": "true"})

    assert late.status_code == 422
    page = late.content.decode()
    assert "Not saved:" in page and "You typed: 6" in page


def test_the_tablet_asks_someone_who_recorded_none_of_the_values_to_say_how_they_sign(client, batch, operator,
                                                                                    verifier):
    login(client, operator)
    step = open_step(batch)
    for code, value in (("label_ok", "yes"), ("temp", "5")):
        url, prefix = entry_url(batch, step, code)
        client.post(url, {f"{prefix}-value": value, f"{prefix}-idempotency_key": uuid.uuid4().hex})
    client.post("/logout/")
    login(client, verifier)
    assert "required: you recorded none of the values" in client.get(f"/execute/{batch.number}/").content.decode()

    refused = client.post(f"/execute/{batch.number}/steps/{step.pk}/perform/",
                          {"username": verifier.username, "password": PASSWORD, "remarks": "  "})
    assert refused.status_code == 422 and "recorded none of this step" in refused.content.decode()
    signed = client.post(f"/execute/{batch.number}/steps/{step.pk}/perform/",
                         {"username": verifier.username, "password": PASSWORD,
                          "remarks": "Performed it in the BSC; Olivia recorded as scribe"})
    assert signed.status_code == 302
