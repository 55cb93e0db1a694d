"""CAPA: actions owned and signed as done, effectiveness verified against criteria set in advance,
QA closure under signature only when everything is done (ICH Q10 3.2.2)."""

import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from qms.audit import Event
from qms.models import AuditEvent, Capa, CapaStatus, Notification
from qms.services import capa as services
from qms.signatures import SignatureRefused, signatures_for
from qms.states import TransitionRefused
from tests.conftest import PASSWORD
from tests.qms import quality
from tests.qms.quality import in_days

pytestmark = pytest.mark.django_db


def _events(capa, event):
    return AuditEvent.objects.filter(target_type="qms.capa", target_id=str(capa.pk), event_type=event)


def _action(capa, actor, owner, *, kind="corrective", due=7):
    return services.capa_action_add(actor=actor, capa=capa, kind=kind, description="Fit door-open alarms",
                                    owner=owner, due_date=in_days(due), reason="Plan")


def _complete(action, owner, password=PASSWORD):
    return services.capa_action_complete(actor=owner, action=action, evidence="Work order WO-88 closed",
                                         password=password, username=owner.username, reason="Done")


def _effective(capa, qa, result="effective"):
    services.capa_effectiveness_plan(actor=qa, capa=capa, criteria="No open-door event in 3 months",
                                     due_date=in_days(0), reason="Plan")  # the check is due: it can be done
    return services.capa_effectiveness_record(actor=qa, capa=capa, result=result, evidence="0 events in Q2",
                                              password=PASSWORD, username=qa.username, reason="Checked")


def test_capa_from_a_deviation_is_numbered_linked_and_its_owner_told(operator, qa_reviewer, supervisor):
    deviation = quality.deviation(operator)

    capa = quality.capa(qa_reviewer, deviations=[deviation], source="deviation", owner=supervisor)

    assert re.fullmatch(rf"CAPA-{timezone.localdate().year}-\d{{4}}", capa.number) and str(capa) == capa.number
    assert capa.status == CapaStatus.OPEN and capa.owner == supervisor and capa.opened_by == qa_reviewer
    assert list(capa.deviation_links.values_list("deviation__number", flat=True)) == [deviation.number]
    opened = _events(capa, Event.CAPA_OPENED).get().data
    assert {k: v for k, v in opened.items() if k != "changes"} == {"source": "deviation",
                                                                    "deviations": [deviation.number]}
    assert {"field": "number", "old": None, "new": capa.number} in opened["changes"]  # starting values
    assert _events(capa, Event.CAPA_DEVIATION_LINKED).get().data == {"deviation": deviation.number}
    assert Notification.objects.filter(user=supervisor, text__contains=capa.number).exists()


def test_opening_refusals(operator, supervisor, qa_reviewer):
    before = Capa.objects.count()
    with pytest.raises(PermissionDenied):
        quality.capa(supervisor)
    with pytest.raises(ValidationError) as no_deviation:
        quality.capa(qa_reviewer, source="deviation")
    cancelled = quality.deviation(operator)
    from qms.services.deviations import deviation_cancel

    deviation_cancel(actor=qa_reviewer, deviation=cancelled, reason="Duplicate")
    with pytest.raises(ValidationError, match="cancelled"):
        quality.capa(qa_reviewer, deviations=[cancelled], source="deviation")

    assert "deviations" in no_deviation.value.message_dict
    assert Capa.objects.count() == before


def test_actions_have_an_able_owner_and_a_future_due_date(qa_reviewer, supervisor, auditor):
    capa = quality.capa(qa_reviewer)

    with pytest.raises(ValidationError, match="role does not allow"):
        _action(capa, qa_reviewer, auditor)
    with pytest.raises(ValidationError, match="past"):
        _action(capa, qa_reviewer, supervisor, due=-1)
    with pytest.raises(ValidationError) as no_kind:
        services.capa_action_add(actor=qa_reviewer, capa=capa, kind="cosmetic", description="x", owner=supervisor,
                                 due_date=in_days(3), reason="r")
    with pytest.raises(PermissionDenied):
        _action(capa, supervisor, supervisor)
    action = _action(capa, qa_reviewer, supervisor, kind="preventive")

    assert "kind" in no_kind.value.message_dict
    assert (str(action), action.sequence, action.kind) == (f"{capa.number} action 1", 1, "preventive")
    assert _events(capa, Event.CAPA_ACTION_ADDED).get().data["owner"] == supervisor.username
    assert Notification.objects.filter(user=supervisor, text__startswith=f"{capa.number} action 1").exists()


def test_only_the_owner_completes_an_action_under_signature(qa_reviewer, supervisor, operator):
    capa = quality.capa(qa_reviewer)
    first = _action(capa, qa_reviewer, supervisor)
    second = _action(capa, qa_reviewer, operator)

    with pytest.raises(PermissionDenied, match="owner"):
        _complete(first, operator)
    with pytest.raises(SignatureRefused):
        _complete(first, supervisor, password="not-the-password")
    first.refresh_from_db()
    assert first.status == "open" and first.completion_evidence == ""

    _complete(first, supervisor)
    first.refresh_from_db()
    assert (first.status, first.completed_by) == ("done", supervisor)
    assert [(s.meaning, s.printed_name, s.valid) for s in signatures_for(first)] == [
        ("performed", "Sofia Supervisor", True)]
    assert _events(capa, Event.CAPA_ACTION_COMPLETED).get().data["action"] == 1
    capa.refresh_from_db()
    assert capa.status == CapaStatus.OPEN  # the second action is still open

    _complete(second, operator)
    capa.refresh_from_db()
    assert capa.status == CapaStatus.EFFECTIVENESS_CHECK
    with pytest.raises(TransitionRefused):
        _complete(second, operator)


def test_effectiveness_needs_planned_criteria_and_a_failed_check_reopens_the_capa(qa_reviewer, supervisor):
    capa = quality.capa(qa_reviewer)
    _complete(_action(capa, qa_reviewer, supervisor), supervisor)

    with pytest.raises(ValidationError, match="Plan the effectiveness criteria"):
        services.capa_effectiveness_record(actor=qa_reviewer, capa=capa, result="effective", evidence="ok",
                                           password=PASSWORD, username=qa_reviewer.username, reason="r")
    check = _effective(capa, qa_reviewer, result="not_effective")

    capa.refresh_from_db()
    assert capa.status == CapaStatus.OPEN
    assert [(s.meaning, s.valid) for s in signatures_for(check)] == [("reviewed", True)]
    assert _events(capa, Event.CAPA_EFFECTIVENESS_RECORDED).get().data["result"] == "not_effective"
    assert "the last effectiveness check found the CAPA not effective" in services.capa_closure_gaps(capa)


def test_criteria_cannot_be_rewritten_once_a_check_found_the_capa_effective(qa_reviewer, supervisor):
    capa = quality.capa(qa_reviewer)
    _complete(_action(capa, qa_reviewer, supervisor), supervisor)
    _effective(capa, qa_reviewer)

    with pytest.raises(ValidationError, match="can no longer change"):
        services.capa_effectiveness_plan(actor=qa_reviewer, capa=capa, criteria="Anything goes",
                                         due_date=in_days(30), reason="Rewrite")

    capa.refresh_from_db()
    assert capa.effectiveness_criteria == "No open-door event in 3 months"


def test_closure_refused_until_actions_done_and_effectiveness_confirmed(qa_reviewer, supervisor, qa_approver):
    capa = quality.capa(qa_reviewer)
    action = _action(capa, qa_reviewer, supervisor)

    with pytest.raises(TransitionRefused):
        services.capa_close(actor=qa_approver, capa=capa, password=PASSWORD, username=qa_approver.username,
                            reason="Close")
    _complete(action, supervisor)
    with pytest.raises(ValidationError, match="effectiveness has not been checked"):
        services.capa_close(actor=qa_approver, capa=capa, password=PASSWORD, username=qa_approver.username,
                            reason="Close")
    _effective(capa, qa_reviewer)
    with pytest.raises(PermissionDenied):
        services.capa_close(actor=qa_reviewer, capa=capa, password=PASSWORD, username=qa_reviewer.username,
                            reason="Close")

    services.capa_close(actor=qa_approver, capa=capa, password=PASSWORD, username=qa_approver.username,
                        reason="Effective")

    capa.refresh_from_db()
    assert capa.status == CapaStatus.CLOSED and capa.closed_by == qa_approver
    (signature,) = signatures_for(capa)
    assert (signature.meaning, signature.printed_name, signature.valid) == ("approved", "Claire Approver", True)
    assert _events(capa, Event.CAPA_CLOSED).get().data["signature"] == signature.signature_id


def test_justified_effectiveness_allows_closure_and_cancelled_actions_do_not_block(qa_reviewer, supervisor,
                                                                                    qa_approver):
    capa = quality.capa(qa_reviewer)
    done = _action(capa, qa_reviewer, supervisor)
    dropped = _action(capa, qa_reviewer, supervisor)
    _complete(done, supervisor)
    with pytest.raises(ValidationError, match="why"):
        services.capa_action_cancel(actor=qa_reviewer, action=dropped, reason="")
    services.capa_action_cancel(actor=qa_reviewer, action=dropped, reason="Covered by action 1")
    capa.refresh_from_db()
    assert capa.status == CapaStatus.EFFECTIVENESS_CHECK
    _effective(capa, qa_reviewer, result="justified")

    services.capa_close(actor=qa_approver, capa=capa, password=PASSWORD, username=qa_approver.username,
                        reason="Justified")

    capa.refresh_from_db()
    assert capa.status == CapaStatus.CLOSED
    assert _events(capa, Event.CAPA_ACTION_CANCELLED).get().reason == "Covered by action 1"


def test_a_new_action_sends_a_capa_back_from_its_effectiveness_check(qa_reviewer, supervisor):
    capa = quality.capa(qa_reviewer)
    _complete(_action(capa, qa_reviewer, supervisor), supervisor)
    capa.refresh_from_db()
    assert capa.status == CapaStatus.EFFECTIVENESS_CHECK

    _action(capa, qa_reviewer, supervisor, kind="preventive")

    capa.refresh_from_db()
    assert capa.status == CapaStatus.OPEN


def test_linking_and_cancelling(operator, qa_reviewer, qa_approver):
    capa = quality.capa(qa_reviewer)
    deviation = quality.deviation(operator)
    services.capa_deviation_link(actor=qa_reviewer, capa=capa, deviation=deviation, reason="Same cause")
    with pytest.raises(ValidationError, match="already linked"):
        services.capa_deviation_link(actor=qa_reviewer, capa=capa, deviation=deviation, reason="Again")
    with pytest.raises(PermissionDenied):
        services.capa_cancel(actor=qa_reviewer, capa=capa, reason="Not needed")

    services.capa_cancel(actor=qa_approver, capa=capa, reason="Not needed")

    capa.refresh_from_db()
    assert capa.status == CapaStatus.CANCELLED and capa.cancelled_reason == "Not needed"
    with pytest.raises(TransitionRefused, match="cancelled"):
        _action(capa, qa_reviewer, qa_reviewer)


@pytest.mark.parametrize("doer", ["opener", "owner", "action", "effectiveness"])
def test_the_closer_is_independent_of_who_owned_did_or_judged_the_capa(qa_reviewer, supervisor, qa_approver,
                                                                       make_user, doer):
    """ICH Q10 3.2.2 / EU GMP 2.x: closure reviews the work; whoever did any of it cannot close."""
    from qms.roles import Role
    from qms.signatures import SegregationOfDuties

    other_qp = make_user(Role.QA_APPROVER)
    owner = qa_approver if doer == "owner" else supervisor
    capa = quality.capa(qa_approver if doer == "opener" else qa_reviewer, owner=owner)
    performer = qa_approver if doer == "action" else supervisor
    _complete(_action(capa, qa_reviewer, performer), performer)
    _effective(capa, qa_approver if doer == "effectiveness" else qa_reviewer)

    with pytest.raises(SegregationOfDuties, match="someone other than who opened or owns it"):
        services.capa_close(actor=qa_approver, capa=capa, password=PASSWORD, username=qa_approver.username,
                            reason="Close")

    capa.refresh_from_db()
    assert capa.status != CapaStatus.CLOSED and not _events(capa, Event.CAPA_CLOSED).exists()
    services.capa_close(actor=other_qp, capa=capa, password=PASSWORD, username=other_qp.username, reason="Close")


def test_effective_is_not_recorded_before_the_planned_check_date(qa_reviewer, supervisor):
    capa = quality.capa(qa_reviewer)
    _complete(_action(capa, qa_reviewer, supervisor), supervisor)
    services.capa_effectiveness_plan(actor=qa_reviewer, capa=capa, criteria="No open-door event in 3 months",
                                     due_date=in_days(90), reason="Plan")

    with pytest.raises(ValidationError, match=f"planned for {in_days(90):%Y-%m-%d}: it cannot be found effective"):
        services.capa_effectiveness_record(actor=qa_reviewer, capa=capa, result="effective", evidence="0 events",
                                           password=PASSWORD, username=qa_reviewer.username, reason="Checked")
    assert not capa.effectiveness_checks.exists()
    # Found not effective early is the point of an early look: the CAPA re-opens for more actions.
    services.capa_effectiveness_record(actor=qa_reviewer, capa=capa, result="not_effective", evidence="2 events",
                                       password=PASSWORD, username=qa_reviewer.username, reason="Checked")
