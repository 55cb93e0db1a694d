"""Change control: assessed, approved under signature by someone who did not write it, implemented
through signed tasks, closed by QA (EU GMP Part I 1.4(xii), Annex 15 §11, ICH Q10 3.2.3)."""

import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from qms.audit import Event
from qms.models import AuditEvent, ChangeControl, ChangeControlStatus, Notification
from qms.roles import Role
from qms.services import change_control as services
from qms.signatures import SegregationOfDuties, SignatureRefused, signatures_for
from qms.states import TransitionRefused
from tests.conftest import PASSWORD
from tests.qms import quality
from tests.qms.quality import in_days

pytestmark = pytest.mark.django_db


def _events(change, event):
    return AuditEvent.objects.filter(target_type="qms.changecontrol", target_id=str(change.pk), event_type=event)


def _approve(change, approver, password=PASSWORD):
    return services.change_control_approve(actor=approver, change=change, password=password,
                                           username=approver.username, reason="Impact acceptable")


def _task(change, author, owner):
    return services.change_control_task_add(actor=author, change=change, description="Qualify the NC-250 (IQ/OQ)",
                                            owner=owner, due_date=in_days(10), reason="Plan")


def _task_done(task, owner):
    return services.change_control_task_complete(actor=owner, task=task, evidence="IQ/OQ report QR-12 approved",
                                                 password=PASSWORD, username=owner.username, reason="Done")


def test_a_change_is_proposed_with_a_number_and_its_reason(supervisor):
    change = quality.change(supervisor)

    assert re.fullmatch(rf"CC-{timezone.localdate().year}-\d{{4}}", change.number) and str(change) == change.number
    assert change.status == ChangeControlStatus.OPEN and change.author == supervisor
    assert _events(change, Event.CHANGE_CONTROL_OPENED).get().actor_id == supervisor.pk
    assert not services.change_control_is_approved(change.number)


def test_proposal_refusals(operator, supervisor):
    before = ChangeControl.objects.count()
    with pytest.raises(PermissionDenied):
        quality.change(operator)
    with pytest.raises(ValidationError) as refused:
        quality.change(supervisor, change_type="whim", justification=" ")

    assert {"change_type", "justification"} <= set(refused.value.message_dict)
    assert ChangeControl.objects.count() == before


def test_approval_needs_every_impact_assessed(supervisor, qa_approver):
    change = quality.change(supervisor, impact_training="", impact_ongoing_batches=" ")

    with pytest.raises(ValidationError, match="impact on training, the impact on batches in progress"):
        _approve(change, qa_approver)
    services.change_control_assess(
        actor=supervisor, change=change, title=change.title, change_type=change.change_type,
        description=change.description, justification=change.justification, affected_items="SOP-017",
        impact_validation=change.impact_validation, impact_training="Read-and-understand SOP-017 v4",
        impact_documents=change.impact_documents, impact_ongoing_batches="None", reason="Impact completed")
    _approve(change, qa_approver)

    change.refresh_from_db()
    assert change.status == ChangeControlStatus.APPROVED and change.approved_by == qa_approver
    assert _events(change, Event.CHANGE_CONTROL_ASSESSED).get().reason == "Impact completed"
    assert [(s.meaning, s.printed_name, s.valid) for s in signatures_for(change)] == [
        ("approved", "Claire Approver", True)]
    assert services.change_control_is_approved(change.number)
    assert Notification.objects.filter(user=supervisor, text__contains="approved").exists()


def test_the_author_or_a_reviser_cannot_approve(supervisor, qa_approver, make_user):
    authored = quality.change(qa_approver)
    with pytest.raises(SegregationOfDuties):
        _approve(authored, qa_approver)

    revised = quality.change(supervisor)
    services.change_control_assess(
        actor=qa_approver, change=revised, title="New cell counter NC-250", change_type=revised.change_type,
        description=revised.description, justification=revised.justification, affected_items="",
        impact_validation=revised.impact_validation, impact_training=revised.impact_training,
        impact_documents=revised.impact_documents, impact_ongoing_batches=revised.impact_ongoing_batches,
        reason="Title")
    with pytest.raises(SegregationOfDuties):
        _approve(revised, qa_approver)

    other = make_user(Role.QA_APPROVER, full_name="Other Approver")
    _approve(revised, other)
    revised.refresh_from_db()
    assert revised.status == ChangeControlStatus.APPROVED
    authored.refresh_from_db()
    assert authored.status == ChangeControlStatus.OPEN


def test_approval_refusals_leave_it_open(supervisor, qa_approver, qa_reviewer):
    change = quality.change(supervisor)

    with pytest.raises(PermissionDenied):
        _approve(change, qa_reviewer)
    with pytest.raises(SignatureRefused):
        _approve(change, qa_approver, password="wrong-password-here")

    change.refresh_from_db()
    assert change.status == ChangeControlStatus.OPEN and not signatures_for(change)


def test_no_task_is_completed_before_approval_and_only_by_its_owner(supervisor, operator, qa_approver):
    change = quality.change(supervisor)
    task = _task(change, supervisor, operator)
    assert Notification.objects.filter(user=operator, text__contains=f"{change.number} task 1").exists()

    with pytest.raises(TransitionRefused, match="open"):
        _task_done(task, operator)
    _approve(change, qa_approver)
    with pytest.raises(PermissionDenied, match="owner"):
        _task_done(task, supervisor)
    _task_done(task, operator)

    task.refresh_from_db()
    assert task.status == "done" and task.completed_by == operator
    assert [(s.meaning, s.valid) for s in signatures_for(task)] == [("performed", True)]
    assert _events(change, Event.CHANGE_CONTROL_TASK_COMPLETED).get().data["task"] == 1


def test_implementation_and_signed_closure(supervisor, operator, qa_approver):
    change = quality.change(supervisor)
    _approve(change, qa_approver)
    with pytest.raises(ValidationError, match="no completed"):
        services.change_control_implement(actor=supervisor, change=change, reason="Done")
    first = _task(change, supervisor, operator)
    second = _task(change, supervisor, supervisor)
    _task_done(first, operator)
    with pytest.raises(ValidationError, match="1 open task"):
        services.change_control_implement(actor=supervisor, change=change, reason="Done")
    services.change_control_task_cancel(actor=supervisor, task=second, reason="Not needed after all")
    services.change_control_implement(actor=supervisor, change=change, reason="All tasks done")
    with pytest.raises(ValidationError) as no_summary:
        services.change_control_close(actor=qa_approver, change=change, summary="", password=PASSWORD,
                                      username=qa_approver.username, reason="Close")

    services.change_control_close(actor=qa_approver, change=change, summary="Counter in use, no trend shift",
                                  password=PASSWORD, username=qa_approver.username, reason="Close")

    change.refresh_from_db()
    assert "summary" in no_summary.value.message_dict
    assert change.status == ChangeControlStatus.CLOSED and change.closure_summary == "Counter in use, no trend shift"
    assert [(s.meaning, s.valid) for s in signatures_for(change)] == [("approved", True), ("approved", True)]
    assert _events(change, Event.CHANGE_CONTROL_IMPLEMENTED).exists()
    assert _events(change, Event.CHANGE_CONTROL_CLOSED).get().data["signature"]
    assert services.change_control_is_approved(change.number)


def test_rejected_cancelled_or_unknown_changes_are_not_approved(supervisor, qa_approver):
    rejected = quality.change(supervisor)
    cancelled = quality.change(supervisor)

    services.change_control_reject(actor=qa_approver, change=rejected, password=PASSWORD,
                                   username=qa_approver.username, reason="Validation plan missing")
    _approve(cancelled, qa_approver)
    services.change_control_cancel(actor=qa_approver, change=cancelled, reason="Supplier withdrew the model")

    rejected.refresh_from_db()
    assert rejected.status == ChangeControlStatus.REJECTED and rejected.outcome_reason == "Validation plan missing"
    assert [s.meaning for s in signatures_for(rejected)] == ["rejected"]
    assert not services.change_control_is_approved(rejected.number)
    assert not services.change_control_is_approved(cancelled.number)
    assert not services.change_control_is_approved("CC-1999-0001")
    with pytest.raises(TransitionRefused):
        _approve(rejected, qa_approver)


def test_the_page_says_who_implemented_it_and_tells_the_approval_from_the_closure(client, supervisor, operator,
                                                                                   qa_approver):
    from tests.conftest import login

    change = quality.change(supervisor)
    _approve(change, qa_approver)
    _task_done(_task(change, supervisor, operator), operator)
    services.change_control_implement(actor=supervisor, change=change, reason="All tasks done")
    services.change_control_close(actor=qa_approver, change=change, summary="Counter in use, no trend shift",
                                  password=PASSWORD, username=qa_approver.username, reason="Effective, closed")

    login(client, qa_approver)
    page = client.get(f"/qms/change-control/{change.number}/").content.decode()

    implemented = page.split("<dt>Implemented</dt>")[1].split("</dd>")[0]
    assert f"by {supervisor.full_name}" in implemented
    signatures = page.split('id="signatures"')[1].split("</section>")[0]
    assert signatures.count("· approved") == 2  # both signed "approved" (21 CFR 11.50 meaning) …
    assert "Impact acceptable" in signatures and "Effective, closed" in signatures  # … each with what it was for
