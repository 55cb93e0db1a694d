"""Nobody signs or saves a CAPA over content they never saw (21 CFR 11.50, 11.70; ALCOA+): every step
of a CAPA after its opening takes `seen`, the version its page was rendered from (the CAPA, its
actions, effectiveness checks and deviation links), and is refused, with nothing stored, when any
of them changed since; the page shows the refusal beside the form, with what was typed."""

import pytest
from django.core.exceptions import ValidationError

from qms.models import AuditEvent, Capa, CapaAction, CapaStatus, Signature
from qms.services import capa as services
from qms.staleness import record_version
from tests.conftest import PASSWORD, login
from tests.qms import quality
from tests.qms.quality import in_days

pytestmark = pytest.mark.django_db

STALE = "This record changed since you opened it"


def _action(capa, qa, owner, description="Fit door-open alarms"):
    return services.capa_action_add(actor=qa, capa=capa, kind="corrective", description=description, owner=owner,
                                    due_date=in_days(7), reason="Plan")


def _complete(action, owner, seen=None):
    return services.capa_action_complete(actor=owner, action=action, evidence="Work order WO-88 closed",
                                         password=PASSWORD, username=owner.username, reason="Done", seen=seen)


def _plan(capa, qa, seen=None):
    return services.capa_effectiveness_plan(actor=qa, capa=capa, criteria="No open-door event in 3 months",
                                            due_date=in_days(0), reason="Plan", seen=seen)


def _record(capa, qa, result="effective", seen=None):
    return services.capa_effectiveness_record(actor=qa, capa=capa, result=result, evidence="0 events in Q2",
                                              password=PASSWORD, username=qa.username, reason="Checked", seen=seen)


def _close(capa, approver, seen):
    return services.capa_close(actor=approver, capa=capa, password=PASSWORD, username=approver.username,
                               reason="Actions and effectiveness verified", seen=seen)


def _awaiting_check(qa, owner):
    """A CAPA whose one action is done and whose check is planned: it awaits its effectiveness result."""
    capa = quality.capa(qa)
    _complete(_action(capa, qa, owner), owner)
    _plan(capa, qa)
    capa.refresh_from_db()
    assert capa.status == CapaStatus.EFFECTIVENESS_CHECK
    return capa


def _stored(capa):
    """What a refusal must leave untouched: the CAPA's row, its actions, audit events and signatures."""
    return (Capa.objects.filter(pk=capa.pk).values().get(), list(CapaAction.objects.filter(capa=capa).values()),
            AuditEvent.objects.count(), Signature.objects.count())


def _refused(call, capa, who):
    before = _stored(capa)
    with pytest.raises(ValidationError) as refused:
        call()
    message = refused.value.messages[0]
    assert message.startswith(STALE) and who.full_name in message and "review the changes" in message
    assert _stored(capa) == before
    return message


# --- the services ------------------------------------------------------------------------------

def test_closure_refused_when_the_effectiveness_result_was_signed_after_the_page_was_read(
        qa_reviewer, supervisor, qa_approver):
    capa = _awaiting_check(qa_reviewer, supervisor)
    _record(capa, qa_reviewer, result="not_effective")
    _complete(_action(capa, qa_reviewer, supervisor, "Door alarms on every incubator"), supervisor)
    seen = record_version(capa)  # the approver reads the page: the last result says "not effective"
    _record(capa, qa_reviewer, result="effective")  # another tab

    message = _refused(lambda: _close(capa, qa_approver, seen), capa, qa_reviewer)

    assert message.endswith("then sign again.")
    assert Capa.objects.get(pk=capa.pk).status == CapaStatus.EFFECTIVENESS_CHECK
    assert not Signature.objects.filter(target_type="qms.capa", target_id=str(capa.pk)).exists()
    closed = _close(capa, qa_approver, record_version(capa))  # the page read again, the result seen
    assert closed.status == CapaStatus.CLOSED


def test_an_action_completed_in_another_tab_makes_the_page_stale_for_the_other_actions(
        qa_reviewer, supervisor, operator):
    capa = quality.capa(qa_reviewer)
    first, second = _action(capa, qa_reviewer, supervisor), _action(capa, qa_reviewer, operator, "Retrain")
    seen = record_version(capa)
    _complete(first, supervisor, seen)  # on the version read: signed

    _refused(lambda: _complete(second, operator, seen), capa, supervisor)
    _refused(lambda: services.capa_action_cancel(actor=qa_reviewer, action=second, reason="Not needed", seen=seen),
             capa, supervisor)

    assert _complete(second, operator, record_version(capa)).status == "done"
    capa.refresh_from_db()
    assert capa.status == CapaStatus.EFFECTIVENESS_CHECK


def test_adding_planning_linking_and_cancelling_refused_when_stale_and_accepted_when_current(
        operator, qa_reviewer, supervisor, qa_approver):
    capa = quality.capa(qa_reviewer)
    seen = record_version(capa)
    _action(capa, qa_reviewer, supervisor)  # another tab: a new child row moves the version
    deviation = quality.deviation(operator)

    message = _refused(lambda: services.capa_action_add(
        actor=qa_reviewer, capa=capa, kind="preventive", description="Retrain", owner=supervisor,
        due_date=in_days(7), reason="Plan", seen=seen), capa, qa_reviewer)
    assert message.endswith("then save again.")
    _refused(lambda: _plan(capa, qa_reviewer, seen), capa, qa_reviewer)
    _refused(lambda: services.capa_deviation_link(actor=qa_reviewer, capa=capa, deviation=deviation,
                                                  reason="Same cause", seen=seen), capa, qa_reviewer)
    _refused(lambda: services.capa_cancel(actor=qa_approver, capa=capa, reason="Opened twice", seen=seen),
             capa, qa_reviewer)

    services.capa_deviation_link(actor=qa_reviewer, capa=capa, deviation=deviation, reason="Same cause",
                                 seen=record_version(capa))
    assert capa.deviation_links.filter(deviation=deviation).exists()


def test_an_effectiveness_result_refused_when_the_criteria_changed_since(qa_reviewer, supervisor, qa_approver):
    capa = _awaiting_check(qa_reviewer, supervisor)
    seen = record_version(capa)
    services.capa_effectiveness_plan(actor=qa_approver, capa=capa, criteria="No open-door event in 6 months",
                                     due_date=in_days(0), reason="Longer watch", seen=seen)

    _refused(lambda: _record(capa, qa_reviewer, seen=seen), capa, qa_approver)
    assert not capa.effectiveness_checks.exists()


def test_no_page_read_means_nothing_to_compare(qa_reviewer, supervisor, qa_approver):
    capa = _awaiting_check(qa_reviewer, supervisor)
    _record(capa, qa_reviewer)

    assert _close(capa, qa_approver, None).status == CapaStatus.CLOSED


# --- the page ----------------------------------------------------------------------------------

def test_every_capa_form_carries_the_version_of_the_page(client, qa_reviewer, supervisor):
    capa = quality.capa(qa_reviewer)
    action = _action(capa, qa_reviewer, supervisor)
    login(client, qa_reviewer)

    page = client.get(f"/qms/capa/{capa.number}/").content.decode()

    seen = record_version(capa)
    for key in ("action_add", f"action_cancel_{action.pk}", "effectiveness_plan", "deviation_link"):
        assert f'name="{key}-seen" value="{seen}"' in page, key


def test_a_stale_closure_is_shown_again_with_the_refusal_the_new_result_and_the_typed_reason(
        client, qa_reviewer, supervisor, qa_approver):
    capa = _awaiting_check(qa_reviewer, supervisor)
    _record(capa, qa_reviewer, result="not_effective")
    _complete(_action(capa, qa_reviewer, supervisor, "Door alarms on every incubator"), supervisor)
    login(client, qa_approver)
    client.get(f"/qms/capa/{capa.number}/")
    seen = record_version(capa)
    services.capa_effectiveness_record(actor=qa_reviewer, capa=capa, result="justified",
                                       evidence="No incubator opened since: justified", password=PASSWORD,
                                       username=qa_reviewer.username, reason="Checked")

    response = client.post(f"/qms/capa/{capa.number}/close/", {
        "close-seen": seen, "close-reason": "Alarms verified on site", "close-username": qa_approver.username,
        "close-password": PASSWORD})
    shown = response.content.decode()

    assert response.status_code == 422 and STALE in shown and "No incubator opened since" in shown
    assert "Alarms verified on site" in shown and PASSWORD not in shown
    assert f'name="close-seen" value="{record_version(capa)}"' in shown  # the page now read
    assert Capa.objects.get(pk=capa.pk).status == CapaStatus.EFFECTIVENESS_CHECK
    assert not Signature.objects.filter(target_type="qms.capa", target_id=str(capa.pk)).exists()


def test_a_stale_action_cancellation_keeps_the_typed_reason_beside_its_action(client, qa_reviewer, supervisor,
                                                                              operator):
    capa = quality.capa(qa_reviewer)
    first, second = _action(capa, qa_reviewer, supervisor), _action(capa, qa_reviewer, operator, "Retrain")
    login(client, qa_reviewer)
    seen = record_version(capa)
    _complete(first, supervisor)  # another person, meanwhile

    key = f"action_cancel_{second.pk}"
    response = client.post(f"/qms/capa/{capa.number}/action_cancel/{second.pk}/", {
        f"{key}-seen": seen, f"{key}-reason": "Covered by the door alarms"})
    shown = response.content.decode()

    assert response.status_code == 422 and STALE in shown and "Sofia Supervisor" in shown
    assert "Covered by the door alarms" in shown
    second.refresh_from_db()
    assert second.status == "open"
