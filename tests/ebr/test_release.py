"""QA review and release: blocked by open deviations, an unreviewed audit trail or invalid signatures."""

import uuid

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from ebr.models import BatchStatus, StepStatus
from ebr.services.execution import entry_correct, entry_record, step_perform, step_verify
from ebr.services.release import (
    batch_audit_trail_review,
    batch_reject,
    batch_release,
    batch_review_start,
    qp_certification,
    release_blockers,
)
from qms.audit import Event
from qms.models import AuditEvent, Signature
from qms.signatures import SegregationOfDuties
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

CLEAN = {"label_ok": "yes", "temp": "5", "bsc": "BSC-T1", "medium": "MED-1", "viability": "91", "cells": "300",
         "volume": "60"}


def run_batch(batch, operator, verifier, values=None, comments=None):
    values = {**CLEAN, **(values or {})}
    while (step := batch.steps.exclude(status=StepStatus.DONE).order_by("sequence").first()) is not None:
        for parameter in step.template.parameters.exclude(kind="calculated"):
            entry_record(actor=operator, step=step, parameter=parameter, value=values[parameter.code],
                         comment=(comments or {}).get(parameter.code, ""), idempotency_key=uuid.uuid4().hex)
        step_perform(actor=operator, step=step, password=PASSWORD, username=operator.username)
        step.refresh_from_db()
        if step.status == StepStatus.PERFORMED:
            step_verify(actor=verifier, step=step, password=PASSWORD, username=verifier.username)
    batch.refresh_from_db()
    return batch


def sign_args(person):
    return {"password": PASSWORD, "username": person.username}


def review_by_exception(batch, qa_reviewer):
    """Run the batch record review and disposition whatever it flags (no impact)."""
    from nlp_review.models import Disposition, ReviewFlag
    from nlp_review.services import batch_review_run, flag_disposition
    from qms.audit import SystemActor

    review = batch_review_run(batch=batch, actor=SystemActor("system:tests"), request_id=uuid.uuid4().hex)
    for flag in ReviewFlag.objects.filter(review=review):
        flag_disposition(actor=qa_reviewer, flag=flag, outcome=Disposition.NO_IMPACT, reason="Checked, no impact",
                         **sign_args(qa_reviewer))
    return review


@pytest.fixture
def reviewed_batch(batch, operator, verifier, qa_reviewer):
    run_batch(batch, operator, verifier)
    review_by_exception(batch, qa_reviewer)
    batch_review_start(actor=qa_reviewer, batch=batch)
    batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Audit trail reviewed, nothing unusual",
                             **sign_args(qa_reviewer))
    batch.refresh_from_db()
    return batch


def test_clean_batch_is_released_with_signature_and_becomes_read_only(reviewed_batch, qa_approver, operator):
    released = batch_release(actor=qa_approver, batch=reviewed_batch, reason="Meets all specifications",
                             **sign_args(qa_approver))

    assert released.status == BatchStatus.RELEASED
    assert AuditEvent.objects.filter(event_type=Event.BATCH_RELEASED, target_id=str(released.pk)).exists()
    # what the QP certified is kept with the signature, not only shown at signing
    signature = Signature.objects.get(target_type="ebr.batch", target_id=str(released.pk), meaning="released")
    assert signature.reason == f"{qp_certification(released)}\nReason: Meets all specifications"
    assert f"I certify that batch {released.number}" in signature.reason
    step = released.steps.order_by("sequence").last()
    with pytest.raises(ValidationError):
        entry_record(actor=operator, step=step, parameter=step.template.parameters.first(), value="1",
                     idempotency_key=uuid.uuid4().hex)


def test_the_chain_of_custody_goes_on_after_release_without_touching_the_release_signature(
        reviewed_batch, qa_approver, operator, client):
    """Shipment to the ward and receipt there come after the QP's certification: the hand-off is
    recorded (and audited) on the released record, and the release signature stays valid."""
    from datetime import timedelta

    from django.utils import timezone

    from ebr.services.batches import custody_event_record
    from qms.models import Signature
    from qms.signatures import signature_is_valid
    from tests.conftest import login

    released = batch_release(actor=qa_approver, batch=reviewed_batch, reason="Meets all specifications",
                             **sign_args(qa_approver))
    shipped = custody_event_record(actor=operator, batch=released, from_party="Cell therapy unit",
                                   to_party="Courier (dry shipper)", location="Dispatch",
                                   occurred_at=timezone.now() - timedelta(minutes=5), temperature_c=-180)

    assert AuditEvent.objects.filter(event_type=Event.CUSTODY_RECORDED, target_id=str(shipped.pk)).exists()
    release = Signature.objects.get(target_type="ebr.batch", target_id=str(released.pk), meaning="released")
    assert signature_is_valid(release)
    page = login(client, operator).get(f"/batches/{released.number}/").content.decode()
    assert "Courier (dry shipper)" in page and "Record a hand-off" in page


def test_release_refused_without_audit_trail_review(batch, operator, verifier, qa_reviewer, qa_approver):
    run_batch(batch, operator, verifier)
    batch_review_start(actor=qa_reviewer, batch=batch)

    with pytest.raises(ValidationError, match="audit trail has not been reviewed"):
        batch_release(actor=qa_approver, batch=batch, reason="ok", **sign_args(qa_approver))


def test_release_refused_while_a_deviation_is_open(batch, operator, verifier, qa_reviewer, qa_approver):
    run_batch(batch, operator, verifier, values={"viability": "61"},
              comments={"viability": "Viability low after thaw of medium"})
    batch_review_start(actor=qa_reviewer, batch=batch)
    batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Reviewed", **sign_args(qa_reviewer))

    blockers = release_blockers(batch)

    assert any(b.startswith("Open deviations: DEV-") for b in blockers)
    with pytest.raises(ValidationError, match="Open deviations"):
        batch_release(actor=qa_approver, batch=batch, reason="ok", **sign_args(qa_approver))
    rejected = batch_reject(actor=qa_approver, batch=batch, reason="Viability out of specification",
                            **sign_args(qa_approver))
    assert rejected.status == BatchStatus.REJECTED


def test_release_refused_when_a_signature_no_longer_matches_its_record(reviewed_batch, qa_approver, operator):
    from ebr.models import Entry

    # a change behind the services' back (here: a correction row slipped in) breaks the step signature
    step = reviewed_batch.steps.order_by("sequence").first()
    entry = Entry.objects.filter(step=step, parameter__code="temp").get()
    reviewed_batch.status = BatchStatus.IN_PROGRESS
    reviewed_batch.save(update_fields=["status"])
    step.status = StepStatus.OPEN
    step.save(update_fields=["status"])
    entry_correct(actor=operator, entry=entry, value="5.2", reason="late fix", idempotency_key=uuid.uuid4().hex)
    reviewed_batch.status = BatchStatus.IN_REVIEW
    reviewed_batch.save(update_fields=["status"])

    blockers = release_blockers(reviewed_batch)

    assert any("invalid" in b for b in blockers)
    assert any("audit trail has not been reviewed since" in b for b in blockers)


def test_nobody_who_executed_the_batch_releases_it(reviewed_batch, make_user, operator):
    from qms.roles import Role
    from qms.services.users import user_roles_set

    user_roles_set(actor=make_user(Role.ADMIN), user=operator, roles=[Role.OPERATOR, Role.QA_APPROVER],
                   reason="Dual role for the test")

    with pytest.raises(SegregationOfDuties):
        batch_release(actor=operator, batch=reviewed_batch, reason="ok", **sign_args(operator))


def test_only_qa_approvers_release(reviewed_batch, qa_reviewer):
    with pytest.raises(PermissionDenied):
        batch_release(actor=qa_reviewer, batch=reviewed_batch, reason="ok", **sign_args(qa_reviewer))


def test_audit_trail_review_is_signed_and_recorded(reviewed_batch, qa_reviewer):
    event = AuditEvent.objects.get(event_type=Event.AUDIT_TRAIL_REVIEWED, target_id=str(reviewed_batch.pk))

    assert event.actor_id == qa_reviewer.pk and event.data["signature"]


def test_release_refused_until_the_record_review_has_run(batch, operator, verifier, qa_reviewer, qa_approver):
    run_batch(batch, operator, verifier)
    batch_review_start(actor=qa_reviewer, batch=batch)
    batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Reviewed", **sign_args(qa_reviewer))

    assert any("review has not run" in b for b in release_blockers(batch))


def test_review_flags_and_dispositions_reach_the_pdf_record(batch, operator, verifier, qa_reviewer):
    from django.apps import apps

    run_batch(batch, operator, verifier, values={"viability": "61"}, comments={"viability": "Low viability"})
    review_by_exception(batch, qa_reviewer)

    flags = apps.get_app_config("nlp_review").review_flags_for_pdf(batch.pk)

    assert flags, "an out-of-specification value must be flagged"
    assert all(flag["disposition"] == "no_impact" and flag["dispositioned_by"] == "Quentin Reviewer"
               for flag in flags)
