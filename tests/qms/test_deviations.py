"""Deviations: reporting, numbering, triage with ICH Q9 risk, investigation, signed submission and
closure, cancellation, extension; every refusal leaves nothing half-saved (EU GMP Part I 1.4(xiv))."""

import re
import threading
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections, transaction
from django.utils import timezone

from qms.audit import Event, SystemActor
from qms.models import AuditEvent, Deviation, DeviationStatus, DeviationSubject, Notification, Signature
from qms.selectors import deviations_for, deviations_open_for
from qms.services import capa as capa_services
from qms.services import deviations as services
from qms.signatures import SegregationOfDuties, SignatureRefused, signatures_for
from qms.states import TransitionRefused
from qms.subjects import Subject
from tests.conftest import PASSWORD
from tests.qms import quality
from tests.qms.quality import BATCH, STEP, in_days

pytestmark = pytest.mark.django_db


def _events(deviation, event):
    return AuditEvent.objects.filter(target_type="qms.deviation", target_id=str(deviation.pk), event_type=event)


def _number(value: str) -> int:
    return int(value.rsplit("-", 1)[1])


# --- reporting and numbering ---------------------------------------------------------------

def test_operator_reports_a_deviation_numbered_and_linked_to_its_batch_and_step(operator, qa_reviewer):
    deviation = quality.deviation(operator)

    assert re.fullmatch(rf"DEV-{timezone.localdate().year}-\d{{4}}", deviation.number)
    assert str(deviation) == deviation.number
    assert deviation.status == DeviationStatus.OPEN
    assert deviation.reporter == operator and deviation.reporter_label == operator.username
    assert deviation.discovered_at > deviation.occurred_at
    assert [(s.subject_type, s.subject_id, s.label) for s in deviation.subjects.all()] == [
        ("ebr.batch", "900012", "B-2026-0003"), ("ebr.stepexecution", "900055", "B-2026-0003 step 4.2")]
    opened = _events(deviation, Event.DEVIATION_OPENED).get()
    assert opened.actor_id == operator.pk
    assert opened.data["subjects"][0] == {"type": "ebr.batch", "id": "900012", "label": "B-2026-0003"}
    assert deviation.history.get().history_change_reason == "Deviation reported"
    assert Notification.objects.filter(user=qa_reviewer, text__contains=deviation.number).exists()


def test_numbers_follow_each_other_and_a_refused_report_uses_no_number(operator):
    first = quality.deviation(operator)
    with pytest.raises(ValidationError):
        quality.deviation(operator, title="")
    second = quality.deviation(operator)

    assert _number(second.number) == _number(first.number) + 1


def test_automated_sources_report_as_the_system(db):
    deviation = quality.deviation(SystemActor("system:alarm-evaluation"), source="instrument_alarm",
                                  subjects=[Subject("ebr.equipment", "7", "BR-01")])

    assert deviation.reporter is None and deviation.reporter_label == "system:alarm-evaluation"
    assert deviation.source == "instrument_alarm"


def test_auditor_cannot_report_a_deviation(auditor):
    before = Deviation.objects.count()
    with pytest.raises(PermissionDenied):
        quality.deviation(auditor)
    assert Deviation.objects.count() == before


@pytest.mark.parametrize(("change", "field"), [
    ({"title": "  "}, "title"),
    ({"description": ""}, "description"),
    ({"occurred_at": timezone.now() + timedelta(hours=2)}, "occurred_at"),
    ({"occurred_at": timezone.now().replace(tzinfo=None)}, "occurred_at"),
    ({"discovered_at": timezone.now() - timedelta(days=3)}, "discovered_at"),
    ({"source": "rumour"}, "source"),
])
def test_bad_reports_are_refused_with_the_field_named(operator, change, field):
    now = timezone.now()
    arguments = {"actor": operator, "title": "Pipette out of calibration", "description": "Found at check",
                 "occurred_at": now - timedelta(days=1), "discovered_at": now - timedelta(hours=1), **change}

    with pytest.raises(ValidationError) as refused:
        services.deviation_open(**arguments)

    assert field in refused.value.message_dict
    assert not Deviation.objects.filter(description="Found at check").exists()


def test_malformed_subject_is_refused(operator):
    with pytest.raises(ValidationError, match=r"app\.model"):
        quality.deviation(operator, subjects=[Subject("Batch", "1", "B-1")], title="Malformed subject")
    assert not Deviation.objects.filter(title="Malformed subject").exists()
    assert not DeviationSubject.objects.filter(label="B-1").exists()


def test_selectors_find_open_and_all_deviations_of_a_subject(operator, qa_reviewer):
    kept = quality.deviation(operator)
    cancelled = quality.deviation(operator, subjects=[BATCH])
    services.deviation_cancel(actor=qa_reviewer, deviation=cancelled, reason="Duplicate of " + kept.number)
    quality.deviation(operator, subjects=[Subject("ebr.batch", "900013", "B-2026-0004")])

    assert deviations_open_for("ebr.batch", "900012") == [kept]
    assert deviations_for("ebr.batch", "900012") == [kept, cancelled]
    assert deviations_open_for("ebr.stepexecution", "900055") == [kept]


def test_more_records_can_be_linked_during_investigation(operator, supervisor):
    deviation = quality.deviation(operator, subjects=[BATCH])

    services.deviation_subject_add(actor=supervisor, deviation=deviation,
                                   subject=Subject("ebr.equipment", "7", "INC-02"), reason="Same incubator")

    assert deviation.subjects.count() == 2
    assert _events(deviation, Event.DEVIATION_SUBJECT_LINKED).exists()
    with pytest.raises(ValidationError, match="already linked"):
        services.deviation_subject_add(actor=supervisor, deviation=deviation,
                                       subject=Subject("ebr.equipment", "7", "INC-02"), reason="Again")


# --- triage ---------------------------------------------------------------------------------

def test_qa_triage_classifies_scores_risk_sets_due_date_and_tells_the_owner(operator, qa_reviewer, supervisor):
    deviation = quality.deviation(operator)

    quality.triage(deviation, qa_reviewer, owner=supervisor, classification="major", scores=(4, 2, 4))

    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.TRIAGE
    assert (deviation.severity, deviation.occurrence, deviation.detectability, deviation.rpn) == (4, 2, 4, 32)
    assert deviation.risk_level == "high"  # matrix M for S4/O2, raised one step by poor detection
    assert deviation.due_date == timezone.localdate(deviation.opened_at) + timedelta(days=30)
    assert deviation.owner == supervisor and deviation.triaged_by == qa_reviewer
    triaged = _events(deviation, Event.DEVIATION_TRIAGED).get()
    assert triaged.data["rpn"] == 32 and triaged.reason == "Triage"
    assert {"field": "classification", "old": "", "new": "major"} in triaged.data["changes"]
    assert Notification.objects.filter(user=supervisor, text__contains=deviation.number).exists()


def test_due_days_per_class_come_from_settings(operator, qa_reviewer, supervisor, settings):
    settings.DEVIATION_DUE_DAYS = {"critical": 15}
    deviation = quality.deviation(operator)

    quality.triage(deviation, qa_reviewer, owner=supervisor, classification="critical")

    deviation.refresh_from_db()
    assert deviation.due_date == timezone.localdate(deviation.opened_at) + timedelta(days=15)


def test_only_qa_triages(operator, supervisor):
    deviation = quality.deviation(operator)

    for person in (operator, supervisor):
        with pytest.raises(PermissionDenied):
            quality.triage(deviation, person, owner=supervisor)
    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.OPEN


@pytest.mark.parametrize(("arguments", "field"), [
    ({"classification": "serious"}, "classification"),
    ({"rationale": " "}, "classification_rationale"),
    ({"severity": 6}, "severity"),
    ({"detectability": 0}, "detectability"),
])
def test_triage_needs_a_class_a_rationale_and_scores_from_1_to_5(operator, qa_reviewer, supervisor, arguments, field):
    deviation = quality.deviation(operator)
    values = {"classification": "minor", "rationale": "Low risk", "severity": 2, "occurrence": 2,
              "detectability": 2, **arguments}

    with pytest.raises(ValidationError) as refused:
        services.deviation_triage(actor=qa_reviewer, deviation=deviation, owner=supervisor, reason="Triage", **values)

    assert field in refused.value.message_dict
    deviation.refresh_from_db()
    assert deviation.classification == "" and deviation.status == DeviationStatus.OPEN


def test_owner_must_be_able_to_investigate(operator, qa_reviewer):
    deviation = quality.deviation(operator)

    with pytest.raises(ValidationError, match="role does not allow"):
        quality.triage(deviation, qa_reviewer, owner=operator)


def test_triage_can_be_revised_until_the_investigation_starts(operator, qa_reviewer, supervisor):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor, classification="minor", scores=(1, 1, 1))
    quality.triage(deviation, qa_reviewer, owner=supervisor, classification="major", scores=(3, 3, 3))
    quality.investigate(deviation, supervisor)

    with pytest.raises(TransitionRefused, match="under investigation"):
        quality.triage(deviation, qa_reviewer, owner=supervisor, classification="critical")
    deviation.refresh_from_db()
    assert deviation.classification == "major" and deviation.rpn == 27


# --- investigation and submission -----------------------------------------------------------

def test_investigation_records_root_cause_whys_and_impact_per_batch(operator, qa_reviewer, supervisor):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)

    quality.investigate(deviation, supervisor)

    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.INVESTIGATION
    assert deviation.root_cause_category == "people" and len(deviation.root_cause_whys) == 3
    assert set(deviation.subjects.values_list("impact", flat=True)) == {"no_impact"}
    assert _events(deviation, Event.DEVIATION_INVESTIGATED).get().data["subjects_assessed"] == [
        BATCH.label, STEP.label]


def test_investigation_refuses_gaps_in_the_whys_and_unexplained_impacts(operator, qa_reviewer, supervisor):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    batch = deviation.subjects.get(subject_type="ebr.batch")

    with pytest.raises(ValidationError, match="without gaps"):
        services.deviation_investigate(actor=supervisor, deviation=deviation, root_cause_category="method",
                                       root_cause="x", whys=["a", "", "c"], product_impact="none", reason="r")
    with pytest.raises(ValidationError, match="at most 5"):
        services.deviation_investigate(actor=supervisor, deviation=deviation, root_cause_category="method",
                                       root_cause="x", whys=list("abcdef"), product_impact="none", reason="r")
    with pytest.raises(ValidationError, match="Explain the impact"):
        services.deviation_investigate(actor=supervisor, deviation=deviation, root_cause_category="method",
                                       root_cause="x", product_impact="none", reason="r",
                                       subject_impacts={batch.pk: ("possible_impact", "")})
    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.TRIAGE and deviation.root_cause == ""


def test_submission_is_refused_until_the_investigation_is_complete(operator, qa_reviewer, supervisor):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    services.deviation_investigate(actor=supervisor, deviation=deviation, root_cause_category="machine",
                                   root_cause="Worn latch", product_impact="None", reason="First findings")

    with pytest.raises(ValidationError) as refused:
        quality.submit(deviation, supervisor)

    assert "impact on batch B-2026-0003" in str(refused.value) and "CAPA decision" in str(refused.value)
    assert not signatures_for(deviation)


def test_capa_decision_cannot_link_a_closed_capa(operator, qa_reviewer, supervisor):
    from qms.models import Capa

    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    quality.investigate(deviation, supervisor)
    capa = quality.capa(qa_reviewer, title="Latch check")
    Capa.objects.filter(pk=capa.pk).update(status="closed")  # a signed, closed CAPA (set up directly)

    with pytest.raises(ValidationError) as refused:
        services.deviation_capa_decide(actor=supervisor, deviation=deviation, decision="required", capa=capa,
                                       reason="Recurring latch failures")

    assert "capa" in refused.value.message_dict and "closed" in str(refused.value)
    assert not capa.deviation_links.filter(deviation=deviation).exists()
    deviation.refresh_from_db()
    assert deviation.capa_decision == "" and deviation.capa is None


def test_capa_decision_needs_a_capa_or_a_rationale(operator, qa_reviewer, supervisor):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    quality.investigate(deviation, supervisor)

    with pytest.raises(ValidationError) as no_capa:
        services.deviation_capa_decide(actor=supervisor, deviation=deviation, decision="required", reason="r")
    with pytest.raises(ValidationError) as no_rationale:
        services.deviation_capa_decide(actor=supervisor, deviation=deviation, decision="not_required", reason="r")

    assert "capa" in no_capa.value.message_dict and "capa_rationale" in no_rationale.value.message_dict
    capa = quality.capa(qa_reviewer, title="Latch check")
    services.deviation_capa_decide(actor=supervisor, deviation=deviation, decision="required", capa=capa,
                                   reason="Recurring latch failures")
    deviation.refresh_from_db()
    assert deviation.capa == capa and capa.deviation_links.filter(deviation=deviation).exists()
    assert _events(deviation, Event.DEVIATION_CAPA_DECIDED).get().data == {
        "changes": [{"field": "capa_decision", "old": "", "new": "required"},
                    {"field": "capa", "old": None, "new": capa.pk, "new_label": capa.number}],
        "decision": "required", "capa": capa.number}


def test_submission_is_signed_by_the_investigator_as_author(operator, qa_reviewer, supervisor):
    deviation = quality.pending_approval(operator, qa_reviewer, supervisor)

    assert deviation.status == DeviationStatus.PENDING_APPROVAL and deviation.submitted_by == supervisor
    (signature,) = signatures_for(deviation)
    assert (signature.printed_name, signature.meaning, signature.valid) == ("Sofia Supervisor", "authored", True)
    submitted = _events(deviation, Event.DEVIATION_SUBMITTED).get()
    assert Signature.objects.get(pk=submitted.data["signature"]).signer == supervisor


# --- closure --------------------------------------------------------------------------------

def test_qa_approver_closes_with_an_approval_signature_and_the_author_signature_stays_valid(
        operator, qa_reviewer, supervisor, qa_approver):
    deviation = quality.pending_approval(operator, qa_reviewer, supervisor)

    services.deviation_close(actor=qa_approver, deviation=deviation, password=PASSWORD,
                             username=qa_approver.username, reason="Investigation adequate")

    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.CLOSED and deviation.closed_by == qa_approver
    assert [(s.meaning, s.valid) for s in signatures_for(deviation)] == [("authored", True), ("approved", True)]
    closed = _events(deviation, Event.DEVIATION_CLOSED).get()
    assert Signature.objects.get(pk=closed.data["signature"]).signer == qa_approver
    assert deviations_open_for("ebr.batch", "900012") == []


def test_only_the_qa_approver_closes(operator, qa_reviewer, supervisor):
    deviation = quality.pending_approval(operator, qa_reviewer, supervisor)

    with pytest.raises(PermissionDenied):
        services.deviation_close(actor=qa_reviewer, deviation=deviation, password=PASSWORD,
                                 username=qa_reviewer.username, reason="Close")
    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.PENDING_APPROVAL


def test_the_investigator_cannot_approve_their_own_investigation(operator, qa_reviewer, make_user):
    from qms.roles import Role

    investigator = make_user(roles=[Role.SUPERVISOR, Role.QA_APPROVER], full_name="Two Hats")
    deviation = quality.pending_approval(operator, qa_reviewer, investigator)

    with pytest.raises(SegregationOfDuties):
        services.deviation_close(actor=investigator, deviation=deviation, password=PASSWORD,
                                 username=investigator.username, reason="Close")
    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.PENDING_APPROVAL


def test_wrong_password_refuses_closure_and_changes_nothing(operator, qa_reviewer, supervisor, qa_approver):
    deviation = quality.pending_approval(operator, qa_reviewer, supervisor)

    with pytest.raises(SignatureRefused):
        services.deviation_close(actor=qa_approver, deviation=deviation, password="wrong-password-here",
                                 username=qa_approver.username, reason="Close")

    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.PENDING_APPROVAL
    assert not _events(deviation, Event.DEVIATION_CLOSED).exists()
    assert AuditEvent.objects.using("security").filter(event_type=Event.SIGNATURE_REFUSED,
                                                       actor_id=qa_approver.pk).exists()


def test_closure_is_refused_when_the_required_capa_was_cancelled(operator, qa_reviewer, supervisor, qa_approver):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    quality.investigate(deviation, supervisor)
    capa = quality.capa(qa_reviewer, deviations=[deviation], source="deviation")
    services.deviation_capa_decide(actor=supervisor, deviation=deviation, decision="required", capa=capa, reason="r")
    quality.submit(deviation, supervisor)
    capa_services.capa_cancel(actor=qa_approver, capa=capa, reason="Opened in error")

    with pytest.raises(ValidationError, match="missing or cancelled"):
        services.deviation_close(actor=qa_approver, deviation=deviation, password=PASSWORD,
                                 username=qa_approver.username, reason="Close")

    services.deviation_return(actor=qa_approver, deviation=deviation, reason="Record a new CAPA decision")
    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.INVESTIGATION
    assert _events(deviation, Event.DEVIATION_RETURNED).get().reason == "Record a new CAPA decision"


def test_a_returned_investigation_needs_a_new_author_signature(operator, qa_reviewer, supervisor, qa_approver):
    deviation = quality.pending_approval(operator, qa_reviewer, supervisor)
    services.deviation_return(actor=qa_approver, deviation=deviation, reason="Add the 5th why")
    services.deviation_investigate(actor=supervisor, deviation=deviation, root_cause_category="people",
                                   root_cause="Interrupted round", whys=["a", "b", "c", "d", "e"],
                                   product_impact="None", reason="5 whys completed")

    deviation.refresh_from_db()
    assert [s.valid for s in signatures_for(deviation)] == [False]  # signed content changed
    quality.submit(deviation, supervisor)
    assert [s.valid for s in signatures_for(deviation)] == [False, True]


# --- cancellation and extension -------------------------------------------------------------

@pytest.mark.parametrize("stage", ["open", "triage", "investigation", "pending_approval"])
def test_qa_cancels_from_any_state_but_closed_with_a_reason(operator, qa_reviewer, supervisor, stage):
    deviation = quality.deviation(operator)
    if stage != "open":
        quality.triage(deviation, qa_reviewer, owner=supervisor)
    if stage in ("investigation", "pending_approval"):
        quality.investigate(deviation, supervisor)
    if stage == "pending_approval":
        quality.decide_no_capa(deviation, supervisor)
        quality.submit(deviation, supervisor)

    with pytest.raises(ValidationError, match="why"):
        services.deviation_cancel(actor=qa_reviewer, deviation=deviation, reason=" ")
    services.deviation_cancel(actor=qa_reviewer, deviation=deviation, reason="Duplicate of DEV-2026-0001")

    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.CANCELLED
    assert deviation.cancelled_reason == "Duplicate of DEV-2026-0001"
    assert _events(deviation, Event.DEVIATION_CANCELLED).get().reason == "Duplicate of DEV-2026-0001"


def test_closed_deviation_cannot_be_cancelled_and_operator_cannot_cancel(operator, qa_reviewer, supervisor,
                                                                           qa_approver):
    with pytest.raises(PermissionDenied):
        services.deviation_cancel(actor=operator, deviation=quality.deviation(operator), reason="Mine")
    deviation = quality.pending_approval(operator, qa_reviewer, supervisor)
    services.deviation_close(actor=qa_approver, deviation=deviation, password=PASSWORD,
                             username=qa_approver.username, reason="OK")

    with pytest.raises(TransitionRefused, match="closed"):
        services.deviation_cancel(actor=qa_approver, deviation=deviation, reason="Changed my mind")


def test_due_date_extension_is_signed_and_justified(operator, qa_reviewer, supervisor):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    deviation.refresh_from_db()
    original = deviation.due_date

    extension = services.deviation_extend(actor=qa_reviewer, deviation=deviation, new_due_date=original + timedelta(
        days=14), password=PASSWORD, username=qa_reviewer.username, reason="Supplier analysis pending")

    deviation.refresh_from_db()
    assert deviation.due_date == original + timedelta(days=14)
    assert (extension.previous_due_date, extension.justification) == (original, "Supplier analysis pending")
    assert [(s.meaning, s.valid) for s in signatures_for(extension)] == [("granted", True)]
    extended = _events(deviation, Event.DEVIATION_EXTENDED).get()
    assert extended.data["signature"] and extended.reason == "Supplier analysis pending"
    # re-triage keeps the extension
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    deviation.refresh_from_db()
    assert deviation.due_date == original + timedelta(days=14)


def test_extension_refusals_leave_the_due_date_alone(operator, qa_reviewer, supervisor):
    deviation = quality.deviation(operator)
    with pytest.raises(TransitionRefused):
        services.deviation_extend(actor=qa_reviewer, deviation=deviation, new_due_date=in_days(60),
                                  password=PASSWORD, username=qa_reviewer.username, reason="r")
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    deviation.refresh_from_db()
    due = deviation.due_date

    with pytest.raises(ValidationError, match="must be after"):
        services.deviation_extend(actor=qa_reviewer, deviation=deviation, new_due_date=due, password=PASSWORD,
                                  username=qa_reviewer.username, reason="r")
    with pytest.raises(PermissionDenied):
        services.deviation_extend(actor=supervisor, deviation=deviation, new_due_date=due + timedelta(days=5),
                                  password=PASSWORD, username=supervisor.username, reason="r")
    with pytest.raises(SignatureRefused):
        services.deviation_extend(actor=qa_reviewer, deviation=deviation, new_due_date=due + timedelta(days=5),
                                  password="not-the-password", username=qa_reviewer.username, reason="r")

    deviation.refresh_from_db()
    assert deviation.due_date == due and not deviation.extensions.exists()


# --- numbering under concurrency (committed data) -------------------------------------------

def test_eight_concurrent_reporters_get_consecutive_numbers_and_a_rollback_leaves_no_gap(committed):
    marker = uuid.uuid4().hex[:10]
    per_thread = 4
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def reporter(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                quality.deviation(SystemActor(f"system:thread-{n}"), title=f"{marker} {n}-{i}", subjects=[])
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=reporter, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert not errors
    numbers = sorted(_number(n) for n in Deviation.objects.filter(title__startswith=marker)
                     .values_list("number", flat=True))
    assert numbers == list(range(numbers[0], numbers[0] + 8 * per_thread)), "no gap, no duplicate"

    with pytest.raises(RuntimeError), transaction.atomic():
        quality.deviation(SystemActor("system:test"), title=f"{marker} rolled back", subjects=[])
        raise RuntimeError("the surrounding business transaction fails")
    after = quality.deviation(SystemActor("system:test"), title=f"{marker} after", subjects=[])
    assert _number(after.number) == numbers[-1] + 1
    assert not Deviation.objects.filter(title=f"{marker} rolled back").exists()


def test_whoever_wrote_part_of_the_investigation_cannot_approve_it_even_if_another_saved_last(
        operator, qa_reviewer, supervisor, qa_approver, make_user):
    """The QA pass found: the QA approver wrote the root cause and the batch impact, the
    investigator then added a 'why' and submitted, and the approver closed it. The rule looked at
    the last person to save only."""
    from qms.roles import Role

    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    quality.investigate(deviation, qa_approver)  # the approver's own conclusion and batch impact
    quality.investigate(deviation, supervisor)  # … saved again by the investigator, who submits
    quality.decide_no_capa(deviation, supervisor)
    quality.submit(deviation, supervisor)

    with pytest.raises(SegregationOfDuties):
        services.deviation_close(actor=qa_approver, deviation=deviation, password=PASSWORD,
                                 username=qa_approver.username, reason="Close")
    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.PENDING_APPROVAL and deviation.investigated_by == supervisor

    independent = make_user(Role.QA_APPROVER)
    services.deviation_close(actor=independent, deviation=deviation, password=PASSWORD,
                             username=independent.username, reason="Close")


def test_whoever_recorded_the_capa_decision_cannot_approve_the_investigation(operator, qa_reviewer, supervisor,
                                                                             qa_approver):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    quality.investigate(deviation, supervisor)
    quality.decide_no_capa(deviation, qa_approver)  # the approver's decision, part of the investigation
    quality.submit(deviation, supervisor)

    with pytest.raises(SegregationOfDuties):
        services.deviation_close(actor=qa_approver, deviation=deviation, password=PASSWORD,
                                 username=qa_approver.username, reason="Close")


def test_one_extension_adds_at_most_one_investigation_period_and_is_signed_granted(operator, qa_reviewer,
                                                                                    supervisor):
    """A QA reviewer may extend, not approve: the signature says "granted". And a due date cannot be
    pushed years ahead at once (the review saw a major deviation moved to 2031)."""
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    deviation.refresh_from_db()
    due = deviation.due_date

    with pytest.raises(ValidationError, match="at most 30 days"):
        services.deviation_extend(actor=qa_reviewer, deviation=deviation, new_due_date=due + timedelta(days=31),
                                  password=PASSWORD, username=qa_reviewer.username, reason="Vendor report late")
    deviation.refresh_from_db()
    assert deviation.due_date == due and not deviation.extensions.exists()

    extension = services.deviation_extend(actor=qa_reviewer, deviation=deviation,
                                          new_due_date=due + timedelta(days=30), password=PASSWORD,
                                          username=qa_reviewer.username, reason="Vendor report late")
    assert [s.meaning for s in signatures_for(extension)] == ["granted"]


@pytest.mark.parametrize("source", ["oos_entry", "instrument_alarm"])
def test_a_deviation_raised_from_a_measured_result_is_investigated_not_cancelled(qa_reviewer, qa_approver, source):
    """A black-box review cancelled an automatic OOS deviation with one reviewer's free text, and the
    batch could then be released with the failed result never investigated."""
    deviation = quality.deviation(SystemActor("system:tests"), source=source)

    for person in (qa_reviewer, qa_approver):
        with pytest.raises(ValidationError, match="not cancelled but investigated"):
            services.deviation_cancel(actor=person, deviation=deviation, reason="Raised in error")

    deviation.refresh_from_db()
    assert deviation.status != DeviationStatus.CANCELLED


def test_the_page_of_a_deviation_raised_from_a_measured_result_offers_no_cancel(client, qa_reviewer):
    """The service refuses to cancel it, so the page does not offer a form that can only fail."""
    deviation = quality.deviation(SystemActor("system:tests"), source="oos_entry")
    manual = quality.deviation(qa_reviewer)
    client.force_login(qa_reviewer)

    page = client.get(f"/qms/deviations/{deviation.number}/").content.decode()

    assert deviation.number in page and "Cancel deviation" not in page
    assert "Cancel deviation" in client.get(f"/qms/deviations/{manual.number}/").content.decode()
