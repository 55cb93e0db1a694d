"""Quality-system pages: allowed or refused per role, forms keep what was typed and show refusals,
workflows run through the pages, lists filter, sort and export, the dashboard draws without script."""

import csv
import io
import re
import uuid

import pytest
from django.utils import timezone

from qms.audit import Event
from qms.models import AuditEvent, Capa, ChangeControl, Deviation, DeviationStatus, Notification, TrainingRecord
from qms.roles import MATRIX, Capability, Role
from qms.staleness import record_version
from qms.subjects import Subject, subject_kind, subject_kind_register, subject_kind_unregister
from tests.conftest import PASSWORD, login
from tests.qms import quality
from tests.qms.quality import in_days

pytestmark = pytest.mark.django_db

PAGES: dict[str, Capability | None] = {
    "/qms/deviations/": Capability.DEVIATION_VIEW,
    "/qms/deviations/?format=csv": Capability.DEVIATION_VIEW,
    "/qms/deviations/new/": Capability.DEVIATION_OPEN,
    "/qms/capa/": Capability.CAPA_VIEW,
    "/qms/capa/new/": Capability.CAPA_MANAGE,
    "/qms/change-control/": Capability.CHANGE_CONTROL_VIEW,
    "/qms/change-control/new/": Capability.CHANGE_CONTROL_AUTHOR,
    "/qms/training/": Capability.TRAINING_VIEW,
    "/qms/training/new/": Capability.TRAINING_RECORD,
    "/qms/training/matrix/": Capability.TRAINING_VIEW,
    "/qms/training/expiring/": Capability.TRAINING_VIEW,
    "/qms/dashboard/": Capability.QA_DASHBOARD,
    "/qms/notifications/": None,
}
HUMAN_ROLES = [role for role in Role if role is not Role.INSTRUMENT]


@pytest.fixture
def batch_kind():
    """The manufacturing app registers how a typed batch number becomes a subject; here a stand-in."""
    batches = {"B-2026-0003": "900012"}
    previous = subject_kind("ebr.batch")
    subject_kind_register("ebr.batch", "Batch",
                          lambda ref: Subject("ebr.batch", batches[ref], ref) if ref in batches else None)
    yield
    if previous is None:
        subject_kind_unregister("ebr.batch")
    else:
        subject_kind_register(previous.subject_type, previous.name, previous.resolve, previous.url)


def _html(response) -> str:
    return response.content.decode()


@pytest.mark.parametrize("role", HUMAN_ROLES, ids=str)
def test_pages_are_allowed_or_refused_per_matrix(client, make_user, role, supervisor, qa_reviewer):
    deviation = quality.deviation(supervisor)
    capa = quality.capa(qa_reviewer)
    change = quality.change(supervisor)
    records = {f"/qms/deviations/{deviation.number}/": Capability.DEVIATION_VIEW,
               f"/qms/capa/{capa.number}/": Capability.CAPA_VIEW,
               f"/qms/change-control/{change.number}/": Capability.CHANGE_CONTROL_VIEW}
    login(client, make_user(role))

    for page, capability in {**PAGES, **records}.items():
        allowed = capability is None or role in MATRIX[capability]
        assert client.get(page).status_code == (200 if allowed else 403), f"{role} on {page}"


def test_anonymous_is_sent_to_login(client):
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_navigation_lists_the_quality_pages_per_role(client, operator, qa_reviewer):
    login(client, operator)
    operator_page = _html(client.get("/"))
    client.logout()
    login(client, qa_reviewer)
    qa_page = _html(client.get("/"))

    assert 'href="/qms/deviations/"' in operator_page and 'href="/qms/dashboard/"' not in operator_page
    assert 'href="/qms/dashboard/"' in qa_page and 'href="/qms/notifications/"' in qa_page


# --- reporting through the form -------------------------------------------------------------

def test_report_form_keeps_what_was_typed_and_shows_errors(client, operator, batch_kind):
    login(client, operator)
    before = Deviation.objects.count()

    response = client.post("/qms/deviations/new/", {
        "title": "Label misprint on bag", "description": "", "occurred_at": "2026-01-05T09:30",
        "subjects_ebr__batch": "B-2026-0003, B-9999-0000"})

    page = _html(response)
    assert response.status_code == 422
    assert 'value="Label misprint on bag"' in page and "This field is required" in page
    assert Deviation.objects.count() == before

    response = client.post("/qms/deviations/new/", {
        "title": "Label misprint on bag", "description": "Lot number unreadable",
        "occurred_at": "2026-01-05T09:30", "subjects_ebr__batch": "B-2026-0003, B-9999-0000"})
    assert response.status_code == 422 and "No batch &#x27;B-9999-0000&#x27; was found" in _html(response)
    assert Deviation.objects.count() == before


def test_reporting_through_the_form_links_the_batch(client, operator, batch_kind):
    login(client, operator)
    occurred = timezone.localtime() - timezone.timedelta(hours=3)

    response = client.post("/qms/deviations/new/", {
        "title": "Label misprint on bag", "description": "Lot number unreadable",
        "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M"), "immediate_actions": "Bag quarantined",
        "subjects_ebr__batch": "B-2026-0003"})

    deviation = Deviation.objects.get(title="Label misprint on bag")
    assert response.status_code == 302 and response["Location"] == f"/qms/deviations/{deviation.number}/"
    assert [(s.subject_type, s.subject_id) for s in deviation.subjects.all()] == [("ebr.batch", "900012")]
    page = _html(client.get(response["Location"]))
    assert deviation.number in page and "B-2026-0003" in page and "Awaiting QA triage" in page


# --- a deviation through its pages ---------------------------------------------------------

def _post(client, deviation, action, data):
    # `seen`: the version of the deviation the page showed (qms/staleness.py), as the browser posts it
    prefixed = {f"{action}-{name}": value for name, value in {"seen": record_version(deviation), **data}.items()}
    return client.post(f"/qms/deviations/{deviation.number}/{action}/", prefixed)


def test_a_deviation_runs_through_its_pages_to_signed_closure(client, operator, qa_reviewer, supervisor, qa_approver):
    deviation = quality.deviation(operator)
    batch, step = deviation.subjects.order_by("id")

    login(client, qa_reviewer)
    assert client.get(f"/qms/deviations/{deviation.number}/").status_code == 200
    response = _post(client, deviation, "triage", {
        "classification": "minor", "classification_rationale": "Contained at once", "severity": "2",
        "occurrence": "2", "detectability": "1", "owner": supervisor.pk, "reason": "Triage"})
    assert response.status_code == 302
    client.logout()

    login(client, supervisor)
    assert _post(client, deviation, "investigate", {
        "root_cause_category": "method", "why_1": "Step unclear", "why_2": "SOP ambiguous",
        "root_cause": "Ambiguous SOP wording", "product_impact": "None",
        f"impact_{batch.pk}": "no_impact", f"impact_note_{batch.pk}": "Within limits",
        f"impact_{step.pk}": "no_impact", f"impact_note_{step.pk}": "Repeated correctly",
        "reason": "Investigation"}).status_code == 302
    assert _post(client, deviation, "capa_decide", {"decision": "not_required", "rationale": "SOP fixed by CC",
                                                    "reason": "Decision"}).status_code == 302
    response = _post(client, deviation, "submit", {"username": supervisor.username, "password": PASSWORD,
                                                    "reason": "Complete"})
    assert response.status_code == 302
    client.logout()

    login(client, qa_approver)
    refused = _post(client, deviation, "close", {"username": qa_approver.username, "password": "wrong-password-x",
                                                  "reason": "Approved"})
    assert refused.status_code == 422 and "Wrong password" in _html(refused)
    assert 'value="Approved"' not in _html(refused) and "Approved</textarea>" in _html(refused)
    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.PENDING_APPROVAL
    assert _post(client, deviation, "close", {"username": qa_approver.username, "password": PASSWORD,
                                              "reason": "Approved"}).status_code == 302

    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.CLOSED
    page = _html(client.get(f"/qms/deviations/{deviation.number}/"))
    assert page.count('class="signature valid"') == 2 and "Sofia Supervisor" in page and "Claire Approver" in page
    assert f'href="/audit/record/qms.deviation/{deviation.pk}/"' in page
    assert 'id="actions"' not in page  # nothing left to do on a closed record


def test_roles_without_the_step_capability_get_403_and_change_nothing(client, operator):
    deviation = quality.deviation(operator)
    login(client, operator)

    response = _post(client, deviation, "triage", {"classification": "minor", "classification_rationale": "x",
                                                    "severity": "1", "occurrence": "1", "detectability": "1",
                                                    "reason": "x"})

    assert response.status_code == 403
    deviation.refresh_from_db()
    assert deviation.status == DeviationStatus.OPEN
    assert client.post(f"/qms/deviations/{deviation.number}/no-such-action/", {}).status_code == 404


def test_a_refused_step_shows_the_reason_next_to_the_form(client, operator, qa_reviewer):
    deviation = quality.deviation(operator)
    login(client, qa_reviewer)

    response = _post(client, deviation, "submit", {"username": qa_reviewer.username, "password": PASSWORD,
                                                    "reason": "Early"})

    assert response.status_code == 422 and "you cannot submit for approval now" in _html(response)


# --- lists ----------------------------------------------------------------------------------

def test_deviation_list_filters_sorts_and_exports_csv(client, operator, qa_reviewer):
    token = uuid.uuid4().hex[:8]  # committed tests leave other deviations: sort only this test's two
    first = quality.deviation(operator, title=f"Alpha particle count high {token}")
    second = quality.deviation(operator, title=f"Bravo label torn {token}")
    login(client, qa_reviewer)

    filtered = _html(client.get("/qms/deviations/", {"q": "Bravo"}))
    ascending = _html(client.get("/qms/deviations/", {"q": token, "sort": "number"}))
    exported = client.get("/qms/deviations/", {"q": "Alpha", "format": "csv"})

    assert second.number in filtered and first.number not in filtered
    assert ascending.index(first.number) < ascending.index(second.number)
    rows = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert rows[0][:3] == ["number", "title", "status"] and [r[0] for r in rows[1:]] == [first.number]
    assert exported["Content-Disposition"].startswith('attachment; filename="deviations-')
    export = AuditEvent.objects.filter(event_type=Event.EXPORT_CREATED, actor_id=qa_reviewer.pk).get()
    assert export.target_label == "deviations (CSV)" and export.data["rows"] == 1


def test_capa_change_and_training_lists_export_csv(client, qa_reviewer, supervisor, operator, qa_approver):
    capa = quality.capa(qa_reviewer)
    change = quality.change(supervisor)
    from qms.services.training import training_record_add

    training_record_add(actor=supervisor, user=operator, document_kind="sop", document_code="SOP-017",
                        version="4", trained_on=in_days(-1), trainer=qa_approver, valid_until=None, reason="r",
                        password=PASSWORD, username=supervisor.username)
    login(client, qa_reviewer)

    for url, needle in (("/qms/capa/", capa.number), ("/qms/change-control/", change.number),
                        ("/qms/training/", "SOP-017")):
        assert needle in _html(client.get(url, {"sort": "-number"}))
        exported = b"".join(client.get(url, {"format": "csv"}).streaming_content).decode()
        assert needle in exported, url


# --- CAPA, change control, training, dashboard, notifications pages -------------------------

def test_action_owner_completes_a_capa_action_from_the_capa_page(client, qa_reviewer, supervisor):
    from qms.services.capa import capa_action_add

    capa = quality.capa(qa_reviewer)
    action = capa_action_add(actor=qa_reviewer, capa=capa, kind="corrective", description="Fit door alarms",
                             owner=supervisor, due_date=in_days(5), reason="Plan")
    login(client, supervisor)
    page = _html(client.get(f"/qms/capa/{capa.number}/"))
    assert "Sign as done" in page and "Add an action" not in page

    key = f"action_complete_{action.pk}"
    response = client.post(f"/qms/capa/{capa.number}/action_complete/{action.pk}/", {
        f"{key}-seen": record_version(capa), f"{key}-evidence": "", f"{key}-username": supervisor.username,
        f"{key}-password": PASSWORD, f"{key}-reason": "Done"})
    assert response.status_code == 422 and "This field is required" in _html(response)

    response = client.post(f"/qms/capa/{capa.number}/action_complete/{action.pk}/", {
        f"{key}-seen": record_version(capa), f"{key}-evidence": "WO-88", f"{key}-username": supervisor.username,
        f"{key}-password": PASSWORD, f"{key}-reason": "Done"})
    assert response.status_code == 302
    capa.refresh_from_db()
    assert capa.status == "effectiveness_check"


def test_opening_a_capa_and_a_change_through_their_forms(client, qa_reviewer, operator):
    deviation = quality.deviation(operator)
    login(client, qa_reviewer)

    response = client.post("/qms/capa/new/", {"title": "Door alarms", "problem_statement": "Doors left ajar",
                                              "source": "deviation", "deviations": "DEV-1999-0001",
                                              "owner": qa_reviewer.pk})
    assert response.status_code == 422 and "No deviation DEV-1999-0001" in _html(response)
    response = client.post("/qms/capa/new/", {"title": "Door alarms", "problem_statement": "Doors left ajar",
                                              "source": "deviation", "deviations": deviation.number.lower(),
                                              "owner": qa_reviewer.pk})
    capa = Capa.objects.get(title="Door alarms")
    assert response["Location"] == f"/qms/capa/{capa.number}/"

    response = client.post("/qms/change-control/new/", {"title": "New counter", "change_type": "equipment",
                                                         "description": "NC-200 to NC-250", "justification": ""})
    assert response.status_code == 422 and 'value="New counter"' in _html(response)
    response = client.post("/qms/change-control/new/", {"title": "New counter", "change_type": "equipment",
                                                         "description": "NC-200 to NC-250", "justification": "EOL"})
    change = ChangeControl.objects.get(title="New counter")
    assert response["Location"] == f"/qms/change-control/{change.number}/"
    page = _html(client.get(response["Location"]))
    assert "not assessed" in page and "Before approval, assess" in page


def test_training_form_matrix_and_expiring_pages(client, supervisor, operator, qa_approver, documents_unchecked):
    login(client, supervisor)

    response = client.post("/qms/training/new/", {
        "user": operator.pk, "document_kind": "master_record", "document_code": "cart-01", "version": "3",
        "trained_on": in_days(-1).isoformat(), "trainer": operator.pk, "reason": "Training",
        "username": supervisor.username, "password": PASSWORD})
    assert response.status_code == 422 and "Nobody can be their own trainer" in _html(response)
    response = client.post("/qms/training/new/", {
        "user": operator.pk, "document_kind": "master_record", "document_code": "cart-01", "version": "3",
        "trained_on": in_days(-1).isoformat(), "trainer": qa_approver.pk, "valid_until": in_days(10).isoformat(),
        "reason": "Training", "username": supervisor.username, "password": PASSWORD})
    assert response.status_code == 302
    record = TrainingRecord.objects.get(user=operator)
    assert record.document_code == "CART-01"
    client.logout()
    login(client, qa_approver)  # the trainer named confirms it: until then it counts for nothing
    confirm = f"confirm-{record.pk}"
    response = client.post(f"/qms/training/{record.pk}/confirm/", {f"{confirm}-username": qa_approver.username,
                                                                   f"{confirm}-password": PASSWORD})
    assert response.status_code == 302

    matrix = _html(client.get("/qms/training/matrix/"))
    assert re.search(rf'data-username="{operator.username}">.*?cell-expiring', matrix, re.S)
    assert "CART-01 v3" in _html(client.get("/qms/training/expiring/"))


def test_dashboard_draws_inline_svg_charts_without_script(client, operator, qa_reviewer, supervisor, auditor):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=supervisor, classification="critical")
    login(client, auditor)

    response = client.get("/qms/dashboard/")

    page = _html(response)
    assert response.status_code == 200
    assert page.count("<svg") >= 2 and "<rect" in page and "series-age0" in page
    assert "<script>" not in page and "style=" not in page
    assert re.search(r'data-class="critical"><th scope="row">Critical</th><td>1</td>', page)
    assert "Deviations reported per month" in page


def test_notifications_page_marks_read(client, operator, qa_reviewer):
    deviation = quality.deviation(operator)
    notification = Notification.objects.get(user=qa_reviewer, text__contains=deviation.number)
    login(client, qa_reviewer)

    assert deviation.number in _html(client.get("/qms/notifications/"))
    response = client.post(f"/qms/notifications/{notification.pk}/read/", {"open": "1"})

    assert response["Location"] == f"/qms/deviations/{deviation.number}/"
    notification.refresh_from_db()
    assert notification.read_at is not None


def test_every_csv_export_neutralises_cells_a_spreadsheet_would_run_as_formulas(client, operator, qa_reviewer):
    deviation = quality.deviation(operator, title='=HYPERLINK("http://evil.example","click")')
    login(client, qa_reviewer)

    response = client.get("/qms/deviations/", {"format": "csv"})

    body = b"".join(response.streaming_content).decode()
    row = next(line for line in body.splitlines() if deviation.number in line)
    assert "'=HYPERLINK" in row and ',=HYPERLINK' not in row


def test_the_report_form_says_everything_wrong_in_one_answer(client, operator, batch_kind):
    """An unknown batch, a time in the future and a discovery before it happened: all three at once,
    not one more after each submit (black-box review)."""
    login(client, operator)
    future = timezone.localtime() + timezone.timedelta(days=30)
    before = Deviation.objects.count()

    response = client.post("/qms/deviations/new/", {
        "title": "Label misprint on bag", "description": "Lot number unreadable",
        "occurred_at": future.strftime("%Y-%m-%dT%H:%M"), "discovered_at": "2026-01-01T10:00",
        "subjects_ebr__batch": "B-9999-0000"})

    page = _html(response)
    assert response.status_code == 422
    assert "No batch &#x27;B-9999-0000&#x27; was found" in page and "This time is in the future" in page
    assert 'value="Label misprint on bag"' in page
    assert Deviation.objects.count() == before
