"""A CAPA form shows every problem of one submission at once, each on its field, and saves nothing
(the form's own checks and the service's rules together: nobody fixes one error to meet the next);
and the deviation's CAPA picker offers only CAPAs that can still take a deviation, the service
refusing a closed or cancelled one however the request was made (ICH Q10 3.2.2)."""

import re

import pytest
from django.core.exceptions import ValidationError

from qms.models import Capa, CapaAction, CapaDecision, CapaStatus, Deviation
from qms.services import capa as services
from qms.services import deviations as dev_services
from qms.staleness import record_version
from tests.conftest import PASSWORD, login
from tests.qms import quality
from tests.qms.quality import in_days

pytestmark = pytest.mark.django_db


def _field_errors(html: str) -> dict[str, str]:
    """The error shown under each field of the page (qms/_fields.html), by the field's input name."""
    found = {}
    for block in html.split('<div class="field')[1:]:
        name = re.search(r'name="([^"]+)"', block)
        error = re.search(r'<div class="error">([^<]+)', block)
        if block.startswith(' has-error"') and name and error:
            found[name.group(1)] = error.group(1)
    return found


# --- all errors at once ------------------------------------------------------------------------

def test_opening_a_capa_with_three_problems_shows_the_three_and_opens_nothing(client, qa_reviewer):
    login(client, qa_reviewer)
    before = Capa.objects.count()

    response = client.post("/qms/capa/new/", {
        "title": "", "problem_statement": "Incubator doors left ajar", "source": "deviation", "deviations": "",
        "owner": qa_reviewer.pk, "effectiveness_due": str(in_days(-3))})
    shown = response.content.decode()

    errors = _field_errors(shown)
    assert response.status_code == 422
    assert set(errors) == {"title", "deviations", "effectiveness_due"}
    assert "Name the deviation(s)" in errors["deviations"] and "past" in errors["effectiveness_due"]
    assert "Incubator doors left ajar" in shown  # what was typed stays
    assert Capa.objects.count() == before


def test_capa_open_refuses_every_problem_at_once(qa_reviewer, auditor):
    with pytest.raises(ValidationError) as refused:
        services.capa_open(actor=qa_reviewer, title=" ", problem_statement="Doors left ajar", source="audit",
                           owner=auditor, effectiveness_due=in_days(-1))

    assert set(refused.value.message_dict) == {"title", "owner", "effectiveness_due"}


def test_an_action_with_three_problems_shows_the_three_on_the_capa_page(client, qa_reviewer, supervisor):
    capa = quality.capa(qa_reviewer)
    login(client, qa_reviewer)

    response = client.post(f"/qms/capa/{capa.number}/action_add/", {
        "action_add-seen": record_version(capa), "action_add-kind": "corrective", "action_add-description": "",
        "action_add-owner": supervisor.pk, "action_add-due_date": str(in_days(-2)),
        "action_add-reason": ""})

    errors = _field_errors(response.content.decode())
    assert response.status_code == 422
    assert set(errors) == {"action_add-description", "action_add-due_date", "action_add-reason"}
    assert "past" in errors["action_add-due_date"]
    assert not CapaAction.objects.filter(capa=capa).exists()


def test_capa_action_add_refuses_every_problem_at_once(qa_reviewer, auditor):
    capa = quality.capa(qa_reviewer)

    with pytest.raises(ValidationError) as refused:
        services.capa_action_add(actor=qa_reviewer, capa=capa, kind="cosmetic", description=" ", owner=auditor,
                                 due_date=in_days(-1), reason="")

    assert set(refused.value.message_dict) == {"kind", "description", "owner", "due_date", "reason"}
    assert not CapaAction.objects.filter(capa=capa).exists()


def test_an_effectiveness_result_with_three_problems_shows_the_three(client, qa_reviewer, supervisor):
    capa = quality.capa(qa_reviewer)
    action = services.capa_action_add(actor=qa_reviewer, capa=capa, kind="corrective", description="Door alarms",
                                      owner=supervisor, due_date=in_days(7), reason="Plan")
    services.capa_action_complete(actor=supervisor, action=action, evidence="WO-88", password=PASSWORD,
                                  username=supervisor.username, reason="Done")
    services.capa_effectiveness_plan(actor=qa_reviewer, capa=capa, criteria="No open door in 3 months",
                                     due_date=in_days(90), reason="Plan")
    login(client, qa_reviewer)

    response = client.post(f"/qms/capa/{capa.number}/effectiveness_record/", {
        "effectiveness_record-seen": record_version(capa), "effectiveness_record-result": "effective",
        "effectiveness_record-evidence": "", "effectiveness_record-reason": "Checked early",
        "effectiveness_record-username": qa_reviewer.username, "effectiveness_record-password": ""})
    shown = response.content.decode()

    errors = _field_errors(shown)
    assert response.status_code == 422
    assert set(errors) == {"effectiveness_record-result", "effectiveness_record-evidence",
                           "effectiveness_record-password"}
    assert "cannot be found effective before" in errors["effectiveness_record-result"]
    assert "Checked early" in shown
    assert not capa.effectiveness_checks.exists()


def test_linking_a_cancelled_deviation_without_a_reason_shows_both(client, operator, qa_reviewer):
    capa = quality.capa(qa_reviewer)
    deviation = quality.deviation(operator)
    dev_services.deviation_cancel(actor=qa_reviewer, deviation=deviation, reason="Duplicate")
    login(client, qa_reviewer)

    response = client.post(f"/qms/capa/{capa.number}/deviation_link/", {
        "deviation_link-seen": record_version(capa), "deviation_link-deviation": deviation.number,
        "deviation_link-reason": ""})

    errors = _field_errors(response.content.decode())
    assert response.status_code == 422
    assert set(errors) == {"deviation_link-deviation", "deviation_link-reason"}
    assert "cancelled" in errors["deviation_link-deviation"]
    assert not capa.deviation_links.exists()


# --- the CAPA picker ---------------------------------------------------------------------------

def _closed_capa(qa, owner, approver, **extra):
    capa = quality.capa(qa, **extra)
    action = services.capa_action_add(actor=qa, capa=capa, kind="corrective", description="Door alarms",
                                      owner=owner, due_date=in_days(7), reason="Plan")
    services.capa_action_complete(actor=owner, action=action, evidence="WO-88", password=PASSWORD,
                                  username=owner.username, reason="Done")
    services.capa_effectiveness_plan(actor=qa, capa=capa, criteria="No open door", due_date=in_days(0), reason="P")
    services.capa_effectiveness_record(actor=qa, capa=capa, result="effective", evidence="0 events",
                                       password=PASSWORD, username=qa.username, reason="Checked")
    return services.capa_close(actor=approver, capa=capa, password=PASSWORD, username=approver.username,
                               reason="Verified")


@pytest.fixture
def investigated(operator, qa_reviewer, supervisor):
    deviation = quality.deviation(operator, title="Incubator door ajar again")
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    quality.investigate(deviation, supervisor)
    return deviation


def _picker(client, deviation) -> str:
    page = client.get(f"/qms/deviations/{deviation.number}/").content.decode()
    return re.search(r'<select name="capa_decide-capa".*?</select>', page, flags=re.S).group(0)


def test_the_picker_lists_only_capas_that_can_still_take_the_deviation(client, investigated, qa_reviewer,
                                                                       supervisor, qa_approver):
    open_capa = quality.capa(qa_reviewer, title="Latch check")
    checking = quality.capa(qa_reviewer, title="Door alarms")
    action = services.capa_action_add(actor=qa_reviewer, capa=checking, kind="corrective", description="Fit",
                                      owner=supervisor, due_date=in_days(7), reason="Plan")
    services.capa_action_complete(actor=supervisor, action=action, evidence="WO-1", password=PASSWORD,
                                  username=supervisor.username, reason="Done")
    closed = _closed_capa(qa_reviewer, supervisor, qa_approver, title="Old door problem")
    cancelled = services.capa_cancel(actor=qa_approver, capa=quality.capa(qa_reviewer, title="Opened twice"),
                                     reason="Duplicate")
    login(client, supervisor)

    picker = _picker(client, investigated)

    assert f'value="{open_capa.pk}"' in picker and f'value="{checking.pk}"' in picker
    assert f'value="{closed.pk}"' not in picker and f'value="{cancelled.pk}"' not in picker
    assert f"{checking.number} — Door alarms, effectiveness check" in picker


def test_a_crafted_decision_naming_a_closed_capa_is_refused_and_links_nothing(client, investigated, qa_reviewer,
                                                                               supervisor, qa_approver):
    closed = _closed_capa(qa_reviewer, supervisor, qa_approver)
    login(client, supervisor)

    response = client.post(f"/qms/deviations/{investigated.number}/capa_decide/", {
        "capa_decide-seen": record_version(investigated), "capa_decide-decision": "required",
        "capa_decide-capa": closed.pk, "capa_decide-reason": "Same door"})

    assert response.status_code == 422 and "capa_decide-capa" in _field_errors(response.content.decode())
    assert not closed.deviation_links.filter(deviation=investigated).exists()
    assert Deviation.objects.get(pk=investigated.pk).capa is None


@pytest.mark.parametrize("state", ["closed", "cancelled"])
def test_the_services_refuse_a_closed_or_cancelled_capa_for_a_new_deviation(investigated, qa_reviewer, supervisor,
                                                                            qa_approver, state):
    if state == "closed":
        capa = _closed_capa(qa_reviewer, supervisor, qa_approver)
    else:
        capa = services.capa_cancel(actor=qa_approver, capa=quality.capa(qa_reviewer), reason="Opened twice")

    with pytest.raises(ValidationError) as decided:
        dev_services.deviation_capa_decide(actor=supervisor, deviation=investigated, decision="required", capa=capa,
                                           reason="Same door")
    with pytest.raises(ValidationError) as linked:
        services.capa_deviation_link(actor=qa_reviewer, capa=capa, deviation=investigated, reason="Same door")

    assert f"{capa.number} is {state}" in decided.value.message_dict["capa"][0]
    assert f"{capa.number} is {state}" in linked.value.messages[0]
    if state == "closed":
        assert "cannot take another deviation" in decided.value.message_dict["capa"][0]
    assert not capa.deviation_links.filter(deviation=investigated).exists()
    assert Deviation.objects.get(pk=investigated.pk).capa_decision == ""


def test_a_closed_capa_that_already_addresses_the_deviation_stays_its_decision(client, investigated, qa_reviewer,
                                                                                supervisor, qa_approver):
    """Not a new deviation for it: its closure was signed with this deviation among those it addresses."""
    capa = _closed_capa(qa_reviewer, supervisor, qa_approver, deviations=[investigated], source="deviation")
    login(client, supervisor)

    assert f'value="{capa.pk}"' in _picker(client, investigated)
    decided = dev_services.deviation_capa_decide(actor=supervisor, deviation=investigated,
                                                 decision=CapaDecision.REQUIRED, capa=capa, reason="Addressed")
    assert decided.capa == capa and capa.status == CapaStatus.CLOSED


@pytest.mark.parametrize(("decision", "missing"), [("not_required", "capa_decide-rationale"),
                                                   ("required", "capa_decide-capa")])
def test_the_capa_decision_shows_its_own_rule_and_the_missing_reason_at_once(client, investigated, supervisor,
                                                                             decision, missing):
    login(client, supervisor)

    response = client.post(f"/qms/deviations/{investigated.number}/capa_decide/", {
        "capa_decide-seen": record_version(investigated), "capa_decide-decision": decision})

    assert response.status_code == 422
    assert {missing, "capa_decide-reason"} <= set(_field_errors(response.content.decode()))
    assert Deviation.objects.get(pk=investigated.pk).capa_decision == ""
