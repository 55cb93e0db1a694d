"""Nobody signs or saves over content they never saw (21 CFR 11.50, 11.70; ALCOA+): every step of a
change control or deviation after its report takes `seen`, the version its page was rendered
from, and is refused, with nothing stored, when the record or a child row on its page changed since."""

import pytest
from django.core.exceptions import ValidationError

from qms.models import (
    AuditEvent,
    ChangeControl,
    ChangeControlStatus,
    Deviation,
    DeviationStatus,
    Signature,
)
from qms.services import change_control as cc
from qms.services import deviations as dev
from qms.staleness import record_version
from tests.conftest import PASSWORD, login
from tests.qms import quality
from tests.qms.quality import in_days

pytestmark = pytest.mark.django_db

STALE = "This record changed since you opened it"


def _revise(change, author, description="Replace the NC-200 by the NC-300"):
    fields = {field: getattr(change, field) for field in cc.EDITABLE_FIELDS}
    return cc.change_control_assess(actor=author, change=change, reason="Revised", **{**fields,
                                                                                      "description": description})


def _stored(record):
    """What a refusal must leave untouched: the record's row, its audit events and signatures."""
    model = type(record)
    return (model.objects.filter(pk=record.pk).values().get(), AuditEvent.objects.count(), Signature.objects.count())


def _refused(call, record, who):
    before = _stored(record)
    with pytest.raises(ValidationError) as refused:
        call()
    message = refused.value.messages[0]
    assert message.startswith(STALE) and who.full_name in message and "review the changes" in message
    assert _stored(record) == before
    return message


# --- change control ----------------------------------------------------------------------------

def test_approval_refused_when_the_proposal_was_revised_after_the_page_was_read(supervisor, qa_reviewer, qa_approver):
    change = quality.change(qa_reviewer)
    seen = record_version(change)
    _revise(change, qa_reviewer)

    message = _refused(lambda: cc.change_control_approve(
        actor=qa_approver, change=change, password=PASSWORD, username=qa_approver.username, reason="OK",
        seen=seen), change, qa_reviewer)

    assert message.endswith("then sign again.")
    assert ChangeControl.objects.get(pk=change.pk).status == ChangeControlStatus.OPEN


def test_approval_signed_on_the_version_read(supervisor, qa_approver):
    change = quality.change(supervisor)
    _revise(change, supervisor)
    seen = record_version(change)  # the revised page, read after the revision

    approved = cc.change_control_approve(actor=qa_approver, change=change, password=PASSWORD,
                                         username=qa_approver.username, reason="OK", seen=seen)

    assert approved.status == ChangeControlStatus.APPROVED and approved.description.endswith("NC-300")
    assert Signature.objects.filter(target_id=str(change.pk), target_type="qms.changecontrol").count() == 1


def test_rejection_refused_when_stale_and_accepted_when_current(supervisor, qa_approver):
    change = quality.change(supervisor)
    seen = record_version(change)
    _revise(change, supervisor)
    call = lambda seen: cc.change_control_reject(  # noqa: E731
        actor=qa_approver, change=change, password=PASSWORD, username=qa_approver.username, reason="No", seen=seen)

    _refused(lambda: call(seen), change, supervisor)
    assert call(record_version(change)).status == ChangeControlStatus.REJECTED


def test_revision_refused_over_another_revision(supervisor, qa_reviewer):
    change = quality.change(supervisor)
    seen = record_version(change)
    _revise(change, qa_reviewer, description="Replace it by the NC-300")
    fields = {field: getattr(change, field) for field in cc.EDITABLE_FIELDS}

    message = _refused(lambda: cc.change_control_assess(actor=supervisor, change=change, reason="Mine", seen=seen,
                                                        **{**fields, "description": "Replace it by the NC-400"}),
                       change, qa_reviewer)

    assert message.endswith("then save again.")
    assert ChangeControl.objects.get(pk=change.pk).description == "Replace it by the NC-300"


def test_a_new_task_makes_the_page_stale_for_the_tasks_and_the_closure(supervisor, operator, qa_approver):
    change = quality.change(supervisor)
    cc.change_control_approve(actor=qa_approver, change=change, password=PASSWORD, username=qa_approver.username,
                              reason="OK", seen=record_version(change))
    task = cc.change_control_task_add(actor=supervisor, change=change, description="IQ/OQ", owner=operator,
                                      due_date=in_days(5), reason="Plan", seen=record_version(change))
    seen = record_version(change)
    cc.change_control_task_add(actor=supervisor, change=change, description="Train", owner=operator,
                               due_date=in_days(5), reason="Plan", seen=seen)  # a child row: the version moves

    _refused(lambda: cc.change_control_task_complete(
        actor=operator, task=task, evidence="QR-12", password=PASSWORD, username=operator.username, reason="Done",
        seen=seen), change, supervisor)
    _refused(lambda: cc.change_control_task_cancel(actor=supervisor, task=task, reason="Not needed", seen=seen),
             change, supervisor)

    for open_task in change.tasks.all():
        cc.change_control_task_complete(actor=operator, task=open_task, evidence="QR-12", password=PASSWORD,
                                        username=operator.username, reason="Done", seen=record_version(change))
    seen = record_version(change)
    cc.change_control_implement(actor=supervisor, change=change, reason="All done", seen=seen)
    _refused(lambda: cc.change_control_close(actor=qa_approver, change=change, summary="Works", password=PASSWORD,
                                             username=qa_approver.username, reason="Closed", seen=seen),
             change, supervisor)
    closed = cc.change_control_close(actor=qa_approver, change=change, summary="Works", password=PASSWORD,
                                     username=qa_approver.username, reason="Closed", seen=record_version(change))
    assert closed.status == ChangeControlStatus.CLOSED


def test_implement_and_cancel_refused_when_stale(supervisor, qa_approver):
    change = quality.change(supervisor)
    seen = record_version(change)
    _revise(change, supervisor)

    _refused(lambda: cc.change_control_cancel(actor=qa_approver, change=change, reason="Dropped", seen=seen),
             change, supervisor)
    assert cc.change_control_cancel(actor=qa_approver, change=change, reason="Dropped",
                                    seen=record_version(change)).status == ChangeControlStatus.CANCELLED


def test_no_page_read_means_nothing_to_compare(supervisor, qa_approver):
    change = quality.change(supervisor)
    _revise(change, supervisor)

    assert cc.change_control_approve(actor=qa_approver, change=change, password=PASSWORD,
                                     username=qa_approver.username, reason="OK").status == ChangeControlStatus.APPROVED


# --- deviations --------------------------------------------------------------------------------

def _triage(deviation, qa, owner, seen, classification="major"):
    return dev.deviation_triage(actor=qa, deviation=deviation, classification=classification, rationale="Door",
                                severity=4, occurrence=2, detectability=3, owner=owner, reason="Triage", seen=seen)


def test_two_triagers_do_not_overwrite_each_other(operator, qa_reviewer, qa_approver, supervisor):
    deviation = quality.deviation(operator)
    seen = record_version(deviation)  # both opened the page
    _triage(deviation, qa_reviewer, supervisor, seen, classification="major")

    message = _refused(lambda: _triage(deviation, qa_approver, supervisor, seen, classification="minor"),
                       deviation, qa_reviewer)

    assert message.endswith("then save again.")
    assert Deviation.objects.get(pk=deviation.pk).classification == "major"
    assert _triage(deviation, qa_approver, supervisor, record_version(deviation), "minor").classification == "minor"


def test_investigation_refused_when_an_impact_assessment_changed_since(operator, qa_reviewer, supervisor, verifier):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    seen = record_version(deviation)
    batch = deviation.subjects.order_by("id").first()
    dev.deviation_investigate(actor=qa_reviewer, deviation=deviation, root_cause_category="", root_cause="",
                              product_impact="", subject_impacts={batch.pk: ("no_impact", "Within limits")},
                              reason="Impact", seen=seen)
    assert record_version(deviation) != seen

    _refused(lambda: dev.deviation_investigate(
        actor=supervisor, deviation=deviation, root_cause_category="people", root_cause="Interrupted round",
        product_impact="None", subject_impacts={batch.pk: ("not_assessed", "")}, reason="Mine", seen=seen),
        deviation, qa_reviewer)

    batch.refresh_from_db()
    assert (batch.impact, batch.impact_assessment) == ("no_impact", "Within limits")


def test_submission_and_closure_signed_only_on_the_version_read(operator, qa_reviewer, supervisor, qa_approver):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    quality.investigate(deviation, supervisor)
    seen = record_version(deviation)
    quality.decide_no_capa(deviation, supervisor)

    _refused(lambda: dev.deviation_submit(actor=supervisor, deviation=deviation, password=PASSWORD,
                                          username=supervisor.username, reason="Complete", seen=seen),
             deviation, supervisor)
    dev.deviation_submit(actor=supervisor, deviation=deviation, password=PASSWORD, username=supervisor.username,
                         reason="Complete", seen=record_version(deviation))

    seen = record_version(deviation)
    dev.deviation_return(actor=qa_approver, deviation=deviation, reason="Add the door log", seen=seen)  # other tab
    _refused(lambda: dev.deviation_close(actor=qa_approver, deviation=deviation, password=PASSWORD,
                                         username=qa_approver.username, reason="Approved", seen=seen),
             deviation, qa_approver)
    assert Deviation.objects.get(pk=deviation.pk).status == DeviationStatus.INVESTIGATION

    dev.deviation_submit(actor=supervisor, deviation=deviation, password=PASSWORD, username=supervisor.username,
                         reason="Door log added", seen=record_version(deviation))
    closed = dev.deviation_close(actor=qa_approver, deviation=deviation, password=PASSWORD,
                                 username=qa_approver.username, reason="Approved", seen=record_version(deviation))
    assert closed.status == DeviationStatus.CLOSED


def test_extension_capa_decision_and_cancel_refused_when_stale(operator, qa_reviewer, qa_approver, supervisor):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    seen = record_version(deviation)
    quality.investigate(deviation, supervisor)

    _refused(lambda: dev.deviation_extend(actor=qa_approver, deviation=deviation, new_due_date=in_days(45),
                                          password=PASSWORD, username=qa_approver.username, reason="Supplier",
                                          seen=seen), deviation, supervisor)
    _refused(lambda: dev.deviation_capa_decide(actor=supervisor, deviation=deviation, decision="not_required",
                                               rationale="Isolated", reason="Decision", seen=seen),
             deviation, supervisor)
    _refused(lambda: dev.deviation_cancel(actor=qa_reviewer, deviation=deviation, reason="Duplicate", seen=seen),
             deviation, supervisor)
    extension = dev.deviation_extend(actor=qa_approver, deviation=deviation, new_due_date=in_days(45),
                                     password=PASSWORD, username=qa_approver.username, reason="Supplier",
                                     seen=record_version(deviation))
    assert extension.new_due_date == in_days(45)


# --- the pages ---------------------------------------------------------------------------------

def test_a_stale_approval_page_is_shown_again_with_the_reason_and_the_revised_text(client, supervisor, qa_approver):
    change = quality.change(supervisor)
    login(client, qa_approver)
    page = client.get(f"/qms/change-control/{change.number}/").content.decode()
    seen = record_version(change)
    assert f'name="approve-seen" value="{seen}"' in page
    _revise(change, supervisor)

    response = client.post(f"/qms/change-control/{change.number}/approve/", {
        "approve-seen": seen, "approve-reason": "Impact acceptable", "approve-username": qa_approver.username,
        "approve-password": PASSWORD})
    shown = response.content.decode()

    assert response.status_code == 422 and STALE in shown and "NC-300" in shown
    assert "Impact acceptable" in shown and PASSWORD not in shown
    assert f'name="approve-seen" value="{record_version(change)}"' in shown  # the page now read
    assert ChangeControl.objects.get(pk=change.pk).status == ChangeControlStatus.OPEN


def test_a_form_without_its_version_is_refused(client, supervisor, qa_approver):
    change = quality.change(supervisor)
    login(client, qa_approver)

    response = client.post(f"/qms/change-control/{change.number}/approve/", {
        "approve-reason": "OK", "approve-username": qa_approver.username, "approve-password": PASSWORD})

    assert response.status_code == 422 and "which version of the record you read" in response.content.decode()
    assert ChangeControl.objects.get(pk=change.pk).status == ChangeControlStatus.OPEN


def test_a_form_refused_for_another_reason_also_says_the_record_changed(client, supervisor, qa_approver):
    """The code review found: refused for an empty reason (before the versions are compared), the
    form came back on the new version without a word, and the next submit signed the revised text
    unseen. Now the change is said as well, and the form holds the version now shown."""
    change = quality.change(supervisor)
    login(client, qa_approver)
    seen = record_version(change)
    _revise(change, supervisor)

    response = client.post(f"/qms/change-control/{change.number}/approve/", {
        "approve-seen": seen, "approve-reason": "", "approve-username": qa_approver.username,
        "approve-password": PASSWORD})
    shown = response.content.decode()

    assert response.status_code == 422 and "This record changed since you opened it" in shown
    assert f'name="approve-seen" value="{record_version(change)}"' in shown
    assert ChangeControl.objects.get(pk=change.pk).status == ChangeControlStatus.OPEN
